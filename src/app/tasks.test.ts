import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../config.ts';
import { NotFoundError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import { createEmbeddedSystem, dataLayout } from '../wiring/embedded.ts';
import { waitUntilSettled } from './settle.ts';
import { runTaskSlice, startDeleteAll, type TaskDeps } from './tasks.ts';
import {
  FIXTURES,
  photoFolder,
  SEEDED_MANIFEST,
  type TempSystem,
  taskDone,
  tempSystem,
} from './test-system.ts';
import type { VerifyReport } from './verify.ts';
import { Worker } from './worker.ts';

const PHOTOS = {
  'pizza.jpg': 'pizza.jpg',
  'chimpanzee.jpg': 'chimpanzee.jpg',
  'rose.jpg': 'orange-rose.jpg',
  'car.jpg': 'red-vintage-car.jpg',
  'sheep.jpg': 'sheep-on-pasture.jpg',
};
const COUNT = Object.keys(PHOTOS).length;

let system: TempSystem | undefined;
let folder: string | undefined;
afterEach(async () => {
  await system?.dispose();
  if (folder) await rm(folder, { recursive: true, force: true });
  system = undefined;
  folder = undefined;
});

/** Closes the system (its data directory is then the reopened system's, removed by afterEach). */
async function closeForRestart(s: TempSystem): Promise<void> {
  await s.close();
  system = undefined;
  const dir = s.dataDir;
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
}

async function indexedLibrary(env: Record<string, string> = {}): Promise<TempSystem> {
  system = await tempSystem(env);
  folder = await photoFolder(PHOTOS);
  await system.ingestFolder(folder, 'lib');
  await system.startWorker();
  await waitUntilSettled(system.operations, { timeoutMs: 120_000 });
  expect(await system.operations.count()).toBe(COUNT);
  return system;
}

/**
 * Waits for the next whole second. A photo stored in the same second as a delete-all counts as newer (S3
 * reports whole seconds), so it is not kept out; these tests delete a library indexed a moment ago.
 */
async function untilNextWholeSecond(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
}

/** The real store, with the name of each method called on it recorded in `calls`. */
function recordingCalls<T extends object>(store: T, name: string, calls: string[]): T {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(`${name}.${String(property)}`);
        return value.apply(target, args);
      };
    },
  });
}

function taskDepsOf(s: TempSystem): TaskDeps {
  return { ...s.stores, idOf: vectorIdOf, imagePrefix: '', model: s.embedder.info };
}

/** The same data directory opened again, as after a restart, with the bucket watcher on. */
async function reopen(s: TempSystem) {
  await closeForRestart(s);
  const config = loadConfig({
    PIC_DATA_DIR: s.dataDir,
    PIC_BATCH_SIZE: '4',
    PIC_WATCH: 'true',
    PIC_MODEL_MANIFEST: SEEDED_MANIFEST,
  });
  return createEmbeddedSystem(config);
}

describe('delete-all', () => {
  it('empties search and count at once, cleans up in the background, and keeps kept photos out after a restart until they are ingested again', async () => {
    const s = await indexedLibrary();
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));

    await untilNextWholeSecond();
    const { deleted, task } = await s.operations.deleteAll({ deleteObjects: false });

    expect(deleted).toBe(COUNT);
    expect(task).toMatchObject({ kind: 'delete-all', state: 'running', progress: { records: COUNT } });
    expect(await s.operations.count()).toBe(0);
    expect((await s.operations.searchByImage(query, { topK: 5 })).results).toEqual([]);
    const done = await taskDone(s.operations, 'deleteAll');
    expect(done).toMatchObject({
      state: 'done',
      progress: { recordsRemoved: COUNT },
    });
    expect(await s.operations.progress()).toMatchObject({ total: 0, indexed: 0 });
    await expect(s.operations.getThumbnail('lib/pizza.jpg')).rejects.toBeInstanceOf(NotFoundError);

    // Issue 13 (7): the start-up reconcile used to queue the kept photos again (count 0 → 108).
    const restarted = await reopen(s);
    try {
      await restarted.startWorker();
      await waitUntilSettled(restarted.operations, { timeoutMs: 60_000 });
      expect(await restarted.operations.count()).toBe(0);
      expect((await restarted.operations.progress()).total).toBe(0);
      expect((await restarted.operations.backfill('', { skipKept: true })).keptOut).toBe(COUNT);

      const report = await restarted.operations.backfill('lib');
      await waitUntilSettled(restarted.operations, { timeoutMs: 120_000 });

      expect(report).toMatchObject({ queued: COUNT, keptOut: 0 });
      expect(await restarted.operations.count()).toBe(COUNT);
      const hits = (await restarted.operations.searchByImage(query, { topK: 1 })).results;
      expect(hits[0]).toMatchObject({ key: 'lib/pizza.jpg' });
    } finally {
      await restarted.close();
    }
  });

  it('does no work per record before it answers: one read of the counters and the index cleared', async () => {
    const s = await indexedLibrary();
    await s.worker.stop();
    const calls: string[] = [];
    const deps = {
      ...taskDepsOf(s),
      catalogue: recordingCalls(s.stores.catalogue, 'catalogue', calls),
      index: recordingCalls(s.stores.index, 'index', calls),
    };

    const task = await startDeleteAll(deps, false);

    // No listing, counting or per-record removal: those are the worker's, in slices (the cleanup).
    expect(calls).toEqual(['catalogue.progress', 'index.clear']);
    expect(task.progress).toMatchObject({ vectors: COUNT, records: COUNT, recordsRemoved: 0 });
    expect(await s.operations.count()).toBe(0);
    expect((await s.operations.progress(0)).tasks.deleteAll).toMatchObject({ id: task.id, state: 'running' });
  });

  it('leaves kept photos out when their jobs were still queued at the delete-all', async () => {
    const s = await indexedLibrary();
    await s.worker.stop();
    // Jobs queued before the delete-all, for photos it keeps: the worker must not bring them back.
    await s.stores.queue.send(Object.keys(PHOTOS).map((name) => ({ kind: 'upsert', key: `lib/${name}` })));
    await untilNextWholeSecond();
    await s.operations.deleteAll({ deleteObjects: false });
    await s.runTask((await s.operations.progress(0)).tasks.deleteAll?.id as string);

    const worker = new Worker(s.stores, s.ingestEmbedder, { batchSize: 4, maxReceiveCount: 5 });
    worker.start();
    await waitUntilSettled(s.operations, { timeoutMs: 60_000 });
    await worker.stop();

    expect(worker.stats).toMatchObject({ keptOut: COUNT, indexed: 0 });
    expect(await s.operations.count()).toBe(0);
  });

  it('leaves kept photos out when a worker was embedding them as the delete-all landed', async () => {
    const s = await indexedLibrary();
    await s.worker.stop();
    await s.stores.queue.send(
      Object.keys(PHOTOS).map((name) => ({ kind: 'upsert', key: `lib/${name}`, force: true })),
    );
    // The real embedder, held until the delete-all has landed: the worker looked at the photos before it.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let embedding = false;
    const embedder = new Proxy(s.ingestEmbedder, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (property !== 'embed') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: Parameters<typeof target.embed>) => {
          embedding = true;
          await held;
          return target.embed(...args);
        };
      },
    });
    const worker = new Worker(s.stores, embedder, { batchSize: COUNT, maxReceiveCount: 5 });
    worker.start();
    while (!embedding) await new Promise((resolve) => setTimeout(resolve, 20));
    await untilNextWholeSecond();
    await s.operations.deleteAll({ deleteObjects: false });
    await s.runTask((await s.operations.progress(0)).tasks.deleteAll?.id as string);
    release();
    await waitUntilSettled(s.operations, { timeoutMs: 60_000 });
    await worker.stop();

    expect(worker.stats).toMatchObject({ keptOut: COUNT, indexed: 0 });
    expect(await s.operations.count()).toBe(0);
    expect((await s.stores.catalogue.get(`lib/${Object.keys(PHOTOS)[0]}`))?.state).not.toBe('indexed');
  });

  it('survives a crash between slices: the next slice is in the queue and a restarted worker finishes it', async () => {
    const s = await indexedLibrary();
    await s.worker.stop();
    const { task } = await s.operations.deleteAll({ deleteObjects: true });

    // One small slice, as a worker would run it before being killed.
    await runTaskSlice(taskDepsOf(s), task.id, { sliceMs: 0, batchSize: 2 });
    const partway = (await s.operations.progress(0)).tasks.deleteAll;
    expect(partway).toMatchObject({ state: 'running', progress: { recordsRemoved: 2 } });

    const restarted = await reopen(s);
    try {
      await restarted.startWorker();
      const done = await taskDone(restarted.operations, 'deleteAll');
      expect(done).toMatchObject({
        state: 'done',
        progress: { recordsRemoved: COUNT, objectsRemoved: COUNT },
      });
      expect(await restarted.stores.images.head('lib/pizza.jpg')).toBeUndefined();
      expect(await restarted.operations.progress(0)).toMatchObject({ total: 0 });
    } finally {
      await restarted.close();
    }
  });
});

describe('verify and repair', () => {
  it('reports each kind of drift injected through the real stores, and repairs all of it', async () => {
    const s = await indexedLibrary();
    const { images, index, catalogue } = s.stores;
    const rose = await readFile(join(FIXTURES, 'orange-rose.jpg'));
    // missing vector: an indexed record whose vector is gone
    await index.delete([vectorIdOf('lib/pizza.jpg')]);
    // ghost vector: a vector nobody accounts for
    const stray = (await index.get(vectorIdOf('lib/car.jpg'))) as Float32Array;
    await index.upsert([{ id: vectorIdOf('ghost.jpg'), key: 'ghost.jpg', vector: stray }]);
    // stale version: the object changed, nothing was queued (the watcher is off)
    await images.put('lib/chimpanzee.jpg', rose);
    // record without object
    await images.delete('lib/sheep.jpg');
    // an object nobody indexes
    await images.put('late.jpg', rose);
    // counter drift, as a crash between a record and its counter would leave it
    const db = new Database(dataLayout(s.dataDir).catalogue);
    db.prepare("UPDATE state_counts SET n = n + 3 WHERE state = 'indexed'").run();
    db.close();

    const found = await s.operations.verify({ repair: false });
    const report = (await taskDone(s.operations, 'verify')).report as VerifyReport;

    expect(found).toMatchObject({ kind: 'verify', state: 'running' });
    const counts = Object.fromEntries(Object.entries(report.drift).map(([kind, d]) => [kind, d.count]));
    expect(counts).toEqual({
      missingVectors: 1,
      ghostVectors: 1,
      staleVersions: 1,
      recordsWithoutObjects: 1,
      notIndexed: 1,
      leftoverRecords: 0,
      counters: 1,
    });
    expect(report.drift.missingVectors.examples).toEqual(['lib/pizza.jpg']);
    expect(report.drift.ghostVectors.examples).toEqual([vectorIdOf('ghost.jpg')]);
    expect(report.drift.staleVersions.examples).toEqual(['lib/chimpanzee.jpg']);
    expect(report.drift.recordsWithoutObjects.examples).toEqual(['lib/sheep.jpg']);
    expect(report.drift.notIndexed.examples).toEqual(['late.jpg']);
    expect(report.counters.stored.indexed).toBe(report.counters.counted.indexed + 3);

    await s.operations.verify({ repair: true });
    expect(((await taskDone(s.operations, 'verify')).report as VerifyReport).repaired).toBe(true);
    await waitUntilSettled(s.operations, { timeoutMs: 120_000 });
    await s.operations.verify({ repair: false });
    const after = (await taskDone(s.operations, 'verify')).report as VerifyReport;

    expect(after.driftCount).toBe(0);
    expect(await s.operations.count()).toBe(COUNT);
    expect(await catalogue.get('lib/sheep.jpg')).toBeUndefined();
    const top = await s.operations.searchByImage(await readFile(join(FIXTURES, 'pizza.jpg')), { topK: 1 });
    expect(top.results[0]).toMatchObject({ key: 'lib/pizza.jpg' });
    expect((await s.operations.progress(0)).tasks.verify).toMatchObject({ report: { driftCount: 0 } });
  });
});
