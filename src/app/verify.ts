/**
 * Verify and repair: compares the bucket, the catalogue and the vector index, reports every kind of drift,
 * and with `repair` fixes it. Repairs go through the same paths as ordinary work (re-queue, forget,
 * delete by id, recount), so running one while ingest runs is safe: what looked like drift only because it
 * was in flight is re-queued, never thrown away.
 */
import type { ImageRecord, ImageState, StoredObject } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import {
  forgetImages,
  type IdOf,
  isIndexed,
  isKeptOut,
  queueObjects,
  STALE_PENDING_MS,
  type Stores,
} from './indexing.ts';

export type DriftKind =
  /** Indexed records whose vector is not in the index. */
  | 'missingVectors'
  /** Vectors that no record accounts for (no record, a failed one, another key, a leftover). */
  | 'ghostVectors'
  /** Indexed records of other content than the object now holds (or of another model). */
  | 'staleVersions'
  /** Records whose object is gone. */
  | 'recordsWithoutObjects'
  /** Objects nobody is indexing: no record (and not kept out by a delete-all), or pending for too long. */
  | 'notIndexed'
  /** Records from before a delete-all whose cleanup is no longer running. */
  | 'leftoverRecords'
  /** Per-state counters that differ from a count of the records. */
  | 'counters';

export interface VerifyReport {
  checkedAt: string;
  repaired: boolean;
  objects: number;
  records: number;
  vectors: number;
  /** Photos a delete-all kept out of the index: not drift. */
  keptOut: number;
  /** Drift by kind: how many, and up to 20 examples (keys; vector ids for ghost vectors). */
  drift: Record<DriftKind, { count: number; examples: string[] }>;
  driftCount: number;
  counters: { stored: Record<ImageState, number>; counted: Record<ImageState, number> };
}

export interface VerifyDeps extends Stores {
  idOf: IdOf;
  imagePrefix: string;
  model: { model: string; profile: string };
}

const EXAMPLES = 20;
const STATES: ImageState[] = ['pending', 'indexed', 'failed'];

export async function verifyLibrary(deps: VerifyDeps, options: { repair: boolean }): Promise<VerifyReport> {
  const { images, catalogue, index, tasks } = deps;
  const [clearedAt, cleanup] = await Promise.all([tasks.clearedAt(), tasks.latest('delete-all')]);
  const cleaning = cleanup?.state === 'running';
  const stored = await catalogue.progress(0);
  // Records before vectors: a vector written after its record was listed is then seen, not taken for a ghost.
  const records = new Map<string, ImageRecord>();
  for await (const record of catalogue.list()) records.set(record.key, record);
  const vectors = new Map<string, string>();
  for await (const { id, key } of index.entries()) vectors.set(id, key);
  const objects = new Map<string, StoredObject>();
  for await (const object of images.list(deps.imagePrefix)) {
    if (isImageKey(object.key)) objects.set(object.key, object);
  }

  const found = Object.fromEntries(
    (
      [
        'missingVectors',
        'ghostVectors',
        'staleVersions',
        'recordsWithoutObjects',
        'notIndexed',
        'leftoverRecords',
        'counters',
      ] as DriftKind[]
    ).map((kind) => [kind, [] as string[]]),
  ) as Record<DriftKind, string[]>;
  const counted: Record<ImageState, number> = { pending: 0, indexed: 0, failed: 0 };
  const owners = new Map<string, ImageRecord>();
  const now = Date.now();
  let keptOut = 0;
  for (const record of records.values()) {
    counted[record.state]++;
    const leftover = clearedAt !== undefined && record.updatedAt < clearedAt;
    if (record.state !== 'failed' && !leftover) owners.set(record.id, record);
    const object = objects.get(record.key);
    if (leftover) {
      if (!cleaning) found.leftoverRecords.push(record.key);
    } else if (object === undefined) {
      found.recordsWithoutObjects.push(record.key);
    } else if (record.state === 'indexed') {
      if (!isIndexed(record, object.etag, deps.model, clearedAt)) found.staleVersions.push(record.key);
      else if (vectors.get(record.id) !== record.key) found.missingVectors.push(record.key);
    } else if (record.state === 'pending' && now - record.updatedAt.getTime() >= STALE_PENDING_MS) {
      found.notIndexed.push(record.key);
    }
  }
  for (const object of objects.values()) {
    const record = records.get(object.key);
    if (record && !(clearedAt !== undefined && record.updatedAt < clearedAt)) continue;
    if (isKeptOut(object, record, clearedAt)) keptOut++;
    else if (!record || !cleaning) found.notIndexed.push(object.key);
  }
  for (const [id, key] of vectors) {
    if (owners.get(id)?.key !== key) found.ghostVectors.push(id);
  }
  if (STATES.some((state) => counted[state] !== stored[state])) found.counters.push(...STATES);

  if (options.repair) await repair(deps, found, objects, vectors);
  const drift = Object.fromEntries(
    Object.entries(found).map(([kind, items]) => [
      kind,
      {
        count: kind === 'counters' ? Math.min(1, items.length) : items.length,
        examples: items.slice(0, EXAMPLES),
      },
    ]),
  ) as VerifyReport['drift'];
  return {
    checkedAt: new Date().toISOString(),
    repaired: options.repair,
    objects: objects.size,
    records: records.size,
    vectors: vectors.size,
    keptOut,
    drift,
    driftCount: Object.values(drift).reduce((sum, { count }) => sum + count, 0),
    counters: {
      stored: { pending: stored.pending, indexed: stored.indexed, failed: stored.failed },
      counted,
    },
  };
}

/**
 * Gone objects are forgotten; content to (re)index is queued as if it had no record (a pending mark and
 * a job); a ghost vector is deleted only when its key has no object (otherwise the object is queued, its
 * vector then overwritten: it may be a worker's write whose record is about to follow); counters are recounted.
 */
async function repair(
  deps: VerifyDeps,
  found: Record<DriftKind, string[]>,
  objects: Map<string, StoredObject>,
  vectors: Map<string, string>,
): Promise<void> {
  await forgetImages(deps, deps.idOf, [...found.recordsWithoutObjects, ...found.leftoverRecords]);
  const ghostKeys = found.ghostVectors.map((id) => ({ id, key: vectors.get(id) as string }));
  const ghostsWithObjects = ghostKeys.filter(({ key }) => objects.has(key));
  const requeue = new Set([
    ...found.missingVectors,
    ...found.staleVersions,
    ...found.notIndexed,
    ...ghostsWithObjects.map(({ key }) => key),
  ]);
  const toQueue = [...requeue].flatMap((key) => {
    const object = objects.get(key);
    return object ? [object] : [];
  });
  // An empty map of known records: queued as new, whatever their records say.
  await queueObjects(deps, deps.idOf, deps.model, toQueue, new Map());
  const orphans = ghostKeys.filter(({ key }) => !objects.has(key)).map(({ id }) => id);
  // Read again just before deleting: a record written since the listing keeps its vector.
  const owners = await deps.catalogue.getByIds(orphans);
  await deps.index.delete(
    orphans.filter((id) => {
      const owner = owners.get(id);
      return owner === undefined || owner.state === 'failed' || owner.key !== vectors.get(id);
    }),
  );
  if (found.counters.length > 0) await deps.catalogue.recount();
}
