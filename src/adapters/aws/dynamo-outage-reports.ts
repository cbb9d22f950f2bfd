import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Outage, OutageReports } from '../../domain/ports.ts';

/** The one item of the catalogue's table that holds the workers' outages (infra/bindings.ts grants it alone to health). */
export const OUTAGES_PK = 'worker-outages';
const WORKER = 'worker_';
/** A reason is an error message: kept short, the item holds one per worker. */
const MAX_REASON = 500;

type Entry = Outage & { until: number };

/**
 * Outage reports in the catalogue's table: one item, `worker-outages`, with one map attribute per worker
 * in an outage (`worker_<id>`: store, since, reason, and `until`, when the report lapses unless renewed).
 * Setting and removing a worker's own attribute never touches another's, so several workers report side
 * by side; a report also removes the lapsed entries of workers that died in an outage, so the item stays
 * small. Reading it is one consistent GetItem.
 */
export class DynamoOutageReports implements OutageReports {
  readonly #db: DynamoDBClient;
  readonly #table: string;

  constructor(db: DynamoDBClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
  }

  async report(worker: string, outage: Outage | undefined, freshMs: number): Promise<void> {
    const names = { '#worker': WORKER + worker };
    const out = await this.#db.send(
      new UpdateItemCommand({
        TableName: this.#table,
        Key: { pk: { S: OUTAGES_PK } },
        ...(outage
          ? {
              UpdateExpression: 'SET #worker = :outage',
              ExpressionAttributeValues: {
                ':outage': {
                  M: {
                    store: { S: outage.store },
                    since: { N: String(outage.since.getTime()) },
                    reason: { S: outage.reason.slice(0, MAX_REASON) },
                    until: { N: String(Date.now() + freshMs) },
                  },
                },
              },
            }
          : { UpdateExpression: 'REMOVE #worker' }),
        ExpressionAttributeNames: names,
        ReturnValues: 'ALL_NEW',
      }),
    );
    await this.#removeLapsed(out.Attributes ?? {});
  }

  async current(): Promise<Outage | undefined> {
    const out = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: OUTAGES_PK } }, ConsistentRead: true }),
    );
    const now = Date.now();
    const fresh = entriesOf(out.Item ?? {})
      .filter(([, entry]) => entry.until > now)
      .sort(([, a], [, b]) => a.since.getTime() - b.since.getTime());
    const first = fresh[0]?.[1];
    return first && { store: first.store, since: first.since, reason: first.reason };
  }

  /** Removes lapsed entries, each only if still as read (a worker renewing its own meanwhile keeps it). */
  async #removeLapsed(item: Record<string, AttributeValue>): Promise<void> {
    const now = Date.now();
    const lapsed = entriesOf(item).filter(([, entry]) => entry.until <= now);
    if (lapsed.length === 0) return;
    const names = Object.fromEntries(lapsed.map(([attribute], i) => [`#w${i}`, attribute]));
    try {
      await this.#db.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: { pk: { S: OUTAGES_PK } },
          UpdateExpression: `REMOVE ${Object.keys(names).join(', ')}`,
          ConditionExpression: lapsed.map((_, i) => `#w${i}.#until = :u${i}`).join(' AND '),
          ExpressionAttributeNames: { ...names, '#until': 'until' },
          ExpressionAttributeValues: Object.fromEntries(
            lapsed.map(([, entry], i) => [`:u${i}`, { N: String(entry.until) }]),
          ),
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
}

function entriesOf(item: Record<string, AttributeValue>): [string, Entry][] {
  return Object.entries(item)
    .filter(([attribute, value]) => attribute.startsWith(WORKER) && value.M !== undefined)
    .map(([attribute, value]) => {
      const m = value.M as Record<string, AttributeValue>;
      return [
        attribute,
        {
          store: m.store?.S as Outage['store'],
          since: new Date(Number(m.since?.N)),
          reason: m.reason?.S ?? '',
          until: Number(m.until?.N),
        },
      ];
    });
}
