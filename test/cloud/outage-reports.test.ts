import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { DynamoOutageReports, OUTAGES_PK } from '../../src/adapters/aws/dynamo-outage-reports.ts';
import type { Outage } from '../../src/domain/ports.ts';
import { emulatorClients, uniqueName } from './support.ts';

// The cloud workers' outage reports on moto: what /progress and /health read while the ECS worker, a
// process of its own, waits an outage out.

const clients = emulatorClients(inject('awsEndpoint'));
let table: string;
let reports: DynamoOutageReports;
const MINUTE = 60_000;
const indexDown: Outage = {
  store: 'index',
  since: new Date('2026-12-06T01:00:00Z'),
  reason: 'connect refused',
};
const queueDown: Outage = { store: 'queue', since: new Date('2026-12-06T01:05:00Z'), reason: 'timeout' };
const sleep = (ms: number) => new Promise((resume) => setTimeout(resume, ms));

beforeAll(async () => {
  table = uniqueName('outages');
  await createCatalogueTable(clients.dynamodb, table);
  reports = new DynamoOutageReports(clients.dynamodb, table);
});
afterAll(() => clients.destroy());

it('shows the earliest outage of the workers in one, until each has recovered', async () => {
  expect(await reports.current()).toBeUndefined();

  await reports.report('a', queueDown, MINUTE);
  await reports.report('b', indexDown, MINUTE);
  expect(await reports.current()).toEqual(indexDown);

  await reports.report('b', undefined, MINUTE);
  expect(await reports.current()).toEqual(queueDown);
  await reports.report('a', undefined, MINUTE);
  expect(await reports.current()).toBeUndefined();
});

it('stops showing the outage of a worker that died in it once its report lapses, and drops the entry', async () => {
  await reports.report('dead', indexDown, 1000);
  expect(await reports.current()).toEqual(indexDown);

  await sleep(1100);
  expect(await reports.current()).toBeUndefined();

  // The next report of any worker removes the lapsed entry, so the item does not grow with dead workers.
  await reports.report('alive', queueDown, MINUTE);
  const item = await clients.dynamodb.send(
    new GetItemCommand({ TableName: table, Key: { pk: { S: OUTAGES_PK } }, ConsistentRead: true }),
  );
  expect(Object.keys(item.Item ?? {}).sort()).toEqual(['pk', 'worker_alive']);
  await reports.report('alive', undefined, MINUTE);
});

it('keeps a report renewed in time', async () => {
  // Read 2.4 s after the first report of 2 s, 1.2 s after its renewal.
  await reports.report('slow', indexDown, 2000);
  await sleep(1200);
  await reports.report('slow', indexDown, 2000);
  await sleep(1200);
  expect(await reports.current()).toEqual(indexDown);
  await reports.report('slow', undefined, 2000);
});
