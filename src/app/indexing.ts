import type {
  Catalogue,
  EmbedderInfo,
  ImageRecord,
  JobQueue,
  ObjectStore,
  StoredObject,
  VectorIndex,
} from '../domain/ports.ts';
import { thumbnailKeyOf } from './keys.ts';

/** The ports that hold the system's state; operations, worker and watcher all work through them. */
export interface Stores {
  images: ObjectStore;
  thumbnails: ObjectStore;
  queue: JobQueue;
  catalogue: Catalogue;
  index: VectorIndex;
}

/** Key → vector id. vectorIdOf in production; tests pass another to provoke collisions. */
export type IdOf = (key: string) => string;

/**
 * A pending record younger than this is taken to have its job still in the queue; an older one is
 * queued again (its message may be gone: a queue wiped by hand, a worker that crashed on every delivery).
 */
export const STALE_PENDING_MS = 15 * 60_000;

const SEND_CHUNK = 100;

/** True when the record says this exact content was indexed by this model and profile. */
export function isIndexed(
  record: ImageRecord | undefined,
  etag: string,
  model: Pick<EmbedderInfo, 'model' | 'profile'>,
): boolean {
  return (
    record?.state === 'indexed' &&
    record.etag === etag &&
    record.model === model.model &&
    record.profile === model.profile
  );
}

function isQueued(record: ImageRecord | undefined, etag: string, now: number): boolean {
  return (
    record?.state === 'pending' && record.etag === etag && now - record.updatedAt.getTime() < STALE_PENDING_MS
  );
}

/**
 * Claims the key's vector id and marks the image pending. A different key owning the id is a hash
 * collision: the image is recorded as failed with the other key named, never merged into its vector.
 */
export async function claim(
  catalogue: Catalogue,
  entry: { key: string; id: string; etag?: string; size?: number },
): Promise<boolean> {
  const result = await catalogue.markPending(entry);
  if (result.ok) return true;
  await catalogue.markFailed({
    key: entry.key,
    id: entry.id,
    reason: `Its vector id ${entry.id} is already used by '${result.ownerKey}' (a 63-bit hash collision); rename one of the two files to index both.`,
  });
  return false;
}

export interface QueueOutcome {
  /** Now waiting in the queue (sent by this call, or already waiting). */
  queued: number;
  /** Already indexed with this content by this model. */
  unchanged: number;
}

/**
 * Queues every object not yet indexed with its current content: new, changed, failed before (a re-ingest
 * retries; a corrupt file fails again within milliseconds), or indexed by another model. `known` holds
 * the catalogue records when the caller has listed them already (backfill), saving one read per object.
 */
export async function queueObjects(
  stores: Pick<Stores, 'catalogue' | 'queue'>,
  idOf: IdOf,
  model: Pick<EmbedderInfo, 'model' | 'profile'>,
  objects: StoredObject[],
  known?: Map<string, ImageRecord>,
): Promise<QueueOutcome> {
  const outcome: QueueOutcome = { queued: 0, unchanged: 0 };
  const now = Date.now();
  for (let start = 0; start < objects.length; start += SEND_CHUNK) {
    const jobs = [];
    for (const object of objects.slice(start, start + SEND_CHUNK)) {
      const record = known ? known.get(object.key) : await stores.catalogue.get(object.key);
      if (isIndexed(record, object.etag, model)) {
        outcome.unchanged++;
        continue;
      }
      outcome.queued++;
      if (isQueued(record, object.etag, now)) continue;
      const entry = { key: object.key, id: idOf(object.key), etag: object.etag, size: object.size };
      if (await claim(stores.catalogue, entry)) {
        jobs.push({ kind: 'upsert' as const, key: object.key, etag: object.etag, size: object.size });
      } else {
        outcome.queued--;
      }
    }
    if (jobs.length > 0) await stores.queue.send(jobs);
  }
  return outcome;
}

/**
 * Forgets images: their vectors, thumbnails and catalogue entries (the objects themselves are the
 * caller's business). A key that lost a hash collision shares its id with another key, whose vector
 * must stay: only ids this key owns, or nobody does, are deleted.
 */
export async function forgetImages(stores: Omit<Stores, 'queue' | 'images'>, idOf: IdOf, keys: string[]) {
  if (keys.length === 0) return;
  const ids = keys.map(idOf);
  const owners = await stores.catalogue.getByIds(ids);
  const ownIds = ids.filter((id, i) => {
    const owner = owners.get(id)?.key;
    return owner === undefined || owner === keys[i];
  });
  await stores.index.delete(ownIds);
  await Promise.all(keys.map((key) => stores.thumbnails.delete(thumbnailKeyOf(key))));
  await stores.catalogue.remove(keys);
}

/**
 * Queues the keys an outside change touched (a file dropped into or deleted from the bucket folder):
 * present images as upserts (unless already indexed or queued), absent keys as removals.
 */
export async function queueChangedKeys(
  stores: Pick<Stores, 'images' | 'catalogue' | 'queue'>,
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
