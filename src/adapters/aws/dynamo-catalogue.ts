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
  TransactionCanceledException,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { ConflictError, StoreBusyError } from '../../domain/errors.ts';
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

const STATES: ImageState[] = ['pending', 'indexed', 'failed'];
/** BatchGetItem takes at most 100 keys, BatchWriteItem 25 requests. */
const BATCH_GET = 100;
const BATCH_WRITE = 25;
/** TransactWriteItems takes at most 100 items: the records of one, plus a counter shard and a rate bucket. */
const TRANSACT_RECORDS = 98;
const MAX_ATTEMPTS = 8;
/**
 * Transactions cancelled only by another at once on one of their items (TransactionConflict): nothing to
 * read again, and the retry draws another counter shard, so they get a budget of their own (~10 s of
 * back-off). Past it the table is too busy for now: StoreBusyError, which the worker waits out
 * like an outage (its images are handed back, not failed).
 */
const MAX_CONFLICTS = 16;
/** recount() puts every counter shard in one transaction. */
const MAX_COUNTER_SHARDS = 100;

/**
 * The end of the last transaction this process sent to each table: the next waits for it. moto copies
 * the whole table at each transaction and puts that copy back when one is cancelled, so two at once lose
 * each other's writes (DynamoDB itself would run them, or cancel one on a shared item: TransactionConflict).
 */
const lastTransaction = new Map<string, Promise<unknown>>();

export interface DynamoCatalogueOptions {
  /** Window of the "recently indexed" figure progress reports (whole minutes). @default 300 */
  windowSeconds?: number;
  /** Records a page of list() reads (DynamoDB returns at most 1 MB a page, some 4000 records). @default 2000 */
  pageSize?: number;
  /**
   * Items the counters are spread over (1 to 100). Each transaction adds to one, chosen at random, so
   * concurrent writers rarely meet on a counter item; progress sums them all. Raise it freely; lower it
   * only with a recount after (verify --repair), as counts left in the dropped shards are no longer read.
   * @default 16
   */
  counterShards?: number;
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

/** One key's write in a transaction: `old` is its item as last seen or read (undefined: none). */
interface Plan {
  key: string;
  old: Item | undefined;
}

/** The item a plan puts over its `old`, and how the counters move with it. */
interface Write {
  item: Item;
  move: Move;
}

/** A record change of one key, with whether the key owns `id` (claimed or seen to own it). */
interface MarkPlan extends Plan {
  index: number;
  id: string;
  change: Change;
  claimed: boolean;
}

type Change =
  | { kind: 'pending'; etag?: string; size?: number }
  | { kind: 'indexed'; etag?: string; model: string; profile: string; version?: Version }
  | { kind: 'failed'; reason: string; version?: Version };

/**
 * The catalogue on one DynamoDB table (schema and item kinds: catalogue-table.ts). A batch of state
 * changes is a conditional claim of each vector id, then one TransactWriteItems: a put of each record
 * conditional on the item it replaces (optimistic `ver` check; the whole batch is read again and retried
 * when one fails) together with the ADDs the batch makes to one counter shard and its rate bucket. The
 * counters are written with the records they count or not at all, so they cannot drift, and progress
 * never scans: it sums the shards. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
 *
 * Cost: a transaction's items cost two write units each instead of one. On moto, which deep-copies the
 * whole table for each item of a transaction (moto/dynamodb/models/__init__.py, transact_write_items),
 * its time grows with the table: keep tests that write through it small.
 */
export class DynamoCatalogue implements Catalogue {
  readonly #db: DynamoDBClient;
  readonly #table: string;
  readonly #windowMinutes: number;
  readonly #pageSize: number;
  readonly #counterShards: number;
  /** What this process last saw of each key (bounded): a guess that saves reads, checked by each put's condition (#transact). */
  readonly #seen = new Map<string, Seen>();

  constructor(db: DynamoDBClient, tableName: string, options: DynamoCatalogueOptions = {}) {
    this.#db = db;
    this.#table = tableName;
    this.#windowMinutes = Math.max(1, Math.round((options.windowSeconds ?? 300) / 60));
    this.#pageSize = options.pageSize ?? 2000;
    this.#counterShards = options.counterShards ?? 16;
    if (
      !Number.isInteger(this.#counterShards) ||
      this.#counterShards < 1 ||
      this.#counterShards > MAX_COUNTER_SHARDS
    )
      throw new Error(
        `counterShards must be an integer from 1 to ${MAX_COUNTER_SHARDS}, not ${this.#counterShards}`,
      );
  }

  async markPending(entries: PendingEntry[]): Promise<ClaimResult[]> {
    const changes = await this.#changeAll(
      entries.map(({ key, id, etag, size }) => ({ key, id, change: { kind: 'pending', etag, size } })),
      'report',
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
    const changes = await this.#changeAll(
      entries.map(({ key, id, etag, model, profile, version }) => ({
        key,
        id,
        change: { kind: 'indexed', etag, model, profile, version },
      })),
      'report',
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
    const [change] = await this.#changeAll(
      [{ key, id, change: { kind: 'failed', reason, version } }],
      'skip',
    );
    return change?.ok === true && !change.stale;
  }

  async get(key: string): Promise<ImageRecord | undefined> {
    const item = await this.#getImageItem(key);
    return item && !isTombstone(item) ? toRecord(item) : undefined;
  }

  /**
   * The worker and ingest read a batch's records before they mark it: what is read here (a record, or
   * none) is remembered, so those marks usually go straight to one transaction.
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
      { client: this.#db, pageSize: this.#pageSize },
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
   * Replaces each record (or nothing) by a tombstone of `version`, unless the key keeps a newer version,
   * in transactions with the counters (#transact). A tombstone has no `kp` (so it is never listed), no
   * state (never counted) and expires through TTL after TOMBSTONE_RETENTION_MS. The id claims go after.
   */
  async remove(keys: string[], version: Version): Promise<string[]> {
    const unique = [...new Set(keys)];
    for (const key of unique) this.#seen.delete(key);
    const plans: Plan[] = unique.map((key) => ({ key, old: undefined }));
    await this.#reread(plans);
    const now = Date.now();
    const { written, stale } = await this.#transact(plans, ({ key, old }) => {
      if (num(old?.version) > version) return 'stale';
      const item: Item = {
        pk: { S: imagePk(key) },
        objectKey: { S: key },
        version: { N: String(version) },
        ver: { N: String(num(old?.ver) + 1) },
        deletedAt: { N: String(now) },
        expiresAt: { N: String(Math.ceil((now + TOMBSTONE_RETENTION_MS) / 1000)) },
      };
      return { item, move: old && !isTombstone(old) ? { from: str(old.state) as ImageState } : {} };
    });
    await Promise.all(
      written.flatMap(([{ key, old }]) =>
        old && !isTombstone(old) ? [this.#releaseClaim(key, str(old.vid))] : [],
      ),
    );
    return stale.map((plan) => plan.key);
  }

  /**
   * Conditional deletes (the record's `updatedAt` as listed), then the claims of those removed, then one
   * ADD to the counters for the batch, outside any transaction: a transaction costs moto a copy of the whole
   * table per item, hours for a 100k-record cleanup. A crash between the deletes and the ADD leaves the
   * counters high by at most this batch, which verify finds as counter drift and repairs (recount).
   */
  async removeLeftovers(records: ImageRecord[]): Promise<string[]> {
    for (const { key } of records) this.#seen.delete(key);
    // After this process's transactions: moto puts back its copy of the table when one is cancelled.
    const removed = await this.#afterLastTransaction(async () => {
      const deleted = await Promise.all(
        records.map((record) =>
          this.#conditional(
            new DeleteItemCommand({
              TableName: this.#table,
              Key: { pk: { S: imagePk(record.key) } },
              ConditionExpression: 'updatedAt = :at',
              ExpressionAttributeValues: { ':at': { N: String(record.updatedAt.getTime()) } },
            }),
          ),
        ),
      );
      const gone = records.filter((_, i) => deleted[i]);
      // A pending or indexed record owns its claim, and an id claimed is taken by no other key until the
      // claim goes: those are deleted in batches, unconditionally. A failed one may have lost its id to
      // another key: its claim goes only if it is its own.
      const [owning, failed] = [gone.filter(ownsItsId), gone.filter((record) => !ownsItsId(record))];
      await Promise.all([
        this.#batchWrite(owning.map(({ id }) => ({ DeleteRequest: { Key: { pk: { S: idPk(id) } } } }))),
        ...failed.map(({ key, id }) => this.#releaseClaim(key, id)),
      ]);
      await this.#addToCounters(gone.map(({ state }) => ({ from: state })));
      return gone;
    });
    return removed.map(({ key }) => key);
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
    pks.push(...this.#counterShardPks(), ...this.#rateBuckets());
    await this.#batchWrite(pks.map((pk) => ({ DeleteRequest: { Key: { pk: { S: pk } } } })));
  }

  /**
   * Writes new indexed records and their id claims in BatchWriteItem requests, then adds them to the
   * counters: no conditions, no transaction. Only for seeding a large table in a benchmark
   * (scripts/bench-delete-all.ts), where a transaction per batch takes hours on moto; the service never
   * writes this way.
   */
  async seedIndexed(records: Omit<ImageRecord, 'state'>[]): Promise<void> {
    await this.#batchWrite(
      records.flatMap((record): WriteRequest[] => [
        {
          PutRequest: {
            Item: {
              ...toItem({ ...record, state: 'indexed' }, 1),
              pk: { S: imagePk(record.key) },
              kp: { S: 'img' },
            },
          },
        },
        { PutRequest: { Item: { pk: { S: idPk(record.id) }, objectKey: { S: record.key } } } },
      ]),
    );
    await this.#addToCounters(records.map(() => ({ to: 'indexed' })));
  }

  /**
   * Counts the records (paged through the byKey index) and puts the counts in the first counter shard and
   * zeros in the others, in one transaction. A state change written while the records are paged may be
   * counted twice or not at all: verify runs it when it found drift.
   */
  async recount(): Promise<Record<ImageState, number>> {
    const counts: Record<ImageState, number> = { pending: 0, indexed: 0, failed: 0 };
    for await (const record of this.list()) counts[record.state]++;
    const puts: TransactWriteItem[] = this.#counterShardPks().map((pk, shard) => ({
      Put: {
        TableName: this.#table,
        Item: {
          pk: { S: pk },
          ...Object.fromEntries(
            STATES.map((state) => [state, { N: String(shard === 0 ? counts[state] : 0) }]),
          ),
        },
      },
    }));
    for (let attempt = 0; ; attempt++) {
      try {
        const command = new TransactWriteItemsCommand({ TransactItems: puts });
        await this.#afterLastTransaction(() => this.#db.send(command));
        return counts;
      } catch (error) {
        // Cancelled only by a transaction writing a shard at the same time (TransactionConflict).
        if (!(error instanceof TransactionCanceledException) || attempt + 1 >= MAX_CONFLICTS) throw error;
        await backoff(attempt);
      }
    }
  }

  /**
   * The counter shards' sums. BatchGetItem reads the shards one by one, not at one instant: while writes
   * run, a record's arrival may be missed in one shard and its next move seen in another, so a count may be
   * briefly off by the transitions made during the read; once writes stop the sums are exact.
   */
  async progress(recentFailures: number): Promise<ProgressCounts> {
    const [items, failures] = await Promise.all([
      this.#batchGet([...this.#counterShardPks(), ...this.#rateBuckets()]),
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
    const counters = items.filter((item) => !str(item.pk).startsWith(RATE_PREFIX));
    const rates = items.filter((item) => str(item.pk).startsWith(RATE_PREFIX));
    // A shard may hold a negative count (a record counted in one shard, its next move in another).
    const [pending, indexed, failed] = STATES.map((state) =>
      Math.max(
        0,
        counters.reduce((sum, item) => sum + num(item[state]), 0),
      ),
    );
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
   * Claims the entries' ids (all at once), then writes their records in transactions with the counters.
   * `onCollision`: 'report' returns the owner of the id when another key holds it; 'skip' records the
   * state under the key alone (a failure needs no id claim).
   */
  async #changeAll(
    entries: { key: string; id: string; change: Change }[],
    onCollision: 'report' | 'skip',
  ): Promise<ChangeResult[]> {
    const results: ChangeResult[] = [];
    const plans: MarkPlan[] = [];
    const unknown: MarkPlan[] = [];
    await Promise.all(
      entries.map(async ({ key, id, change }, index) => {
        // Fast path: this process saw the key own its id and saw its record (or saw there was none). If
        // the record is still as seen (the put's condition), nobody removed it since, so the claim stands
        // too. The worker's marks take it after its getMany and claimIds, and re-ingest's after its getMany.
        const seen = this.#seen.get(key);
        const owner = seen?.ownedId === id ? undefined : await this.#claim(key, id);
        if (owner !== undefined && onCollision === 'report') {
          results[index] = { ok: false, ownerKey: owner };
          return;
        }
        const plan: MarkPlan = { index, key, id, change, claimed: owner === undefined, old: seen?.item };
        plans.push(plan);
        // Written over the record as last seen here, or over none for a key never seen that is marked
        // pending (usually its first mark), before paying for a read; the put's condition checks the guess.
        if (!seen && change.kind !== 'pending') unknown.push(plan);
      }),
    );
    await this.#reread(unknown);
    const { written, stale } = await this.#transact(plans, nextRecord);
    for (const plan of stale) results[plan.index] = { ok: true, stale: true };
    for (const [plan, { item, move }] of written) {
      results[plan.index] = { ok: true, moved: move };
      if (plan.claimed) remember(this.#seen, plan.key, { item, ownedId: plan.id });
      else this.#seen.delete(plan.key);
    }
    return results;
  }

  /**
   * Puts `next(plan)` over each plan's `old` item, conditional on it (its `ver`, or its absence), in one
   * TransactWriteItems per TRANSACT_RECORDS keys with the counter and rate-bucket ADDs the puts make:
   * all or nothing. A put whose condition fails cancels the transaction; the items of those that failed
   * are read again and the whole transaction built again, so `next` sees what the table holds (and may
   * then find it newer: 'stale', not written). A transaction cancelled only by a conflict is sent again
   * (MAX_CONFLICTS). A key twice among the plans goes into a later transaction.
   */
  async #transact<P extends Plan>(
    plans: P[],
    next: (plan: P) => Write | 'stale',
  ): Promise<{ written: [P, Write][]; stale: P[] }> {
    const written: [P, Write][] = [];
    const stale: P[] = [];
    for (const group of distinctGroups(plans, TRANSACT_RECORDS)) {
      for (let attempt = 0, conflicts = 0; ; ) {
        if (attempt >= MAX_ATTEMPTS)
          throw new Error(`catalogue update kept failing its conditions after ${MAX_ATTEMPTS} attempts`);
        if (conflicts >= MAX_CONFLICTS)
          throw new StoreBusyError(
            `the catalogue table is busy: the update kept conflicting with other transactions after ${MAX_CONFLICTS} attempts`,
          );
        const writes: [P, Write][] = [];
        const refused: P[] = [];
        for (const plan of group) {
          const write = next(plan);
          if (write === 'stale') refused.push(plan);
          else writes.push([plan, write]);
        }
        const failed = writes.length > 0 ? await this.#send(writes) : undefined;
        if (failed === undefined) {
          written.push(...writes);
          stale.push(...refused);
          break;
        }
        if (failed.length === 0) {
          await backoff(conflicts++);
          continue;
        }
        for (const [plan] of failed) this.#seen.delete(plan.key);
        await this.#reread(failed.map(([plan]) => plan));
        await backoff(attempt++);
      }
    }
    return { written, stale };
  }

  /** One TransactWriteItems; the writes whose condition failed when it was cancelled, else undefined. */
  async #send<P extends Plan>(writes: [P, Write][]): Promise<[P, Write][] | undefined> {
    const puts: TransactWriteItem[] = writes.map(([{ old }, { item }]) => ({
      Put: { TableName: this.#table, Item: item, ...versionCondition(old) },
    }));
    const command = new TransactWriteItemsCommand({
      TransactItems: [...puts, ...this.#counterWrites(writes.map(([, { move }]) => move))],
    });
    try {
      await this.#afterLastTransaction(() => this.#db.send(command));
      return undefined;
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      // Reasons come in the order of the items; a conflict with another transaction fails none of ours
      // (the retry then adds to another counter shard, chosen again).
      const reasons = error.CancellationReasons ?? [];
      return writes.filter((_, i) => reasons[i]?.Code === 'ConditionalCheckFailed');
    }
  }

  /** Runs `write` (a transaction, or writes a cancelled one must not undo on moto) once this process's previous one on the table has ended (lastTransaction). */
  #afterLastTransaction<T>(write: () => Promise<T>): Promise<T> {
    const sent = (lastTransaction.get(this.#table) ?? Promise.resolve()).catch(() => undefined).then(write);
    lastTransaction.set(this.#table, sent);
    return sent;
  }

  /** Reads the plans' items again (one BatchGetItem per 100). */
  async #reread(plans: Plan[]): Promise<void> {
    if (plans.length === 0) return;
    const items = new Map<string, Item>();
    for (const item of await this.#batchGet(plans.map((plan) => imagePk(plan.key)))) {
      items.set(str(item.objectKey), item);
    }
    for (const plan of plans) plan.old = items.get(plan.key);
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

  /** Deletes the claim of `id` if `key` still holds it; false when another key does (or none). */
  #releaseClaim(key: string, id: string): Promise<boolean> {
    return this.#conditional(
      new DeleteItemCommand({
        TableName: this.#table,
        Key: { pk: { S: idPk(id) } },
        ConditionExpression: 'objectKey = :key',
        ExpressionAttributeValues: { ':key': { S: key } },
      }),
    );
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

  /** The counter and rate-bucket ADDs of the moves, as single writes (outside a transaction). */
  async #addToCounters(moves: Move[]): Promise<void> {
    for (const { Update } of this.#counterWrites(moves)) {
      if (Update) await this.#db.send(new UpdateItemCommand(Update));
    }
  }

  /**
   * The ADDs of the moves (none when nothing moves) to one counter shard and its rate bucket, as
   * transaction items. The shard is drawn at random for each transaction: two writers at once meet on
   * one shard with odds 1 in counterShards, where a single counters item would make every two conflict.
   */
  #counterWrites(moves: Move[]): TransactWriteItem[] {
    const deltas = new Map<ImageState, number>();
    for (const { from, to } of moves) {
      if (from === to) continue;
      if (from) deltas.set(from, (deltas.get(from) ?? 0) - 1);
      if (to) deltas.set(to, (deltas.get(to) ?? 0) + 1);
    }
    const changed = [...deltas].filter(([, delta]) => delta !== 0);
    const indexed = moves.filter((move) => move.to === 'indexed').length;
    const minute = Math.floor(Date.now() / 60_000);
    const shard = Math.floor(Math.random() * this.#counterShards);
    const writes: TransactWriteItem[] = [];
    if (changed.length > 0) {
      writes.push({
        Update: {
          TableName: this.#table,
          Key: { pk: { S: counterShardPk(shard) } },
          UpdateExpression: `ADD ${changed.map((_, i) => `#s${i} :d${i}`).join(', ')}`,
          ExpressionAttributeNames: Object.fromEntries(changed.map(([state], i) => [`#s${i}`, state])),
          ExpressionAttributeValues: Object.fromEntries(
            changed.map(([, delta], i) => [`:d${i}`, { N: String(delta) }]),
          ),
        },
      });
    }
    if (indexed > 0) {
      writes.push({
        Update: {
          TableName: this.#table,
          Key: { pk: { S: rateBucketPk(minute, shard) } },
          UpdateExpression: 'ADD #indexed :n SET expiresAt = :expires',
          ExpressionAttributeNames: { '#indexed': 'indexed' },
          ExpressionAttributeValues: {
            ':n': { N: String(indexed) },
            ':expires': { N: String((minute + this.#windowMinutes + 60) * 60) },
          },
        },
      });
    }
    return writes;
  }

  #counterShardPks(): string[] {
    return Array.from({ length: this.#counterShards }, (_, shard) => counterShardPk(shard));
  }

  /** The rate buckets of every shard for each minute of the window. */
  #rateBuckets(): string[] {
    const now = Math.floor(Date.now() / 60_000);
    return Array.from({ length: this.#windowMinutes }, (_, i) =>
      Array.from({ length: this.#counterShards }, (_, shard) => rateBucketPk(now - i, shard)),
    ).flat();
  }

  async #getImageItem(key: string): Promise<Item | undefined> {
    const out = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: imagePk(key) } }, ConsistentRead: true }),
    );
    return out.Item;
  }

  /** BatchWriteItem in chunks of 25, retrying UnprocessedItems (throttling) with backoff. */
  async #batchWrite(requests: WriteRequest[]): Promise<void> {
    for (let i = 0; i < requests.length; i += BATCH_WRITE) {
      let unprocessed = requests.slice(i, i + BATCH_WRITE);
      for (let attempt = 0; unprocessed.length > 0; attempt++) {
        const out = await this.#db.send(
          new BatchWriteItemCommand({ RequestItems: { [this.#table]: unprocessed } }),
        );
        unprocessed = out.UnprocessedItems?.[this.#table] ?? [];
        if (unprocessed.length > 0) await backoff(attempt);
      }
    }
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

/** The record `plan.change` makes of `plan.old`; 'stale' when `old` keeps a newer version than the change's. */
function nextRecord({ key, id, change, old }: MarkPlan): Write | 'stale' {
  const oldVersion = num(old?.version);
  const version = change.kind === 'pending' ? undefined : change.version;
  if (version !== undefined && oldVersion > version) return 'stale';
  const previous = old && !isTombstone(old) ? toRecord(old) : undefined;
  const record = applyChange(previous, key, id, change);
  const kept = version ?? oldVersion;
  const item: Item = {
    ...toItem({ ...record, ...(kept > 0 ? { version: kept } : {}) }, num(old?.ver) + 1),
    pk: { S: imagePk(key) },
    kp: { S: 'img' },
    ...failureIndexOf(record),
  };
  return { item, move: { ...(previous ? { from: previous.state } : {}), to: record.state } };
}

/** The plans in groups of at most `size`, no key twice in a group (a transaction writes an item once). */
function distinctGroups<P extends Plan>(plans: P[], size: number): P[][] {
  const groups: { plans: P[]; keys: Set<string> }[] = [];
  for (const plan of plans) {
    let group = groups.find((g) => g.plans.length < size && !g.keys.has(plan.key));
    if (!group) {
      group = { plans: [], keys: new Set() };
      groups.push(group);
    }
    group.plans.push(plan);
    group.keys.add(plan.key);
  }
  return groups.map((group) => group.plans);
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
/** Shard 0 keeps the name of the single counters item tables had before the shards, and so its counts. */
const counterShardPk = (shard: number) => (shard === 0 ? 'counters' : `counters#${shard}`);
const RATE_PREFIX = 'rate#';
const rateBucketPk = (minute: number, shard: number) => `${RATE_PREFIX}${minute}#${shard}`;
const idPk = (id: string) => `id#${id}`;
const str = (value: AttributeValue | undefined) => value?.S ?? '';
const num = (value: AttributeValue | undefined) => Number(value?.N ?? 0);

function backoff(attempt: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random())));
}
