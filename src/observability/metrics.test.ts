import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { waitUntilSettled } from '../app/settle.ts';
import { runTaskSlice, startVerify, type TaskDeps } from '../app/tasks.ts';
import { FIXTURES, photoFolder, tempSystem } from '../app/test-system.ts';
import { noWorkerStats, type WorkerStats } from '../app/worker.ts';
import { vectorIdOf } from '../domain/ids.ts';
import {
  createMetrics,
  NO_WORKER_COUNTS,
  publishWorkerMetrics,
  publishWorkerStats,
  verifyDriftPublisher,
} from './metrics.ts';

/** The EMF lines a call prints on stdout (awaited when it returns a promise). */
async function emfLinesOf(run: () => unknown): Promise<Record<string, unknown>[]> {
  const printed: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed.push(String(chunk));
    return true;
  });
  try {
    await run();
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

  it('publishes what changed since the last flush, under PicSearch with the service dimension', async () => {
    const metrics = createMetrics('worker');
    let since = NO_WORKER_COUNTS;
    const first = await emfLinesOf(() => {
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

    const second = await emfLinesOf(() => {
      since = publishWorkerStats(metrics, statsWith({ indexed: 20, failed: 2, deadLettered: 1 }), since);
    });
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ ImagesIndexed: 8 });
    expect(metricNames(second[0])).toEqual([{ Name: 'ImagesIndexed', Unit: 'Count' }]);

    expect(
      await emfLinesOf(() =>
        publishWorkerStats(metrics, statsWith({ indexed: 20, failed: 2, deadLettered: 1 }), since),
      ),
    ).toEqual([]);
  });

  it('publishes the worker outcomes on a timer and what is left when stopped', async () => {
    vi.useFakeTimers();
    const stats = statsWith({ indexed: 3 });
    let stop: () => void = () => undefined;
    const lines = await emfLinesOf(() => {
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
});

describe("verify drift metric (the cloud worker's onVerified hook)", () => {
  it('publishes the drift each verification found (0 included), by kind', async () => {
    const system = await tempSystem();
    const folder = await photoFolder({ 'pizza.jpg': 'pizza.jpg', 'rose.jpg': 'orange-rose.jpg' });
    try {
      await system.ingestFolder(folder, 'lib');
      await system.startWorker();
      await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
      // Stopped, so that this test runs the verifications its tasks queue, with the hook.
      await system.worker.stop();
      const deps: TaskDeps = {
        ...system.stores,
        idOf: vectorIdOf,
        imagePrefix: '',
        model: system.embedder.info,
        onVerified: verifyDriftPublisher(),
      };
      const verifyOnce = (repair: boolean) =>
        emfLinesOf(async () => runTaskSlice(deps, (await startVerify(deps, repair)).id));

      const quiet = await verifyOnce(false);
      expect(quiet).toEqual([expect.objectContaining({ VerifyDrift: 0, repaired: 'false' })]);

      // Two drifts through the real stores: a vector gone from the index, a photo nobody queued.
      const { images, index } = system.stores;
      await index.delete([vectorIdOf('lib/pizza.jpg')]);
      await images.put('late.jpg', await readFile(join(FIXTURES, 'orange-rose.jpg')));
      const found = await verifyOnce(true);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({ service: 'worker', VerifyDrift: 2, repaired: 'true' });
      expect(metricNames(found[0])).toEqual([{ Name: 'VerifyDrift', Unit: 'Count' }]);
      expect(JSON.parse(found[0]?.drift as string)).toEqual({
        missingVectors: 1,
        ghostVectors: 0,
        staleVersions: 0,
        recordsWithoutObjects: 0,
        notIndexed: 1,
        leftoverRecords: 0,
        counters: 0,
      });
    } finally {
      await system.dispose();
      await rm(folder, { recursive: true, force: true });
    }
  });
});
