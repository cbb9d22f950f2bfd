/**
 * Background tasks: delete-all's cleanup, verification, the cloud duplicates scan and re-index (reindex.ts). A task is started by the API or the CLI (a
 * record in the TaskStore and one queue message) and run by the worker in slices: each slice does a
 * bounded amount of work, saves its progress and queues the next slice, so a crash or a restart loses at
 * most one slice, which runs again from what the stores hold, and no slice outlives a queue visibility or
 * holds a worker back from stopping.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ownsItsId } from '../domain/ids.ts';
import type { ImageRecord, ObjectStore, ScannedPairs, Task, TaskKind, VectorPair } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import type { DuplicateScanner } from './duplicates.ts';
import type { GenerationalIndex } from './index-generations.ts';
import { type IdOf, type Stores, storedBefore } from './indexing.ts';
import { reindexSlice, reindexToStart } from './reindex.ts';
import { type VerifyReport, verifyLibrary } from './verify.ts';

export interface TaskDeps extends Stores {
  idOf: IdOf;
  /** Where the service's images live in the bucket ('' embedded, 'images/' cloud). */
  imagePrefix: string;
  model: { model: string; profile: string };
  /** Where a duplicates scan keeps its pairs (cloud mode; embedded mode self-joins its index instead). */
  scannedPairs?: ScannedPairs;
  /** Told of each finished verification (the cloud worker publishes its drift as a metric). */
  onVerified?: (report: VerifyReport) => void;
  /** The index generations a re-index builds and switches (the same object as `index`, where they are set up). */
  generations?: GenerationalIndex;
  logger?: Logger;
}

export interface TaskOptions {
  /** How long one slice may work before it queues the next. @default 20000 */
  sliceMs?: number;
  /**
   * Records, thumbnails or objects removed in one step (@default 2000: each step lists from the start, which
   * costs moto a pass over the table); vectors searched in one step of a scan, objects a re-index lists and
   * queues in one step (@default 500).
   */
  batchSize?: number;
  /** How long a re-index slice waiting for the worker pauses before it counts again. @default 2000 */
  pollMs?: number;
  /**
   * How long after a re-index's switch the old generation is kept for searches that took it before the
   * switch (beyond the processes' copies of the record, GenerationalIndex.ttlMs). @default 30000
   */
  dropGraceMs?: number;
}

/** Neighbours a duplicates scan asks for per vector: a bigger group is still linked through its members. */
export const SCAN_TOP_K = 20;
/** Pairs in one stored chunk: 100 pairs of keys up to 1 KiB fit any store's item (DynamoDB: 400 KB). */
export const MAX_PAIRS_PER_CHUNK = 100;
/** Query vectors per search request of a duplicates scan (Milvus takes up to 16,384). */
const SCAN_QUERIES = 100;

/** What /progress shows of a task. */
export interface TaskView {
  id: string;
  kind: TaskKind;
  state: Task['state'];
  options: Task['options'];
  progress: Record<string, number>;
  report?: unknown;
  error?: string;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export function viewOf(task: Task): TaskView {
  const { startedAt, updatedAt, finishedAt, ...rest } = task;
  return {
    ...rest,
    startedAt: startedAt.toISOString(),
    updatedAt: updatedAt.toISOString(),
    ...(finishedAt ? { finishedAt: finishedAt.toISOString() } : {}),
  };
}

function newTask(
  kind: TaskKind,
  options: Task['options'],
  progress: Record<string, number>,
  report?: unknown,
): Task {
  const now = new Date();
  return {
    id: randomUUID(),
    kind,
    state: 'running',
    options,
    progress,
    ...(report === undefined ? {} : { report }),
    startedAt: now,
    updatedAt: now,
  };
}

/**
 * Empties the library at once and queues the cleanup: the index is cleared (Milvus drops and re-creates
 * the collection; the embedded index deletes its rows: no work per record), so search and count are empty
 * when this returns; the emptying mark (clearedAt) makes every record from before it a leftover that
 * ingest ignores and the cleanup removes. The figures come from the catalogue's counters (one read), not
 * from counting the index. Nothing here grows with the library but the index's own clear.
 */
export async function startDeleteAll(deps: TaskDeps, deleteObjects: boolean): Promise<Task> {
  const counts = await deps.catalogue.progress(0);
  const task = newTask(
    'delete-all',
    { deleteObjects },
    {
      vectors: counts.indexed,
      records: counts.total,
      recordsRemoved: 0,
      thumbnailsRemoved: 0,
      objectsRemoved: 0,
    },
  );
  await deps.index.clear();
  await deps.tasks.start(task, task.startedAt);
  await deps.queue.sendTask(task.id);
  return task;
}

export async function startVerify(deps: TaskDeps, repair: boolean): Promise<Task> {
  const task = newTask('verify', { repair }, {});
  await deps.tasks.start(task);
  await deps.queue.sendTask(task.id);
  return task;
}

/**
 * Starts a re-index to the configured model (reindex.ts), or returns the one running for it already.
 * ConflictError when there is nothing to re-index or a re-index to another model runs.
 */
export async function startReindex(deps: TaskDeps): Promise<Task> {
  const generations = requireGenerations(deps);
  const { task, running } = await reindexToStart(
    { generations, tasks: deps.tasks },
    (options, progress, report) => newTask('reindex', options, progress, report),
  );
  if (running) return task;
  await deps.tasks.start(task);
  await deps.queue.sendTask(task.id);
  return task;
}

function requireGenerations(deps: TaskDeps): GenerationalIndex {
  if (!deps.generations) throw new Error('this process has no index generations to re-index');
  return deps.generations;
}

/** Starts a duplicates scan: the worker searches each vector's neighbours (cloud mode's /duplicates). */
export async function startDuplicatesScan(
  deps: Pick<TaskDeps, 'tasks' | 'queue'>,
  threshold: number,
): Promise<Task> {
  const task = newTask('duplicates', { threshold }, { scanned: 0, pairs: 0, chunks: 0 });
  await deps.tasks.start(task);
  await deps.queue.sendTask(task.id);
  return task;
}

/** Cloud mode's scanner: POST /duplicates/scan starts a scan; GET /duplicates says how the last one stands. */
export function duplicateScanner(
  deps: Pick<TaskDeps, 'tasks' | 'queue'> & { scannedPairs: ScannedPairs },
): DuplicateScanner {
  return {
    start: (threshold) => startDuplicatesScan(deps, threshold),
    async status() {
      const [task, scan] = await Promise.all([deps.tasks.latest('duplicates'), deps.scannedPairs.latest()]);
      return {
        running: task?.state === 'running',
        finishedAt: scan?.finishedAt.toISOString() ?? null,
        threshold: scan?.threshold ?? null,
      };
    },
  };
}

/** The worker's runTask: one slice of the task; throws (the slice runs again) on an infrastructure error. */
export async function runTaskSlice(deps: TaskDeps, taskId: string, options: TaskOptions = {}): Promise<void> {
  const task = await deps.tasks.get(taskId);
  if (task === undefined || task.state !== 'running') return;
  const finished =
    task.kind === 'delete-all'
      ? await cleanUp(deps, task, options)
      : task.kind === 'duplicates'
        ? await scanForDuplicates(deps, task, options)
        : task.kind === 'reindex'
          ? await reindexSlice({ ...deps, generations: requireGenerations(deps) }, task, options)
          : await verify(deps, task);
  task.updatedAt = new Date();
  if (finished) {
    // A slice may end its task as failed, with the reason (a re-index whose model is no longer configured).
    if (task.state === 'running') task.state = 'done';
    task.finishedAt = task.updatedAt;
    deps.logger?.info({ taskId, kind: task.kind, progress: task.progress }, 'task done');
  }
  await deps.tasks.save(task);
  if (!finished) await deps.queue.sendTask(taskId);
}

/**
 * One slice of a duplicates scan: searches the neighbours of the vectors after the first `scanned` (in id
 * order) and stores the pairs found as new chunks, saving progress after each step, so a crash repeats at
 * most one step, whose chunks are written again under the same numbers. A pair is found from both ends
 * (each end's topK may hold the other), and kept twice: GET /duplicates groups them, so a repeat is harmless.
 * The last slice makes the scan the one GET /duplicates reads.
 */
async function scanForDuplicates(deps: TaskDeps, task: Task, options: TaskOptions): Promise<boolean> {
  const store = deps.scannedPairs;
  if (!store) throw new Error('this worker has no store for duplicate pairs');
  const sliceEnds = Date.now() + (options.sliceMs ?? 20_000);
  const batchSize = options.batchSize ?? 500;
  const threshold = task.options.threshold as number;
  const entries: { id: string; key: string }[] = [];
  for await (const entry of deps.index.entries()) entries.push(entry);
  entries.sort((x, y) => (BigInt(x.id) < BigInt(y.id) ? -1 : 1));
  const progress = task.progress as { scanned: number; pairs: number; chunks: number };
  while (progress.scanned < entries.length) {
    const batch = entries.slice(progress.scanned, progress.scanned + batchSize);
    const pairs = await neighboursOf(deps, batch, threshold);
    const stored = chunks(pairs, MAX_PAIRS_PER_CHUNK);
    await Promise.all(stored.map((chunk, n) => store.put(task.id, progress.chunks + n, chunk)));
    progress.scanned += batch.length;
    progress.pairs += pairs.length;
    progress.chunks += stored.length;
    if (progress.scanned < entries.length) {
      task.updatedAt = new Date();
      await deps.tasks.save(task);
      if (Date.now() >= sliceEnds) return false;
    }
  }
  await store.finish({ id: task.id, threshold, chunks: progress.chunks, finishedAt: new Date() });
  return true;
}

/** Each entry's neighbours at `threshold` or closer: its stored vector searched, SCAN_QUERIES at a time. */
async function neighboursOf(
  deps: TaskDeps,
  batch: { id: string; key: string }[],
  threshold: number,
): Promise<VectorPair[]> {
  const vectors = await deps.index.getMany(batch.map((entry) => entry.id));
  // An entry deleted since the listing has no vector left: nothing to pair.
  const present = batch.filter((entry) => vectors.has(entry.id));
  const pairs: VectorPair[] = [];
  for (const group of chunks(present, SCAN_QUERIES)) {
    const found = await deps.index.searchEach(
      group.map((entry) => vectors.get(entry.id) as Float32Array),
      { topK: SCAN_TOP_K + 1, minScore: threshold },
    );
    for (const [n, entry] of group.entries()) {
      for (const hit of found[n] ?? []) {
        if (hit.id !== entry.id) pairs.push({ a: entry, b: { id: hit.id, key: hit.key }, score: hit.score });
      }
    }
  }
  return pairs;
}

async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (const group of chunks(items, limit)) results.push(...(await Promise.all(group.map(work))));
  return results;
}

async function verify(deps: TaskDeps, task: Task): Promise<boolean> {
  const report: VerifyReport = await verifyLibrary(deps, { repair: task.options.repair === true });
  task.report = report;
  task.progress = { drift: report.driftCount };
  deps.onVerified?.(report);
  return true;
}

/**
 * Removes what a delete-all left behind, oldest kind first: records from before the emptying (with any
 * vector a worker wrote meanwhile), then thumbnails, then, when asked, the objects stored before it. Lists
 * from the start each step: what was removed is gone from the listing, and what was written after the
 * emptying is passed over. True once nothing is left.
 */
async function cleanUp(deps: TaskDeps, task: Task, options: TaskOptions): Promise<boolean> {
  const sliceEnds = Date.now() + (options.sliceMs ?? 20_000);
  const batchSize = options.batchSize ?? CLEANUP_BATCH;
  const before = task.startedAt;
  const progress = task.progress;
  /** Each step removes one batch and says how many it found (0: that kind is done) and removed. */
  const steps: { name: string; removeBatch: () => Promise<{ found: number; removed: number }> }[] = [
    {
      name: 'recordsRemoved',
      async removeBatch() {
        const leftovers: ImageRecord[] = [];
        for await (const record of deps.catalogue.list()) {
          if (record.updatedAt < before) leftovers.push(record);
          if (leftovers.length >= batchSize) break;
        }
        // Vectors first: a worker that writes one meanwhile rewrites its record after, which then stays.
        await deps.index.delete(leftovers.filter(ownsItsId).map((record) => record.id));
        const removed = await deps.catalogue.removeLeftovers(leftovers);
        return { found: leftovers.length, removed: removed.length };
      },
    },
    {
      name: 'thumbnailsRemoved',
      removeBatch: () => removeStoredBefore(deps.thumbnails, '', before, batchSize),
    },
    ...(task.options.deleteObjects
      ? [
          {
            name: 'objectsRemoved',
            removeBatch: () =>
              removeStoredBefore(deps.images, deps.imagePrefix, before, batchSize, isImageKey),
          },
        ]
      : []),
  ];
  for (const step of steps) {
    for (;;) {
      const { found, removed } = await step.removeBatch();
      if (found === 0) break;
      progress[step.name] = (progress[step.name] ?? 0) + removed;
      if (Date.now() >= sliceEnds) return false;
      task.updatedAt = new Date();
      await deps.tasks.save(task);
    }
  }
  return true;
}

async function removeStoredBefore(
  store: ObjectStore,
  prefix: string,
  before: Date,
  limit: number,
  accept: (key: string) => boolean = () => true,
): Promise<{ found: number; removed: number }> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) {
    if (storedBefore(object, before) && accept(object.key)) keys.push(object.key);
    if (keys.length >= limit) break;
  }
  await mapLimited(keys, REMOVE_CONCURRENCY, (key) => store.delete(key));
  return { found: keys.length, removed: keys.length };
}

const REMOVE_CONCURRENCY = 16;
const CLEANUP_BATCH = 2000;

function chunks<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) =>
    items.slice(i * size, (i + 1) * size),
  );
}
