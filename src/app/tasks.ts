/**
 * Background tasks: delete-all's cleanup and verification. A task is started by the API or the CLI (a
 * record in the TaskStore and one queue message) and run by the worker in slices: each slice does a
 * bounded amount of work, saves its progress and queues the next slice, so a crash or a restart loses at
 * most one slice, which runs again from what the stores hold, and no slice outlives a queue visibility or
 * holds a worker back from stopping.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ObjectStore, Task, TaskKind } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import { forgetImages, type IdOf, type Stores, storedBefore } from './indexing.ts';
import { type VerifyReport, verifyLibrary } from './verify.ts';

export interface TaskDeps extends Stores {
  idOf: IdOf;
  /** Where the service's images live in the bucket ('' embedded, 'images/' cloud). */
  imagePrefix: string;
  model: { model: string; profile: string };
  logger?: Logger;
}

export interface TaskOptions {
  /** How long one slice may work before it queues the next. @default 20000 */
  sliceMs?: number;
  /** Records, thumbnails or objects removed in one step. @default 500 */
  batchSize?: number;
}

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

function newTask(kind: TaskKind, options: Task['options'], progress: Record<string, number>): Task {
  const now = new Date();
  return { id: randomUUID(), kind, state: 'running', options, progress, startedAt: now, updatedAt: now };
}

/**
 * Empties the library at once and queues the cleanup: the index is cleared (Milvus drops and re-creates
 * the collection; the embedded index deletes its rows: both independent of the number of records), so
 * search and count are empty when this returns; the emptying mark (clearedAt) makes every record from
 * before it a leftover that ingest ignores and the cleanup removes. Bounded time whatever the library's size.
 */
export async function startDeleteAll(deps: TaskDeps, deleteObjects: boolean): Promise<Task> {
  const [vectors, counts] = await Promise.all([deps.index.count(), deps.catalogue.progress(0)]);
  const task = newTask(
    'delete-all',
    { deleteObjects },
    { vectors, records: counts.total, recordsRemoved: 0, thumbnailsRemoved: 0, objectsRemoved: 0 },
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

/** The worker's runTask: one slice of the task; throws (the slice runs again) on an infrastructure error. */
export async function runTaskSlice(deps: TaskDeps, taskId: string, options: TaskOptions = {}): Promise<void> {
  const task = await deps.tasks.get(taskId);
  if (task === undefined || task.state !== 'running') return;
  const finished = task.kind === 'delete-all' ? await cleanUp(deps, task, options) : await verify(deps, task);
  task.updatedAt = new Date();
  if (finished) {
    task.state = 'done';
    task.finishedAt = task.updatedAt;
    deps.logger?.info({ taskId, kind: task.kind, progress: task.progress }, 'task done');
  }
  await deps.tasks.save(task);
  if (!finished) await deps.queue.sendTask(taskId);
}

async function verify(deps: TaskDeps, task: Task): Promise<boolean> {
  const report: VerifyReport = await verifyLibrary(deps, { repair: task.options.repair === true });
  task.report = report;
  task.progress = { drift: report.driftCount };
  return true;
}

/**
 * Removes what a delete-all left behind, oldest kind first: records from before the emptying (with their
 * thumbnails and any vector a worker wrote meanwhile), then thumbnails, then, when asked, the objects
 * stored before it. Lists from the start each step: what was removed is gone from the listing, and what
 * was stored after the emptying is passed over. True once nothing is left.
 */
async function cleanUp(deps: TaskDeps, task: Task, options: TaskOptions): Promise<boolean> {
  const sliceEnds = Date.now() + (options.sliceMs ?? 20_000);
  const batchSize = options.batchSize ?? 500;
  const before = task.startedAt;
  const progress = task.progress;
  const add = (name: string, n: number) => {
    progress[name] = (progress[name] ?? 0) + n;
  };
  const steps: { name: string; next: () => Promise<string[]>; remove: (keys: string[]) => Promise<void> }[] =
    [
      {
        name: 'recordsRemoved',
        async next() {
          const keys: string[] = [];
          for await (const record of deps.catalogue.list()) {
            if (record.updatedAt < before) keys.push(record.key);
            if (keys.length >= batchSize) break;
          }
          return keys;
        },
        // In parallel groups: the DynamoDB catalogue removes a record in four requests, one key after another.
        remove: (keys) =>
          Promise.all(chunks(keys, FORGET_GROUP).map((group) => forgetImages(deps, deps.idOf, group))).then(
            () => undefined,
          ),
      },
      {
        name: 'thumbnailsRemoved',
        next: () => listStoredBefore(deps.thumbnails, '', before, batchSize),
        remove: (keys) => removeAll(deps.thumbnails, keys),
      },
      ...(task.options.deleteObjects
        ? [
            {
              name: 'objectsRemoved',
              next: () => listStoredBefore(deps.images, deps.imagePrefix, before, batchSize, isImageKey),
              remove: (keys: string[]) => removeAll(deps.images, keys),
            },
          ]
        : []),
    ];
  for (const step of steps) {
    for (;;) {
      const keys = await step.next();
      if (keys.length === 0) break;
      await step.remove(keys);
      add(step.name, keys.length);
      if (Date.now() >= sliceEnds) return false;
      task.updatedAt = new Date();
      await deps.tasks.save(task);
    }
  }
  return true;
}

async function listStoredBefore(
  store: ObjectStore,
  prefix: string,
  before: Date,
  limit: number,
  accept: (key: string) => boolean = () => true,
): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) {
    if (storedBefore(object, before) && accept(object.key)) keys.push(object.key);
    if (keys.length >= limit) break;
  }
  return keys;
}

const REMOVE_CONCURRENCY = 16;
const FORGET_GROUP = 25;

async function removeAll(store: ObjectStore, keys: string[]): Promise<void> {
  for (const group of chunks(keys, REMOVE_CONCURRENCY))
    await Promise.all(group.map((key) => store.delete(key)));
}

function chunks<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) =>
    items.slice(i * size, (i + 1) * size),
  );
}
