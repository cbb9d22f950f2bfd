import {
  CreateTableCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/**
 * The catalogue table's schema, one source of truth for the adapter, the tests and the CDK stack
 * (attribute types are DynamoDB's: 'S' string, 'N' number; they equal CDK's AttributeType values).
 *
 * Items (single-table design, partition key only):
 * - `img#<object key>`  the image record (state, etag, reason, model…, `version` of its last write);
 *   carries `kp` so the `byKey` index lists keys by prefix, and `fp`/`failedAt` only while failed
 *   (sparse `failures` index). Once removed, its tombstone: `version` and `deletedAt`, no `kp` (never
 *   listed), expiring through TTL `expiresAt`.
 * - `id#<vector id>`    the claim of a vector id by one object key, written with a condition (a
 *   different key holding the id is a hash collision); search results map ids → keys → records with
 *   two BatchGetItem calls.
 * - `counters`, `counters#<n>`  shards of pending / indexed / failed: each transaction of records ADDs
 *   its moves to one, so progress never scans (it sums the shards) and concurrent writers seldom conflict.
 * - `rate#<minute>#<n>` images indexed in that minute through shard n (ADD), expiring through TTL `expiresAt`.
 */
export const CatalogueTable = {
  partitionKey: { name: 'pk', type: 'S' },
  billingMode: 'PAY_PER_REQUEST',
  timeToLiveAttribute: 'expiresAt',
  globalSecondaryIndexes: [
    {
      indexName: 'byKey',
      partitionKey: { name: 'kp', type: 'S' },
      sortKey: { name: 'objectKey', type: 'S' },
      projection: 'ALL',
    },
    {
      indexName: 'failures',
      partitionKey: { name: 'fp', type: 'S' },
      sortKey: { name: 'failedAt', type: 'N' },
      projection: 'ALL',
    },
  ],
} as const;

/** Creates the table as the CDK stack does (tests and local runs against moto). */
export async function createCatalogueTable(dynamodb: DynamoDBClient, tableName: string): Promise<void> {
  const t = CatalogueTable;
  const attributes = new Map<string, 'S' | 'N'>([[t.partitionKey.name, t.partitionKey.type]]);
  for (const index of t.globalSecondaryIndexes) {
    attributes.set(index.partitionKey.name, index.partitionKey.type);
    attributes.set(index.sortKey.name, index.sortKey.type);
  }
  await dynamodb.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: t.billingMode,
      AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({
        AttributeName,
        AttributeType,
      })),
      KeySchema: [{ AttributeName: t.partitionKey.name, KeyType: 'HASH' }],
      GlobalSecondaryIndexes: t.globalSecondaryIndexes.map((index) => ({
        IndexName: index.indexName,
        KeySchema: [
          { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: index.projection },
      })),
    }),
  );
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName: tableName });
  await dynamodb.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: t.timeToLiveAttribute, Enabled: true },
    }),
  );
}
