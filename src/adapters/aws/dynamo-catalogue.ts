import {
  type AttributeValue,
  BatchGetItemCommand,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  paginateQuery,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ConflictError } from '../../domain/errors.ts';
import { ownsItsId } from '../../domain/ids.ts';
import type {
  Catalogue,
  ClaimResult,
  FailedEntry,
  Failure,
  ImageRecord,
  ImageState,
  IndexedEntry,
  PendingEntry,
  ProgressCounts,
} from '../../domain/ports.ts';
import { TOMBSTONE_RETENTION_MS, type Version } from '../../domain/versions.ts';

type Item = Record<string, AttributeValue>;
/** `stale`: refused, the key keeps a newer version. */
type ChangeResult = { ok: true; moved?: Move; stale?: boolean } | { ok: false; ownerKey: string };

const COUNTERS = 'counters';
const STATES: ImageState[] = ['pending', 'indexed', 'failed'];
/** BatchGetItem takes at most 100 keys, BatchWriteItem 25 requests. */
const BATCH_GET = 100;
const BATCH_WRITE = 25;
const MAX_ATTEMPTS = 8;

export interface DynamoCatalogueOptions {
  /** Window of the "recently indexed" figure progress reports (whole minutes). @default 300 */
  windowSeconds?: number;
}

/**
 * What this process last saw of a key, to skip reads and claims; every write built on it is still
 * conditional. `item`: the record as last written or read here (undefined: there was none). `ownedId`:
 * the id the key was seen to own, through a claim made here or a pending or indexed record (those
 * always own their id: see the Catalogue port).
 */
interface Seen {
  item: Item | undefined;
  ownedId: string | undefined;
}

/** A record's state before and after a write (absent: no record); the counters follow it. */
interface Move {
  from?: ImageState;
  to?: ImageState;
}

type Change =
  | { kind: 'pending'; etag?: string; size?: number }
  | { kind: 'indexed'; etag?: string; model: string; profile: string; version?: Version }
  | { kind: 'failed'; reason: string; version?: Version };

/**
 * The catalogue on one DynamoDB table (schema and item kinds: catalogue-table.ts). A state change is a
 * conditional claim of the vector id, a conditional put of the record (optimistic `ver` check, retried
 * on conflict) and then an atomic ADD on the counters, so progress never scans. A batch of marks shares
 * one counter ADD (and one rate-bucket ADD): two requests for the batch instead of two an image.
 *
 * Not one TransactWriteItems: moto deep-copies the whole table for every item of a transaction
 * (moto/dynamodb/models/__init__.py, transact_write_items), which measured 90 ms per change at 100
 * records and 500 ms at 600, too slow to test against. The price: a process killed between the record
 * write and the counter ADD leaves the counters off by that batch (graceful stops finish their writes).
 */
export class DynamoCatalogue implements Catalogue {
  readonly #db: DynamoDBClient;
  readonly #table: string;
  readonly #windowMinutes: number;
  /** What this process last saw of each key (bounded): a guess that saves reads, checked by version (#change). */
  readonly #seen = new Map<string, Seen>();

  constructor(db: DynamoDBClient, tableName: string, options: DynamoCatalogueOptions = {}) {
    this.#db = db;
    this.#table = tableName;
    this.#windowMinutes = Math.max(1, Math.round((options.windowSeconds ?? 300) / 60));
  }

  async markPending(entries: PendingEntry[]): Promise<ClaimResult[]> {
    const changes = await this.#changeAll(entries, (entry) =>
      this.#change(entry.key, entry.id, { kind: 'pending', etag: entry.etag, size: entry.size }, 'report'),
    );
    return changes.map((change) => (change.ok ? { ok: true } : change));
  }

  /** Claims only; no state changes, so no counters move. */
  async claimIds(entries: { key: string; id: string }[]): Promise<ClaimResult[]> {
    return Promise.all(
      entries.map(async ({ key, id }): Promise<ClaimResult> => {
        const owner = await this.#claim(key, id);
        if (owner !== undefined) return { ok: false, ownerKey: owner };
        const seen = this.#seen.get(key);
        if (seen) remember(this.#seen, key, { ...seen, ownedId: id });
        return { ok: true };
      }),
    );
  }

  async markIndexed(entries: IndexedEntry[]): Promise<string[]> {
    const changes = await this.#changeAll(entries, ({ key, id, etag, model, profile, version }) =>
      this.#change(key, id, { kind: 'indexed', etag, model, profile, version }, 'report'),
    );
    const stale: string[] = [];
    for (const [i, change] of changes.entries()) {
      const { key, id } = entries[i] as IndexedEntry;
      if (!change.ok)
        throw new ConflictError(`vector id ${id} of '${key}' already belongs to '${change.ownerKey}'`);
      if (change.stale) stale.push(key);
    }
    return stale;
  }

  async markFailed({ key, id, reason, version }: FailedEntry): Promise<boolean> {
    const [change] = await this.#changeAll([key], () =>
      this.#change(key, id, { kind: 'failed', reason, version }, 'skip'),
    );
    return change?.ok === true && !change.stale;
  }

  async get(key: string): Promise<ImageRecord | undefined> {
    const item = await this.#getImageItem(key);
    return item && !isTombstone(item) ? toRecord(item) : undefined;
  }

  /**
   * The worker and ingest read a batch's records before they mark it: what is read here (a record, or
   * none) is remembered, so those marks usually go straight to one conditional put.
   */
  async getMany(keys: string[]): Promise<Map<string, ImageRecord>> {
    const unique = [...new Set(keys)];
    const out = new Map<string, ImageRecord>();
    for (const item of await this.#batchGet(unique.map(imagePk))) {
      const key = str(item.objectKey);
      if (isTombstone(item)) {
        remember(this.#seen, key, { item, ownedId: undefined });
        continue;
      }
      const record = toRecord(item);
      out.set(key, record);
      remember(this.#seen, key, { item, ownedId: ownsItsId(record) ? record.id : undefined });
    }
    for (const key of unique) {
      if (!out.has(key)) remember(this.#seen, key, { item: undefined, ownedId: undefined });
    }
    return out;
  }

  async getByIds(ids: string[]): Promise<Map<string, ImageRecord>> {
    const out = new Map<string, ImageRecord>();
    const claims = await this.#batchGet([...new Set(ids)].map(idPk));
    for (const item of await this.#batchGet(claims.map((claim) => imagePk(str(claim.objectKey))))) {
      if (isTombstone(item)) continue;
      const record = toRecord(item);
      out.set(record.id, record);
    }
    return out;
  }

  async *list(prefix = ''): AsyncIterable<ImageRecord> {
    const pages = paginateQuery(
      { client: this.#db, pageSize: 500 },
      {
        TableName: this.#table,
        IndexName: 'byKey',
        KeyConditionExpression: prefix ? 'kp = :kp AND begins_with(objectKey, :prefix)' : 'kp = :kp',
        ExpressionAttributeValues: { ':kp': { S: 'img' }, ...(prefix ? { ':prefix': { S: prefix } } : {}) },
      },
    );
    for await (const page of pages) for (const item of page.Items ?? []) yield toRecord(item);
  }

  /**
   * Replaces each record (or nothing) by a tombstone of `version`, unless the key keeps a newer version:
   * a conditional put on the item's `ver`, as every change here. A tombstone has no `kp` (so it is never
   * listed), no state (never counted) and expires through TTL after TOMBSTONE_RETENTION_MS.
   */
  async remove(keys: string[], version: Version): Promise<string[]> {
    const stale: string[] = [];
    for (const key of new Set(keys)) {
      this.#seen.delete(key);
      await this.#retrying(async () => {
        const old = await this.#getImageItem(key);
        if (num(old?.version) > version) {
          stale.push(key);
          return true;
        }
        const now = Date.now();
        const buried = await this.#conditional(
          new PutItemCommand({
            TableName: this.#table,
            Item: {
              pk: { S: imagePk(key) },
              objectKey: { S: key },
              version: { N: String(version) },
              ver: { N: String(num(old?.ver) + 1) },
              deletedAt: { N: String(now) },
              expiresAt: { N: String(Math.ceil((now + TOMBSTONE_RETENTION_MS) / 1000)) },
            },
            ...versionCondition(old),
          }),
        );
        if (!buried) return false;
        if (!old || isTombstone(old)) return true;
        const record = toRecord(old);
        await this.#conditional(
          new DeleteItemCommand({
            TableName: this.#table,
            Key: { pk: { S: idPk(record.id) } },
            ConditionExpression: 'objectKey = :key',
            ExpressionAttributeValues: { ':key': { S: key } },
          }),
        );
        await this.#count([{ from: record.state }]);
        return true;
      });
    }
    return stale;
  }

  async versions(keys: string[]): Promise<Map<string, Version>> {
    const out = new Map<string, Version>();
    for (const item of await this.#batchGet([...new Set(keys)].map(imagePk))) {
      if (num(item.version) > 0) out.set(str(item.objectKey), num(item.version));
    }
    return out;
  }

  /** Deletes every record, id claim, counter and rate bucket (paged through the byKey index, no scan). */
  async clear(): Promise<void> {
    this.#seen.clear();
    const pks: string[] = [];
    for await (const record of this.list()) pks.push(imagePk(record.key), idPk(record.id));
    pks.push(COUNTERS, ...this.#rateBuckets());
    for (let i = 0; i < pks.length; i += BATCH_WRITE) {
      let requests = pks
        .slice(i, i + BATCH_WRITE)
        .map((pk) => ({ DeleteRequest: { Key: { pk: { S: pk } } } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        const out = await this.#db.send(
          new BatchWriteItemCommand({ RequestItems: { [this.#table]: requests } }),
        );
        requests = (out.UnprocessedItems?.[this.#table] ?? []) as typeof requests;
        if (requests.length > 0) await backoff(attempt);
      }
    }
  }

  /**
   * Counts the records (paged through the byKey index) and puts the counters. A state change written
   * while the records are paged may be counted twice or not at all: verify runs it when it found drift.
   */
  async recount(): Promise<Record<ImageState, number>> {
    const counts: Record<ImageState, number> = { pending: 0, indexed: 0, failed: 0 };
    for await (const record of this.list()) counts[record.state]++;
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: {
          pk: { S: COUNTERS },
          ...Object.fromEntries(STATES.map((state) => [state, { N: String(counts[state]) }])),
        },
      }),
    );
    return counts;
  }

  async progress(recentFailures: number): Promise<ProgressCounts> {
    const [counters, rates, failures] = await Promise.all([
      this.#db.send(
        new GetItemCommand({ TableName: this.#table, Key: { pk: { S: COUNTERS } }, ConsistentRead: true }),
      ),
      this.#batchGet(this.#rateBuckets()),
      recentFailures > 0
        ? this.#db.send(
            new QueryCommand({
              TableName: this.#table,
              IndexName: 'failures',
              KeyConditionExpression: 'fp = :fp',
              ExpressionAttributeValues: { ':fp': { S: 'failed' } },
              ScanIndexForward: false,
              Limit: recentFailures,
            }),
          )
        : undefined,
    ]);
    const item = counters.Item ?? {};
    const [pending, indexed, failed] = STATES.map((state) => Math.max(0, num(item[state])));
    return {
      total: (pending ?? 0) + (indexed ?? 0) + (failed ?? 0),
      pending: pending ?? 0,
      indexed: indexed ?? 0,
      failed: failed ?? 0,
      recentlyIndexed: rates.reduce((sum, rate) => sum + num(rate.indexed), 0),
      windowSeconds: this.#windowMinutes * 60,
      recentFailures: (failures?.Items ?? []).map(
        (f): Failure => ({
          key: str(f.objectKey),
          reason: str(f.reason) || 'unknown',
          at: new Date(num(f.failedAt)),
        }),
      ),
    };
  }

  /**
   * Runs one change per entry, all at once, then adds the moves of those that were written to the
   * counters in one go, also when others failed (their records are written; the first error is thrown).
   */
  async #changeAll<E>(entries: E[], change: (entry: E) => Promise<ChangeResult>): Promise<ChangeResult[]> {
    const settled = await Promise.allSettled(entries.map(change));
    const done = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    await this.#count(done.flatMap((result) => (result.ok && result.moved ? [result.moved] : [])));
    const failure = settled.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    return done;
  }

  /**
   * Moves one record to its next state (the counters are the caller's: #changeAll). `onCollision`:
   * 'report' returns the owner of the id when another key holds it; 'skip' records the state under the
   * key alone (a failure needs no id claim).
   */
  async #change(
    key: string,
    id: string,
    change: Change,
    onCollision: 'report' | 'skip',
  ): Promise<ChangeResult> {
    // Fast path: this process saw the key own its id and saw its record (or saw there was none). If the
    // record is still as seen (version check, or still absent), nobody changed or removed it since
    // (remove deletes the record first), so the claim stands too: one conditional put, no reads. The
    // worker's marks take it after its getMany and claimIds, and re-ingest's after its getMany.
    const seen = this.#seen.get(key);
    const fast = seen?.ownedId === id;
    if (fast) {
      const moved = await this.#put(key, id, change, seen.item, true);
      if (moved === 'stale') return { ok: true, stale: true };
      if (moved) return { ok: true, moved };
    }
    const owner = await this.#claim(key, id);
    if (owner !== undefined && onCollision === 'report') return { ok: false, ownerKey: owner };
    // First try with the record as last seen here, or with none for a key never seen that is marked
    // pending (usually its first mark), before paying for a read. A failed fast path saw a stale record.
    let guess: { item: Item | undefined } | undefined;
    if (seen && !fast) guess = { item: seen.item };
    else if (!seen && change.kind === 'pending') guess = { item: undefined };
    let moved: Move | 'stale' | undefined;
    await this.#retrying(async () => {
      const old = guess ? guess.item : await this.#getImageItem(key);
      guess = undefined;
      moved = await this.#put(key, id, change, old, owner === undefined);
      return moved !== undefined;
    });
    return moved === 'stale' ? { ok: true, stale: true } : { ok: true, moved };
  }

  /**
   * The conditional put of the next record over `old` (a record, a tombstone or nothing); undefined on
   * a conflict (`old` is not what the table holds), 'stale' when `old` keeps a newer version than the
   * change's. The version is compared with `old`, and the put is conditional on `old`'s `ver`: the
   * check and the write are one atomic step, and a conflict reads again and compares again.
   */
  async #put(
    key: string,
    id: string,
    change: Change,
    old: Item | undefined,
    claimed: boolean,
  ): Promise<Move | 'stale' | undefined> {
    const oldVersion = num(old?.version);
    if (change.kind !== 'pending' && change.version !== undefined && oldVersion > change.version) {
      return 'stale';
    }
    const previous = old && !isTombstone(old) ? toRecord(old) : undefined;
    const next = applyChange(previous, key, id, change);
    const version = (change.kind !== 'pending' && change.version) || oldVersion;
    const item = toItem({ ...next, ...(version > 0 ? { version } : {}) }, num(old?.ver) + 1);
    const written = await this.#conditional(
      new PutItemCommand({
        TableName: this.#table,
        Item: { ...item, pk: { S: imagePk(key) }, kp: { S: 'img' }, ...failureIndexOf(next) },
        ...versionCondition(old),
      }),
    );
    if (!written) {
      this.#seen.delete(key);
      return undefined;
    }
    if (claimed) remember(this.#seen, key, { item, ownedId: id });
    else this.#seen.delete(key);
    return { ...(previous ? { from: previous.state } : {}), to: next.state };
  }

  /** Claims `id` for `key` (idempotent); returns the other key that owns it, if any. */
  async #claim(key: string, id: string): Promise<string | undefined> {
    const claimed = await this.#conditional(
      new PutItemCommand({
        TableName: this.#table,
        Item: { pk: { S: idPk(id) }, objectKey: { S: key } },
        ConditionExpression: 'attribute_not_exists(pk) OR objectKey = :key',
        ExpressionAttributeValues: { ':key': { S: key } },
      }),
    );
    if (claimed) return undefined;
    const owner = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: idPk(id) } }, ConsistentRead: true }),
    );
    return str(owner.Item?.objectKey);
  }

  /** Sends a conditional write; false when its condition did not hold. */
  async #conditional(command: PutItemCommand | DeleteItemCommand): Promise<boolean> {
    try {
      await this.#db.send(command as PutItemCommand);
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async #retrying(attempt: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      if (await attempt()) return;
      await backoff(i);
    }
    throw new Error(`catalogue update kept conflicting after ${MAX_ATTEMPTS} attempts`);
  }

  /** Adds the moves to the counters in one ADD, and those into 'indexed' to this minute's rate bucket. */
  async #count(moves: Move[]): Promise<void> {
    const deltas = new Map<ImageState, number>();
    for (const { from, to } of moves) {
      if (from === to) continue;
      if (from) deltas.set(from, (deltas.get(from) ?? 0) - 1);
      if (to) deltas.set(to, (deltas.get(to) ?? 0) + 1);
    }
    const changed = [...deltas].filter(([, delta]) => delta !== 0);
    const indexed = moves.filter((move) => move.to === 'indexed').length;
    await Promise.all([
      changed.length > 0 ? this.#db.send(this.#counterUpdate(changed)) : undefined,
      indexed > 0 ? this.#db.send(this.#rateUpdate(indexed)) : undefined,
    ]);
  }

  #counterUpdate(deltas: [ImageState, number][]): UpdateItemCommand {
    return new UpdateItemCommand({
      TableName: this.#table,
      Key: { pk: { S: COUNTERS } },
      UpdateExpression: `ADD ${deltas.map((_, i) => `#s${i} :d${i}`).join(', ')}`,
      ExpressionAttributeNames: Object.fromEntries(deltas.map(([state], i) => [`#s${i}`, state])),
      ExpressionAttributeValues: Object.fromEntries(
        deltas.map(([, delta], i) => [`:d${i}`, { N: String(delta) }]),
      ),
    });
  }

  #rateUpdate(indexed: number): UpdateItemCommand {
    const minute = Math.floor(Date.now() / 60_000);
    return new UpdateItemCommand({
      TableName: this.#table,
      Key: { pk: { S: `rate#${minute}` } },
      UpdateExpression: 'ADD #indexed :n SET expiresAt = :expires',
      ExpressionAttributeNames: { '#indexed': 'indexed' },
      ExpressionAttributeValues: {
        ':n': { N: String(indexed) },
        ':expires': { N: String((minute + this.#windowMinutes + 60) * 60) },
      },
    });
  }

  #rateBuckets(): string[] {
    const now = Math.floor(Date.now() / 60_000);
    return Array.from({ length: this.#windowMinutes }, (_, i) => `rate#${now - i}`);
  }

  async #getImageItem(key: string): Promise<Item | undefined> {
    const out = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: imagePk(key) } }, ConsistentRead: true }),
    );
    return out.Item;
  }

  /**
   * BatchGetItem in chunks of 100, retrying UnprocessedKeys (throttling) with backoff. Strongly
   * consistent, as get() is: the worker decides from these records whether an object still needs indexing.
   */
  async #batchGet(pks: string[]): Promise<Item[]> {
    const items: Item[] = [];
    for (let i = 0; i < pks.length; i += BATCH_GET) {
      let keys: Item[] = pks.slice(i, i + BATCH_GET).map((pk) => ({ pk: { S: pk } }));
      for (let attempt = 0; keys.length > 0; attempt++) {
        if (attempt >= MAX_ATTEMPTS) throw new Error('DynamoDB kept returning UnprocessedKeys');
        const out = await this.#db.send(
          new BatchGetItemCommand({ RequestItems: { [this.#table]: { Keys: keys, ConsistentRead: true } } }),
        );
        items.push(...(out.Responses?.[this.#table] ?? []));
        keys = out.UnprocessedKeys?.[this.#table]?.Keys ?? [];
        if (keys.length > 0) await backoff(attempt);
      }
    }
    return items;
  }
}

function applyChange(
  previous: ImageRecord | undefined,
  key: string,
  id: string,
  change: Change,
): ImageRecord {
  const now = new Date();
  const base: ImageRecord = { ...(previous ?? {}), key, id, state: change.kind, updatedAt: now };
  switch (change.kind) {
    case 'pending': {
      const { etag: _e, size: _s, reason: _r, ...rest } = base;
      return {
        ...rest,
        ...(change.etag !== undefined ? { etag: change.etag } : {}),
        ...(change.size !== undefined ? { size: change.size } : {}),
      };
    }
    case 'indexed': {
      const { reason: _r, ...rest } = base;
      return {
        ...rest,
        ...(change.etag !== undefined ? { etag: change.etag } : {}),
        model: change.model,
        profile: change.profile,
        indexedAt: now,
      };
    }
    case 'failed':
      return { ...base, reason: change.reason };
  }
}

/** The condition that the item is still `old` (its `ver`), or still absent. */
function versionCondition(old: Item | undefined) {
  return old
    ? {
        ConditionExpression: 'ver = :ver',
        ExpressionAttributeValues: { ':ver': { N: String(num(old.ver)) } },
      }
    : { ConditionExpression: 'attribute_not_exists(pk)' };
}

/** A removed key's tombstone: its version and when it was removed, no record. */
const isTombstone = (item: Item) => item.deletedAt !== undefined;

function toItem(record: ImageRecord, ver: number): Item {
  const item: Item = {
    objectKey: { S: record.key },
    vid: { S: record.id },
    state: { S: record.state },
    updatedAt: { N: String(record.updatedAt.getTime()) },
    ver: { N: String(ver) },
  };
  if (record.etag !== undefined) item.etag = { S: record.etag };
  if (record.size !== undefined) item.size = { N: String(record.size) };
  if (record.reason !== undefined) item.reason = { S: record.reason };
  if (record.model !== undefined) item.model = { S: record.model };
  if (record.profile !== undefined) item.profile = { S: record.profile };
  if (record.indexedAt !== undefined) item.indexedAt = { N: String(record.indexedAt.getTime()) };
  if (record.version !== undefined) item.version = { N: String(record.version) };
  return item;
}

/** Sparse index attributes: only failed records appear in the `failures` index. */
function failureIndexOf(record: ImageRecord): Item {
  return record.state === 'failed'
    ? { fp: { S: 'failed' }, failedAt: { N: String(record.updatedAt.getTime()) } }
    : {};
}

function toRecord(item: Item): ImageRecord {
  const record: ImageRecord = {
    key: str(item.objectKey),
    id: str(item.vid),
    state: str(item.state) as ImageState,
    updatedAt: new Date(num(item.updatedAt)),
  };
  if (item.etag?.S !== undefined) record.etag = item.etag.S;
  if (item.size?.N !== undefined) record.size = Number(item.size.N);
  if (item.reason?.S !== undefined) record.reason = item.reason.S;
  if (item.model?.S !== undefined) record.model = item.model.S;
  if (item.profile?.S !== undefined) record.profile = item.profile.S;
  if (item.indexedAt?.N !== undefined) record.indexedAt = new Date(Number(item.indexedAt.N));
  if (item.version?.N !== undefined) record.version = Number(item.version.N);
  return record;
}

const REMEMBERED = 10_000;

/** Map insertion order is age: past the bound, the oldest entry goes. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value as string);
}

const imagePk = (key: string) => `img#${key}`;
const idPk = (id: string) => `id#${id}`;
const str = (value: AttributeValue | undefined) => value?.S ?? '';
const num = (value: AttributeValue | undefined) => Number(value?.N ?? 0);

function backoff(attempt: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random())));
}
