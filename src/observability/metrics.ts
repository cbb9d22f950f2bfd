import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { WorkerStats } from '../app/worker.ts';

/**
 * Metrics as CloudWatch Embedded Metric Format: Powertools prints one JSON line per flush on stdout, and
 * CloudWatch Logs turns it into metrics (the Lambda log group, or the worker's awslogs log group). Every
 * metric has the dimension `service` (the function family, or `worker`).
 */
export const METRICS_NAMESPACE = 'PicSearch';

export function createMetrics(service: string): Metrics {
  return new Metrics({ namespace: METRICS_NAMESPACE, serviceName: service });
}

/** The worker outcomes that become metrics, by their WorkerStats counter. */
export const WORKER_METRICS = {
  indexed: 'ImagesIndexed',
  failed: 'ImagesFailed',
  deadLettered: 'MessagesDeadLettered',
} as const satisfies Partial<Record<keyof WorkerStats, string>>;

export type WorkerCounts = Record<keyof typeof WORKER_METRICS, number>;

export const NO_WORKER_COUNTS: WorkerCounts = { indexed: 0, failed: 0, deadLettered: 0 };

/**
 * Publishes what the worker did since the last call (`since`) as one EMF line, and returns the counts to
 * pass next time. Nothing changed: nothing is printed.
 */
export function publishWorkerStats(metrics: Metrics, stats: WorkerStats, since: WorkerCounts): WorkerCounts {
  const now: WorkerCounts = {
    indexed: stats.indexed,
    failed: stats.failed,
    deadLettered: stats.deadLettered,
  };
  for (const [counter, name] of Object.entries(WORKER_METRICS) as [keyof WorkerCounts, string][]) {
    const delta = now[counter] - since[counter];
    if (delta > 0) metrics.addMetric(name, MetricUnit.Count, delta);
  }
  if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  return now;
}

/** Drifts a verification found (bucket, catalogue and index disagreeing), 0 included so that a quiet run shows. */
export function publishVerifyDrift(metrics: Metrics, count: number): void {
  metrics.addMetric('VerifyDrift', MetricUnit.Count, count);
  metrics.publishStoredMetrics();
}

/** Requests that ended in a 500 (an unexpected error), counted by the Lambda wrapper. */
export function countUnexpectedError(metrics: Metrics): void {
  metrics.addMetric('UnexpectedErrors', MetricUnit.Count, 1);
}

/**
 * Publishes the worker's outcomes every `everyMs` (CloudWatch sums the deltas); the function returned
 * stops that and publishes what is left, for the worker's shutdown.
 */
export function publishWorkerMetrics(stats: WorkerStats, everyMs = 60_000): () => void {
  const metrics = createMetrics('worker');
  let since = NO_WORKER_COUNTS;
  const publish = () => {
    since = publishWorkerStats(metrics, stats, since);
  };
  const timer = setInterval(publish, everyMs);
  return () => {
    clearInterval(timer);
    publish();
  };
}
