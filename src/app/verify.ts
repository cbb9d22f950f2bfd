/**
 * Verify and repair: compares the bucket, the catalogue and the vector index, reports every kind of drift,
 * and with `repair` fixes it. Repairs go through the same paths as ordinary work (re-queue, forget,
 * delete by id, recount), so running one while ingest runs is safe: what looked like drift only because it
 * was in flight is re-queued, never thrown away.
 *
 * Only the live index generation is compared. While a re-index builds the next one (src/app/reindex.ts),
 * every record moves to the new model and its vector to the new generation, and the live one keeps old
 * vectors it cannot be given new ones of; the kinds that compare records with vectors or with the model
 * would name nearly every key, and their repair would only queue again what the build already queues. So
 * they are skipped, saying why, and the rest (records without objects, leftovers, counters) are checked;
 * the build itself brings every key in line with the bucket before its switch.
 */
import type {
  ImageRecord,
  ImageState,
  IndexGenerations,
  StoredObject,
  VectorEntry,
} from '../domain/ports.ts';
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
  /**
   * Indexed records of other content than the object now holds (their etags differ) or of another model
   * than the live index's, and records whose vector was made from other content than they say (the
   * vector's etag differs from the record's: an older look's vector landed after the record).
   */
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
  /** Kinds not checked, and why (a re-index was building the next index generation); absent when all were. */
  skipped?: { kinds: DriftKind[]; reason: string };
}

export interface VerifyDeps extends Stores {
  idOf: IdOf;
  imagePrefix: string;
  model: { model: string; profile: string };
}

const EXAMPLES = 20;
const STATES: ImageState[] = ['pending', 'indexed', 'failed'];
const KINDS: DriftKind[] = [
  'missingVectors',
  'ghostVectors',
  'staleVersions',
  'recordsWithoutObjects',
  'notIndexed',
  'leftoverRecords',
  'counters',
];
/** What a re-index's build moves for every key (see the top of this file). */
const INDEX_KINDS: DriftKind[] = ['missingVectors', 'ghostVectors', 'staleVersions', 'notIndexed'];

export async function verifyLibrary(deps: VerifyDeps, options: { repair: boolean }): Promise<VerifyReport> {
  const { images, catalogue, index, tasks } = deps;
  const [clearedAt, cleanup, generations] = await Promise.all([
    tasks.clearedAt(),
    tasks.latest('delete-all'),
    tasks.indexGenerations(),
  ]);
  const cleaning = cleanup?.state === 'running';
  // The live generation's model: what an indexed record must name for its vector to be in the live index.
  const live = generations?.live.identity ?? deps.model;
  const stored = await catalogue.progress(0);
  // Records before vectors: a vector written after its record was listed is then seen, not taken for a ghost.
  const records = new Map<string, ImageRecord>();
  for await (const record of catalogue.list()) records.set(record.key, record);
  const vectors = new Map<string, VectorEntry>();
  for await (const entry of index.entries()) vectors.set(entry.id, entry);
  const objects = new Map<string, StoredObject>();
  for await (const object of images.list(deps.imagePrefix)) {
    if (isImageKey(object.key)) objects.set(object.key, object);
  }
  // Read again after the listings: a re-index that started, or switched, meanwhile moved what they hold.
  const building = reindexing(generations, await tasks.indexGenerations());

  const found = Object.fromEntries(KINDS.map((kind) => [kind, [] as string[]])) as Record<
    DriftKind,
    string[]
  >;
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
      const vector = vectors.get(record.id);
      if (!isIndexed(record, object.etag, live, clearedAt)) found.staleVersions.push(record.key);
      else if (vector?.key !== record.key) found.missingVectors.push(record.key);
      // A vector without an etag was written before the index kept them: its content is not known.
      else if (vector.etag !== undefined && vector.etag !== record.etag) found.staleVersions.push(record.key);
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
  for (const [id, { key }] of vectors) {
    if (owners.get(id)?.key !== key) found.ghostVectors.push(id);
  }
  if (STATES.some((state) => counted[state] !== stored[state])) found.counters.push(...STATES);
  if (building) for (const kind of INDEX_KINDS) found[kind] = [];

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
    ...(building
      ? {
          skipped: {
            kinds: INDEX_KINDS,
            reason:
              `a re-index is building (or has just switched to) the index generation '${building}': every record and vector is moving ` +
              'to it, and its build brings each one in line with the bucket before it switches. Verify again after the switch.',
          },
        }
      : {}),
  };
}

/** The report in lines for a terminal (the CLI's verify). */
export function verifyReportLines(report: VerifyReport): string[] {
  const lines = [`checked   ${report.objects} objects, ${report.records} records, ${report.vectors} vectors`];
  if (report.keptOut > 0) lines.push(`kept out  ${report.keptOut} photos a delete-all kept (not drift)`);
  for (const [kind, { count, examples }] of Object.entries(report.drift)) {
    if (count > 0)
      lines.push(`${kind}: ${count}${examples.length > 0 ? ` (${examples.slice(0, 5).join(', ')})` : ''}`);
  }
  if (report.skipped) lines.push(`skipped   ${report.skipped.kinds.join(', ')}: ${report.skipped.reason}`);
  lines.push(
    report.driftCount === 0
      ? 'no drift'
      : `${report.driftCount} drift${report.repaired ? ', repaired' : ': run verify --repair to fix it'}`,
  );
  return lines;
}

/** The generation a re-index builds (or switched to) while verify listed the stores; undefined when none. */
function reindexing(
  before: IndexGenerations | undefined,
  after: IndexGenerations | undefined,
): string | undefined {
  const building = before?.building ?? after?.building;
  if (building) return building.name;
  if (before && after && before.live.name !== after.live.name) return after.live.name;
  return undefined;
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
  vectors: Map<string, VectorEntry>,
): Promise<void> {
  await forgetImages(deps, deps.idOf, [...found.recordsWithoutObjects, ...found.leftoverRecords]);
  const ghostKeys = found.ghostVectors.map((id) => ({ id, key: (vectors.get(id) as VectorEntry).key }));
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
      return owner === undefined || owner.state === 'failed' || owner.key !== vectors.get(id)?.key;
    }),
  );
  if (found.counters.length > 0) await deps.catalogue.recount();
}
