import type {
  Catalogue,
  EmbedderInfo,
  ImageRecord,
  JobQueue,
  ObjectStore,
  PendingEntry,
  StoredObject,
  TaskStore,
  VectorIndex,
} from '../domain/ports.ts';
import { type Version, versionNow } from '../domain/versions.ts';
import { thumbnailKeyOf } from './keys.ts';

/** The ports that hold the system's state; operations, worker and watcher all work through them. */
export interface Stores {
  images: ObjectStore;
  thumbnails: ObjectStore;
  queue: JobQueue;
  catalogue: Catalogue;
  index: VectorIndex;
  /** Background tasks (delete-all, verify) and when the library was last emptied. */
  tasks: TaskStore;
}

/** Key → vector id. vectorIdOf in production; tests pass another to provoke collisions. */
export type IdOf = (key: string) => string;

/**
 * A pending record younger than this is taken to have its job still in the queue; an older one is
 * queued again (its message may be gone: a queue wiped by hand, a worker that crashed on every delivery).
 */
export const STALE_PENDING_MS = 15 * 60_000;

const SEND_CHUNK = 100;

/**
 * True when the record says this exact content was indexed by this model and profile, since the library
 * was last emptied (`clearedAt`: a record from before a delete-all is a leftover its cleanup has yet to remove).
 */
export function isIndexed(
  record: ImageRecord | undefined,
  etag: string,
  model: Pick<EmbedderInfo, 'model' | 'profile'>,
  clearedAt: Date | undefined,
): boolean {
  return (
    record?.state === 'indexed' &&
    record.etag === etag &&
    record.model === model.model &&
    record.profile === model.profile &&
    (clearedAt === undefined || (record.indexedAt?.getTime() ?? 0) >= clearedAt.getTime())
  );
}

/**
 * True when the object was stored before `when`. S3 reports lastModified in whole seconds, so an object
 * stored in the same second counts as newer.
 */
export function storedBefore(object: StoredObject, when: Date): boolean {
  return object.lastModified.getTime() < Math.floor(when.getTime() / 1000) * 1000;
}

/**
 * True for a photo a delete-all kept: stored before the library was emptied and not ingested again since
 * (no record written after the emptying). Such photos stay out of the index until an ingest asks for them.
 */
export function isKeptOut(
  object: StoredObject,
  record: ImageRecord | undefined,
  clearedAt: Date | undefined,
): boolean {
  return (
    clearedAt !== undefined &&
    storedBefore(object, clearedAt) &&
    !(record && record.updatedAt.getTime() >= clearedAt.getTime())
  );
}

function isQueued(record: ImageRecord | undefined, etag: string, now: number): boolean {
  return (
    record?.state === 'pending' && record.etag === etag && now - record.updatedAt.getTime() < STALE_PENDING_MS
  );
}

/**
 * Claims the keys' vector ids, marking the images pending (`how`: 'mark-pending', what ingest does when
 * it queues them) or not ('claim-only', the worker); true for each one claimed. A different key owning
 * an id is a hash collision: that image is recorded as failed with the other key named, never merged
 * into its vector.
 */
export async function claimAll(
  catalogue: Catalogue,
  entries: PendingEntry[],
  how: 'mark-pending' | 'claim-only',
): Promise<boolean[]> {
  if (entries.length === 0) return [];
  const results = await (how === 'mark-pending'
    ? catalogue.markPending(entries)
    : catalogue.claimIds(entries));
  await Promise.all(
    results.map((result, i) => {
      if (result.ok) return undefined;
      const { key, id } = entries[i] as PendingEntry;
      return catalogue.markFailed({
        key,
        id,
        reason: `Its vector id ${id} is already used by '${result.ownerKey}' (a 63-bit hash collision); rename one of the two files to index both.`,
      });
    }),
  );
  return results.map((result) => result.ok);
}

export interface QueueOutcome {
  /** Now waiting in the queue (sent by this call, or already waiting). */
  queued: number;
  /** Already indexed with this content by this model. */
  unchanged: number;
  /** Left out: photos a delete-all kept (only when asked to skip them). */
  keptOut: number;
}

export interface QueueOptions {
  /** Leave out the photos a delete-all kept (isKeptOut): the automatic reconciles do; an ingest asked for does not. */
  skipKept?: boolean;
  /** Queue every object, as a forced job, whatever its record says (a re-index embeds them all with the new model). */
  force?: boolean;
}

/**
 * Queues every object not yet indexed with its current content: new, changed, failed before (a re-ingest
 * retries; a corrupt file fails again within milliseconds), or indexed by another model. `known` holds
 * the catalogue records when the caller has listed them already (backfill), saving one read per object.
 */
export async function queueObjects(
  stores: Pick<Stores, 'catalogue' | 'queue' | 'tasks'>,
  idOf: IdOf,
  model: Pick<EmbedderInfo, 'model' | 'profile'>,
  objects: StoredObject[],
  known?: Map<string, ImageRecord>,
  options: QueueOptions = {},
): Promise<QueueOutcome> {
  const outcome: QueueOutcome = { queued: 0, unchanged: 0, keptOut: 0 };
  const now = Date.now();
  const clearedAt = await stores.tasks.clearedAt();
  for (let start = 0; start < objects.length; start += SEND_CHUNK) {
    const chunk = objects.slice(start, start + SEND_CHUNK);
    const records = known ?? (await stores.catalogue.getMany(chunk.map((object) => object.key)));
    const toClaim: StoredObject[] = [];
    for (const object of chunk) {
      const record = records.get(object.key);
      if (options.skipKept && isKeptOut(object, record, clearedAt)) {
        outcome.keptOut++;
        continue;
      }
      if (!options.force && isIndexed(record, object.etag, model, clearedAt)) {
        outcome.unchanged++;
        continue;
      }
      outcome.queued++;
      if (options.force || !isQueued(record, object.etag, now)) toClaim.push(object);
    }
    const claimed = await claimAll(
      stores.catalogue,
      toClaim.map(({ key, etag, size }) => ({ key, id: idOf(key), etag, size })),
      'mark-pending',
    );
    const jobs = toClaim
      .filter((_, i) => claimed[i])
      .map(({ key, etag, size }) => ({
        kind: 'upsert' as const,
        key,
        etag,
        size,
        ...(options.force ? { force: true } : {}),
      }));
    outcome.queued -= toClaim.length - jobs.length;
    if (jobs.length > 0) await stores.queue.send(jobs);
  }
  return outcome;
}

/**
 * Forgets images: their vectors, thumbnails and catalogue entries, leaving tombstones of `version` (the
 * look that found the objects gone; by default now, for a caller that has just deleted them or empties
 * the library). The objects themselves are the caller's business. A key that lost a hash collision
 * shares its id with another key, whose vector must stay: only ids this key owns, or nobody does, are
 * deleted. A key that keeps a newer version than `version` is left alone (the newer write stands); one
 * refused by the catalogue after its vector was deleted (a newer write landed in between) is returned:
 * it must be indexed again.
 */
export async function forgetImages(
  stores: Omit<Stores, 'queue' | 'images'>,
  idOf: IdOf,
  keys: string[],
  version: Version = versionNow(),
): Promise<string[]> {
  if (keys.length === 0) return [];
  const kept = await stores.catalogue.versions(keys);
  const older = keys.filter((key) => (kept.get(key) ?? 0) <= version);
  const ids = older.map(idOf);
  const owners = await stores.catalogue.getByIds(ids);
  const ownIds = ids.filter((id, i) => {
    const owner = owners.get(id)?.key;
    return owner === undefined || owner === older[i];
  });
  await stores.index.delete(ownIds);
  await Promise.all(older.map((key) => stores.thumbnails.delete(thumbnailKeyOf(key))));
  return stores.catalogue.remove(older, version);
}

/**
 * Queues the keys an outside change touched (a file dropped into or deleted from the bucket folder):
 * present images as upserts (unless already indexed or queued), absent keys as removals.
 */
export async function queueChangedKeys(
  stores: Pick<Stores, 'images' | 'catalogue' | 'queue' | 'tasks'>,
  idOf: IdOf,
  model: Pick<EmbedderInfo, 'model' | 'profile'>,
  keys: string[],
): Promise<void> {
  const present: StoredObject[] = [];
  const gone: string[] = [];
  for (const key of keys) {
    const object = await stores.images.head(key);
    if (object) present.push(object);
    else gone.push(key);
  }
  await queueObjects(stores, idOf, model, present);
  if (gone.length > 0) await stores.queue.send(gone.map((key) => ({ kind: 'remove' as const, key })));
}
