/**
 * Re-index: builds the next vector index generation for the configured model from the bucket while the
 * live one keeps answering, then switches to it in one write and drops the old one (docs/models.md,
 * "Changing the model: re-index"). A background task (src/app/tasks.ts) in four steps, each slice picking
 * up where the record says: prepare the new generation, queue every object of the bucket for the worker
 * a page of the listing at a time (the worker writes the configured model's vectors into the generation
 * being built), wait until every image
 * is indexed by the new model or failed with its reason, switch; then drop the old generation once no
 * process can still be reading it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from '../domain/errors.ts';
import { describeIdentity, sameIdentity } from '../domain/index-identity.ts';
import type { IndexGeneration, IndexIdentity, StoredObject, Task } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import type { GenerationalIndex } from './index-generations.ts';
import { queueObjects } from './indexing.ts';
import type { TaskDeps, TaskOptions } from './tasks.ts';

export type ReindexDeps = TaskDeps & { generations: GenerationalIndex };

type Step = 'prepare' | 'queue' | 'build' | 'switched';

/** What /progress shows of a re-index besides its counts. */
export interface ReindexReport {
  step: Step;
  from: IndexGeneration;
  to: IndexGeneration;
  /** The queue step's place in the bucket listing: the last key it listed (a resumed slice lists after it). */
  listedAfter?: string;
}

/** The counts of a re-index: objects queued, images done (indexed by the new model or failed), of `total`. */
export type ReindexProgress = {
  queued: number;
  indexed: number;
  failed: number;
  total: number;
  switchedAt?: number;
};

/**
 * Checks that a re-index is wanted and returns the task to record, or the one already running for the
 * configured model. ConflictError when the live generation is the configured model's already, or a
 * re-index for another model is running.
 */
export async function reindexToStart(
  deps: Pick<ReindexDeps, 'generations' | 'tasks'>,
  newTask: (options: Task['options'], progress: ReindexProgress, report: ReindexReport) => Task,
): Promise<{ task: Task; running: boolean }> {
  const target = deps.generations.writer;
  const running = await deps.tasks.latest('reindex');
  if (running?.state === 'running') {
    const building = running.options.target as IndexIdentity;
    if (sameIdentity(building, target)) return { task: running, running: true };
    throw new ConflictError(
      `A re-index to ${describeIdentity(building)} is running; wait for it to finish before starting another.`,
    );
  }
  const { live } = await deps.generations.generations();
  if (sameIdentity(live.identity, target)) {
    throw new ConflictError(
      `The index is built by ${describeIdentity(target)} already; nothing to re-index.`,
    );
  }
  const progress = { queued: 0, indexed: 0, failed: 0, total: 0 };
  const report: ReindexReport = { step: 'prepare', from: live, to: deps.generations.writerGeneration() };
  return { task: newTask({ target }, progress, report), running: false };
}

/** One slice of a re-index; true once it is done. */
export async function reindexSlice(
  deps: ReindexDeps,
  task: Task,
  options: TaskOptions = {},
): Promise<boolean> {
  const report = task.report as ReindexReport;
  const progress = task.progress as ReindexProgress;
  if (report.step !== 'switched' && !sameIdentity(deps.generations.writer, report.to.identity)) {
    await abandon(deps, task, report);
    return true;
  }
  switch (report.step) {
    case 'prepare':
      await prepare(deps, report);
      report.step = 'queue';
      return false;
    case 'queue':
      if (await queueBucket(deps, task, options)) report.step = 'build';
      return false;
    case 'build': {
      await sleep(options.pollMs ?? 2000);
      if (!(await isBuilt(deps, task, progress))) return false;
      await deps.generations.save({ live: report.to });
      progress.switchedAt = Date.now();
      report.step = 'switched';
      deps.logger?.info({ from: report.from.identity, to: report.to.identity }, 're-index switched');
      return false;
    }
    case 'switched': {
      // Searches that took the old generation before the switch, and processes whose copy of the record
      // is older than it, still read the old one for a while.
      const dropAt =
        (progress.switchedAt ?? 0) + 2 * deps.generations.ttlMs + (options.dropGraceMs ?? 30_000);
      const wait = dropAt - Date.now();
      if (wait > 0) await sleep(Math.min(wait, options.pollMs ?? 2000));
      if (Date.now() < dropAt) return false;
      await deps.generations.drop(report.from);
      return true;
    }
  }
}

/**
 * The configured model changed during the build (back to the live one, or to a third): the generation being
 * built is of no use. It is dropped and the task fails, saying why; the live one stays.
 */
async function abandon(deps: ReindexDeps, task: Task, report: ReindexReport): Promise<void> {
  const { live } = await deps.generations.generations();
  await deps.generations.save({ live });
  await deps.generations.drop(report.to);
  task.state = 'failed';
  task.error =
    `The configured model changed to ${describeIdentity(deps.generations.writer)} while the index was being ` +
    `re-indexed for ${describeIdentity(report.to.identity)}; the index stays as it was.`;
}

/**
 * Makes the new generation empty and records it as building, so the worker writes into it from now on. A
 * repeated slice finds it recorded already and leaves what the worker wrote.
 */
async function prepare(deps: ReindexDeps, report: ReindexReport): Promise<void> {
  const current = await deps.generations.generations();
  if (current.building?.name === report.to.name) return;
  // Left by a re-index that never finished (another model was configured meanwhile): its vectors may be stale.
  await deps.generations.drop(report.to);
  await deps.generations.indexOf(report.to).ensure(report.to.identity);
  await deps.generations.save({ live: current.live, building: report.to });
}

/**
 * Queues the bucket's images to be embedded again, whatever their records say (forced), a page of the
 * listing at a time: after each page the task records the last key listed and the count queued, so a slice
 * ends after `sliceMs` and the next one (or the one run again after a crash) lists on from there. A page
 * queued twice after a crash only embeds its images twice. True once the listing is through.
 */
async function queueBucket(deps: ReindexDeps, task: Task, options: TaskOptions): Promise<boolean> {
  const report = task.report as ReindexReport;
  const progress = task.progress as ReindexProgress;
  const sliceEnds = Date.now() + (options.sliceMs ?? 20_000);
  const pageSize = options.batchSize ?? 500;
  for (;;) {
    const page: StoredObject[] = [];
    const listing = deps.images.list(deps.imagePrefix, {
      ...(report.listedAfter ? { startAfter: report.listedAfter } : {}),
    });
    for await (const object of listing) {
      page.push(object);
      if (page.length >= pageSize) break;
    }
    const last = page.at(-1);
    if (!last) return true;
    const outcome = await queueObjects(
      deps,
      deps.idOf,
      deps.generations.writer,
      page.filter((object) => isImageKey(object.key)),
      undefined,
      { skipKept: true, force: true },
    );
    progress.queued += outcome.queued;
    report.listedAfter = last.key;
    if (page.length < pageSize) return true;
    task.updatedAt = new Date();
    await deps.tasks.save(task);
    if (Date.now() >= sliceEnds) return false;
  }
}

/**
 * True when every image of the catalogue is indexed by the new model since the re-index started, or
 * failed (with its reason), and no other job waits in the queue. Then, the last catch-up before the switch: vectors in the new generation
 * whose image is no longer indexed (deleted during the build by a process that did not yet know of the
 * new generation) are removed. Images neither done nor waiting for the worker (a record whose object left
 * the bucket unseen) are queued again once nothing else is waiting.
 */
async function isBuilt(deps: ReindexDeps, task: Task, progress: ReindexProgress): Promise<boolean> {
  const target = deps.generations.writer;
  let indexed = 0;
  let failed = 0;
  let waiting = 0;
  const stragglers: string[] = [];
  const done = new Set<string>();
  for await (const record of deps.catalogue.list(deps.imagePrefix)) {
    if (record.state === 'failed') failed++;
    else if (
      record.state === 'indexed' &&
      record.model === target.model &&
      record.profile === target.profile &&
      (record.indexedAt?.getTime() ?? 0) >= task.startedAt.getTime()
    ) {
      indexed++;
      done.add(record.id);
    } else if (record.state === 'pending') waiting++;
    else stragglers.push(record.key);
  }
  Object.assign(progress, { indexed, failed, total: indexed + failed + waiting + stragglers.length });
  if (waiting > 0) return false;
  // Jobs still queued may change what is built (a photo deleted while the worker embedded it is queued again
  // to be forgotten): the switch waits until the queue holds nothing but this slice's own message.
  const depth = await deps.queue.depth();
  if (depth.visible + depth.inFlight > 1) return false;
  if (stragglers.length > 0) {
    await deps.queue.send(stragglers.map((key) => ({ kind: 'upsert', key, force: true })));
    return false;
  }
  const building = deps.generations.indexOf((task.report as ReindexReport).to);
  const orphans: string[] = [];
  for await (const { id } of building.entries()) if (!done.has(id)) orphans.push(id);
  if (orphans.length > 0) await building.delete(orphans);
  return true;
}
