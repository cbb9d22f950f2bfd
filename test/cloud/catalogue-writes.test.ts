import {
  DeleteTableCommand,
  type DynamoDBClient,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { DynamoCatalogue } from '../../src/adapters/aws/dynamo-catalogue.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import { versionNow } from '../../src/domain/versions.ts';
import { emulatorClients, uniqueName } from './support.ts';

// The DynamoDB catalogue's writes on moto, seen through a thin wrapper around the real client: which
// requests fail their condition, and what a process that dies at any request leaves behind.
const clients = emulatorClients(inject('awsEndpoint'));
afterAll(() => clients.destroy());

/**
 * The real client; records every error it answers (a cancelled transaction with the codes of its
 * reasons), and dies (refuses every request, as a killed process sends none) after `lives` requests.
 */
function watched(client: DynamoDBClient) {
  const state = { errors: [] as string[], lives: Number.POSITIVE_INFINITY, sent: 0 };
  const proxy = new Proxy(client, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver);
      return async (...args: Parameters<DynamoDBClient['send']>) => {
        if (state.lives-- <= 0) throw new Error('the process died');
        state.sent++;
        try {
          return await target.send(...args);
        } catch (error) {
          const reasons =
            error instanceof TransactionCanceledException ? error.CancellationReasons : undefined;
          state.errors.push(
            [(error as Error).name, ...(reasons ?? []).map((reason) => reason.Code)].join(' '),
          );
          throw error;
        }
      };
    },
  });
  return { client: proxy, state };
}

const entry = (key: string) => ({ key, id: vectorIdOf(key) });

describe('DynamoCatalogue writes on moto', () => {
  let table: string;

  beforeEach(async () => {
    table = uniqueName('writes');
    await createCatalogueTable(clients.dynamodb, table);
  });

  afterEach(async () => {
    await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
  });

  it('refuses a late older write through a failed condition, then a read of what the table holds', async () => {
    const { client, state } = watched(clients.dynamodb);
    const late = new DynamoCatalogue(client, table);
    const other = new DynamoCatalogue(clients.dynamodb, table);
    const [image, gone] = [entry('late.jpg'), entry('gone.jpg')];
    const [older, newer] = [versionNow(), versionNow()];
    // The late process reads both keys (and claims their ids) before the other process writes newer versions.
    await late.getMany([image.key, gone.key]);
    await late.claimIds([image, gone]);
    await other.markIndexed([{ ...image, etag: 'new', model: 'm', profile: 'p', version: newer }]);
    await other.remove([gone.key], newer);

    const refused = await late.markIndexed(
      [image, gone].map((e) => ({ ...e, etag: 'old', model: 'm', profile: 'p', version: older })),
    );

    expect(refused.sort()).toEqual([gone.key, image.key].sort());
    // Its first transaction was built on what it had read: cancelled because both puts failed their condition.
    // (the reasons of the counter and rate-bucket items that follow are None)
    expect(state.errors).toEqual([
      expect.stringMatching(
        /^TransactionCanceledException ConditionalCheckFailed ConditionalCheckFailed( None)*$/,
      ),
    ]);
    expect(await other.get(image.key)).toMatchObject({ etag: 'new', version: newer });
    expect(await other.get(gone.key)).toBeUndefined();
  });

  it('leaves counters equal to the records wherever a process dies in a batch of marks and removes', async () => {
    const healthy = new DynamoCatalogue(clients.dynamodb, table);
    const work = async (catalogue: DynamoCatalogue, run: number) => {
      const [a, b, c] = ['a', 'b', 'c'].map((name) => entry(`run${run}/${name}.jpg`)) as [
        ReturnType<typeof entry>,
        ReturnType<typeof entry>,
        ReturnType<typeof entry>,
      ];
      await catalogue.markPending([a, b, c]);
      await catalogue.markIndexed(
        [a, b].map((e) => ({ ...e, model: 'm', profile: 'p', version: versionNow() })),
      );
      await catalogue.markFailed({ ...c, reason: 'corrupt', version: versionNow() });
      await catalogue.remove([a.key], versionNow());
    };
    const full = watched(clients.dynamodb);
    await work(new DynamoCatalogue(full.client, table), 0);
    const drift: string[] = [];

    for (let lives = 1; lives < full.state.sent; lives++) {
      const dying = watched(clients.dynamodb);
      dying.state.lives = lives;
      await expect(work(new DynamoCatalogue(dying.client, table), lives)).rejects.toThrow('the process died');
      const counted = { pending: 0, indexed: 0, failed: 0 };
      for await (const record of healthy.list()) counted[record.state]++;
      const { pending, indexed, failed } = await healthy.progress(0);
      if (pending !== counted.pending || indexed !== counted.indexed || failed !== counted.failed) {
        drift.push(
          `died after ${lives} requests: counters ${[pending, indexed, failed]}, records ${Object.values(counted)}`,
        );
      }
    }

    expect(full.state.sent).toBeGreaterThan(3);
    expect(drift).toEqual([]);
  });
});
