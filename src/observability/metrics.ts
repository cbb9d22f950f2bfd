import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { VerifyReport } from '../app/verify.ts';
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

/**
 * A finished verification as one EMF line: `VerifyDrift`, the drifts it found (0 included, so that a quiet
 * run shows), with the count of each kind and whether it repaired them as metadata (searchable in Logs
 * Insights, not metrics).
 */
export function publishVerifyDrift(
  metrics: Metrics,
  report: Pick<VerifyReport, 'driftCount' | 'drift' | 'repaired'>,
): void {
  metrics.addMetric('VerifyDrift', MetricUnit.Count, report.driftCount);
  const byKind = Object.fromEntries(Object.entries(report.drift).map(([kind, { count }]) => [kind, count]));
  metrics.addMetadata('drift', JSON.stringify(byKind));
  metrics.addMetadata('repaired', String(report.repaired));
  metrics.publishStoredMetrics();
}

/** The cloud worker's verify hook (TaskDeps.onVerified): each finished verification, one EMF line. */
export function verifyDriftPublisher(): (report: VerifyReport) => void {
  const metrics = createMetrics('worker');
  return (report) => publishVerifyDrift(metrics, report);
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
