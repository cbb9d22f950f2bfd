import { afterEach, describe, expect, it, vi } from 'vitest';
import { noWorkerStats, type WorkerStats } from '../app/worker.ts';
import {
  createMetrics,
  NO_WORKER_COUNTS,
  publishVerifyDrift,
  publishWorkerMetrics,
  publishWorkerStats,
} from './metrics.ts';

/** The EMF lines a call prints on stdout. */
function emfLinesOf(run: () => void): Record<string, unknown>[] {
  const printed: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed.push(String(chunk));
    return true;
  });
  try {
    run();
  } finally {
    write.mockRestore();
  }
  return printed
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => '_aws' in line);
}

const metricNames = (line: Record<string, unknown> | undefined) =>
  (line as { _aws: { CloudWatchMetrics: { Metrics: { Name: string; Unit: string }[] }[] } })._aws
    .CloudWatchMetrics[0]?.Metrics;

function statsWith(counts: Partial<WorkerStats>): WorkerStats {
  return { ...noWorkerStats(), ...counts };
}

describe('worker metrics (EMF on stdout)', () => {
  afterEach(() => vi.useRealTimers());

  it('publishes what changed since the last flush, under PicSearch with the service dimension', () => {
    const metrics = createMetrics('worker');
    let since = NO_WORKER_COUNTS;
    const first = emfLinesOf(() => {
      since = publishWorkerStats(
        metrics,
        statsWith({ indexed: 12, failed: 2, deadLettered: 1, retried: 5 }),
        since,
      );
    });
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'PicSearch', Dimensions: [['service']] }] },
      service: 'worker',
      ImagesIndexed: 12,
      ImagesFailed: 2,
      MessagesDeadLettered: 1,
    });
    expect(metricNames(first[0])).toEqual([
      { Name: 'ImagesIndexed', Unit: 'Count' },
      { Name: 'ImagesFailed', Unit: 'Count' },
      { Name: 'MessagesDeadLettered', Unit: 'Count' },
    ]);

    const second = emfLinesOf(() => {
      since = publishWorkerStats(metrics, statsWith({ indexed: 20, failed: 2, deadLettered: 1 }), since);
    });
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ ImagesIndexed: 8 });
    expect(metricNames(second[0])).toEqual([{ Name: 'ImagesIndexed', Unit: 'Count' }]);

    expect(
      emfLinesOf(() =>
        publishWorkerStats(metrics, statsWith({ indexed: 20, failed: 2, deadLettered: 1 }), since),
      ),
    ).toEqual([]);
  });

  it('publishes the worker outcomes on a timer and what is left when stopped', () => {
    vi.useFakeTimers();
    const stats = statsWith({ indexed: 3 });
    let stop: () => void = () => undefined;
    const lines = emfLinesOf(() => {
      stop = publishWorkerMetrics(stats, 60_000);
      vi.advanceTimersByTime(60_000);
      stats.indexed = 5;
      stats.failed = 1;
      stop();
    });
    expect(lines).toEqual([
      expect.objectContaining({ ImagesIndexed: 3 }),
      expect.objectContaining({ ImagesIndexed: 2, ImagesFailed: 1 }),
    ]);
  });

  it('publishes a verification drift count, zero included', () => {
    const lines = emfLinesOf(() => publishVerifyDrift(createMetrics('verify'), 0));
    expect(lines).toEqual([expect.objectContaining({ service: 'verify', VerifyDrift: 0 })]);
  });
});
