import {
  DeleteTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { DynamoCatalogue } from '../../src/adapters/aws/dynamo-catalogue.ts';
import { StoreBusyError } from '../../src/domain/errors.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import { versionNow } from '../../src/domain/versions.ts';
import { runCounterWriters } from '../services/counter-writers.ts';
import { emulatorClients, uniqueName } from './support.ts';

const clients = emulatorClients(inject('awsEndpoint'));
afterAll(() => clients.destroy());

// The DynamoDB catalogue's counter shards on moto. The concurrent writers are separate processes (each its
// own DynamoCatalogue, as ECS worker tasks are), through a proxy to moto that cancels transactions at once
// on one item as DynamoDB does (test/services/transaction-conflicts.ts).
describe('DynamoDB counter shards', () => {
  it('end equal to the records when writers conflict on the same keys and one is killed mid-run', async () => {
    const run = await runCounterWriters({
      awsEndpoint: inject('awsEndpoint'),
      writers: 3,
      counterShards: 4,
      batchesPerWriter: 3,
      batchSize: 4,
      sharedKeys: true,
      killFirstAfter: 6,
    });

    expect(run.reports[0]).toBeUndefined();
    expect(run.reports.slice(1)).toEqual([
      expect.objectContaining({ batches: 3 }),
      expect.objectContaining({ batches: 3 }),
    ]);
    // Conflicts were met and retried (on the shared records, and on a shard two transactions drew at once).
    expect(run.stats.conflicts).toBeGreaterThan(0);
    expect(run.records.indexed + run.records.failed).toBeGreaterThan(0);
    expect(run.counters).toEqual(run.records);
  });

  it('conflicts more with one counters item than with 16 shards', async () => {
    const options = {
      awsEndpoint: inject('awsEndpoint'),
      writers: 3,
      batchesPerWriter: 3,
      batchSize: 4,
      sharedKeys: false,
    };
    const single = await runCounterWriters({ ...options, counterShards: 1 });
    const sharded = await runCounterWriters({ ...options, counterShards: 16 });

    // Disjoint keys: the counter shards and rate buckets are the only items the writers share.
    expect(single.stats.conflicts).toBeGreaterThan(sharded.stats.conflicts);
    expect(single.counters).toEqual(single.records);
    expect(sharded.counters).toEqual(sharded.records);
  });

  it('sends a transaction cancelled by conflicts again, past the budget of failed conditions', async () => {
    const table = uniqueName('conflicts');
    await createCatalogueTable(clients.dynamodb, table);
    // The real client, but its first 9 transactions are cancelled as DynamoDB cancels one that meets another.
    let conflicts = 9;
    const client = new Proxy(clients.dynamodb, {
      get(target, property, receiver) {
        if (property !== 'send') return Reflect.get(target, property, receiver);
        return (command: Parameters<DynamoDBClient['send']>[0]) => {
          if (command instanceof TransactWriteItemsCommand && conflicts-- > 0) {
            const reasons = (command.input.TransactItems ?? []).map(() => ({ Code: 'TransactionConflict' }));
            throw new TransactionCanceledException({
              message: 'Transaction cancelled',
              $metadata: {},
              CancellationReasons: reasons,
            });
          }
          return target.send(command);
        };
      },
    });
    const catalogue = new DynamoCatalogue(client, table);

    await catalogue.markPending([{ key: 'a', id: vectorIdOf('a') }]);

    expect(conflicts).toBe(-1);
    expect(await catalogue.progress(0)).toMatchObject({ pending: 1 });

    // Past the budget the table is too busy for now (the worker waits that out), never a per-image failure.
    conflicts = Number.POSITIVE_INFINITY;
    await expect(catalogue.markPending([{ key: 'b', id: vectorIdOf('b') }])).rejects.toThrow(StoreBusyError);
    await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
  }, 60_000);

  it('recount repairs a drifted shard: the counts go to the first shard, zeros to the others', async () => {
    const table = uniqueName('recount');
    await createCatalogueTable(clients.dynamodb, table);
    const catalogue = new DynamoCatalogue(clients.dynamodb, table, { counterShards: 4 });
    const entries = ['a', 'b', 'c'].map((key) => ({ key, id: vectorIdOf(key) }));
    await catalogue.markPending(entries);
    await catalogue.markIndexed(
      entries.slice(1).map((e) => ({ ...e, model: 'm', profile: 'p', version: versionNow() })),
    );
    await clients.dynamodb.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk: { S: 'counters#3' } },
        UpdateExpression: 'ADD #indexed :n',
        ExpressionAttributeNames: { '#indexed': 'indexed' },
        ExpressionAttributeValues: { ':n': { N: '5' } },
      }),
    );
    expect(await catalogue.progress(0)).toMatchObject({ pending: 1, indexed: 7 });

    expect(await catalogue.recount()).toEqual({ pending: 1, indexed: 2, failed: 0 });

    expect(await catalogue.progress(0)).toMatchObject({ pending: 1, indexed: 2, failed: 0 });
    const drifted = await clients.dynamodb.send(
      new GetItemCommand({ TableName: table, Key: { pk: { S: 'counters#3' } } }),
    );
    expect(drifted.Item?.indexed).toEqual({ N: '0' });
    await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
  });

  it('reads the counters item of a table written before the shards as its first shard', async () => {
    const table = uniqueName('legacy');
    await createCatalogueTable(clients.dynamodb, table);
    await clients.dynamodb.send(
      new PutItemCommand({
        TableName: table,
        Item: { pk: { S: 'counters' }, pending: { N: '1' }, indexed: { N: '4' }, failed: { N: '2' } },
      }),
    );

    const progress = await new DynamoCatalogue(clients.dynamodb, table).progress(0);

    expect(progress).toMatchObject({ total: 7, pending: 1, indexed: 4, failed: 2 });
    await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
  });
});
