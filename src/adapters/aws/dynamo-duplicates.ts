import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { pairKey } from '../../domain/ids.ts';
import type { DismissedPairs, DuplicateScan, ScannedPairs, VectorPair } from '../../domain/ports.ts';

const LATEST_SCAN = 'duplicates#latest';
const chunkPk = (scanId: string, chunk: number) => `duplicates#${scanId}#${chunk}`;
/** DynamoDB's BatchGetItem and BatchWriteItem limits. */
const BATCH_GET = 100;
const BATCH_WRITE = 25;
/** Dismissed pairs are spread over this many items (string sets), so no item nears DynamoDB's 400 KB. */
const DISMISSAL_SHARDS = 16;
const dismissalPk = (shard: number) => `dismissed#${shard}`;

type Row = [string, string, string, string, number];

/**
 * A duplicates scan's pairs in the catalogue's table (catalogue-table.ts): one item per chunk,
 * `duplicates#<scan>#<n>`, and `duplicates#latest` naming the last finished scan. A chunk's pairs are
 * JSON rows [idA, keyA, idB, keyB, score]: at most 100 pairs of keys up to 1 KiB stay under 400 KB.
 */
export class DynamoScannedPairs implements ScannedPairs {
  readonly #db: DynamoDBClient;
  readonly #table: string;

  constructor(db: DynamoDBClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
  }

  async put(scanId: string, chunk: number, pairs: VectorPair[]): Promise<void> {
    const rows: Row[] = pairs.map(({ a, b, score }) => [a.id, a.key, b.id, b.key, score]);
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: { pk: { S: chunkPk(scanId, chunk) }, pairs: { S: JSON.stringify(rows) } },
      }),
    );
  }

  /** Then removes the previous scan's chunks (a crash before that leaves them behind, unread). */
  async finish(scan: DuplicateScan): Promise<void> {
    const previous = await this.latest();
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: {
          pk: { S: LATEST_SCAN },
          scan: { S: JSON.stringify({ ...scan, finishedAt: scan.finishedAt.toISOString() }) },
        },
      }),
    );
    if (previous === undefined || previous.id === scan.id) return;
    let deletes = Array.from({ length: previous.chunks }, (_, chunk) => ({
      DeleteRequest: { Key: { pk: { S: chunkPk(previous.id, chunk) } } },
    }));
    while (deletes.length > 0) {
      const out = await this.#db.send(
        new BatchWriteItemCommand({ RequestItems: { [this.#table]: deletes.slice(0, BATCH_WRITE) } }),
      );
      deletes = [
        ...((out.UnprocessedItems?.[this.#table] ?? []) as typeof deletes),
        ...deletes.slice(BATCH_WRITE),
      ];
    }
  }

  async latest(): Promise<DuplicateScan | undefined> {
    const out = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: LATEST_SCAN } }, ConsistentRead: true }),
    );
    const text = out.Item?.scan?.S;
    if (text === undefined) return undefined;
    const scan = JSON.parse(text) as Omit<DuplicateScan, 'finishedAt'> & { finishedAt: string };
    return { ...scan, finishedAt: new Date(scan.finishedAt) };
  }

  async pairs(scan: DuplicateScan): Promise<VectorPair[]> {
    const pks = Array.from({ length: scan.chunks }, (_, chunk) => chunkPk(scan.id, chunk));
    const pairs: VectorPair[] = [];
    for (let at = 0; at < pks.length; at += BATCH_GET) {
      for (const item of await batchGet(this.#db, this.#table, pks.slice(at, at + BATCH_GET))) {
        for (const [aId, aKey, bId, bKey, score] of JSON.parse(item.pairs?.S ?? '[]') as Row[]) {
          pairs.push({ a: { id: aId, key: aKey }, b: { id: bId, key: bKey }, score });
        }
      }
    }
    return pairs;
  }
}

/** "Not duplicates" answers in the catalogue's table: string sets of pairKeys in a few items. */
export class DynamoDismissedPairs implements DismissedPairs {
  readonly #db: DynamoDBClient;
  readonly #table: string;

  constructor(db: DynamoDBClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
  }

  async add(pairs: [string, string][]): Promise<void> {
    const byShard = new Map<number, string[]>();
    for (const [a, b] of pairs) {
      const key = pairKey(a, b);
      const shard = shardOf(key);
      byShard.set(shard, [...(byShard.get(shard) ?? []), key]);
    }
    await Promise.all(
      [...byShard].map(([shard, keys]) =>
        this.#db.send(
          new UpdateItemCommand({
            TableName: this.#table,
            Key: { pk: { S: dismissalPk(shard) } },
            UpdateExpression: 'ADD pairs :pairs',
            ExpressionAttributeValues: { ':pairs': { SS: [...new Set(keys)] } },
          }),
        ),
      ),
    );
  }

  async all(): Promise<Set<string>> {
    const pks = Array.from({ length: DISMISSAL_SHARDS }, (_, shard) => dismissalPk(shard));
    const items = await batchGet(this.#db, this.#table, pks);
    return new Set(items.flatMap((item) => item.pairs?.SS ?? []));
  }
}

/** The items of up to 100 keys, asking again for any DynamoDB left unprocessed. */
async function batchGet(db: DynamoDBClient, table: string, pks: string[]) {
  const items = [];
  let keys = pks.map((pk) => ({ pk: { S: pk } }));
  while (keys.length > 0) {
    const out = await db.send(
      new BatchGetItemCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }),
    );
    items.push(...(out.Responses?.[table] ?? []));
    keys = (out.UnprocessedKeys?.[table]?.Keys ?? []) as typeof keys;
  }
  return items;
}

function shardOf(key: string): number {
  let hash = 0;
  for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) >>> 0;
  return hash % DISMISSAL_SHARDS;
}
