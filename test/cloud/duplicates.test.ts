import { readFile } from 'node:fs/promises';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { DuplicatesPage } from '../../src/app/duplicates.ts';
import type { TaskView } from '../../src/app/tasks.ts';
import { seededUnitVector } from '../../src/app/test-system.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import type { CloudSystem } from '../../src/wiring/cloud.ts';
import { lambdaContext } from '../lambda-context.ts';
import { apiEvent, fixturePhotos, startCloud, transformedCopy, waitFor } from './harness.ts';
import { type CloudStack, emulatorClients } from './support.ts';

// Cloud duplicates on moto + Milvus Lite: the duplicates function starts a scan, the real worker runs it
// (a per-vector search in Milvus), and the function pages the stored groups.

const THRESHOLD = 0.9;
const GENERATED_GROUPS = 1000;
const clients = emulatorClients(inject('awsEndpoint'));
const [a, b, c] = fixturePhotos(3) as [Photo, Photo, Photo];
type Photo = { name: string; path: string };
let stack: CloudStack;
let embedder: Embedder;
let system: CloudSystem;
let stopCloud: (() => Promise<void>) | undefined;
let duplicates: HttpHandler;
let firstScan: TaskView;

const call = async (request: Parameters<typeof apiEvent>[0]) => {
  const result = await duplicates(apiEvent(request));
  return { status: result.statusCode, body: result.body ? JSON.parse(result.body as string) : undefined };
};
const page = async (query: Record<string, string> = {}) => {
  const answer = await call({
    method: 'GET',
    path: '/duplicates',
    query: { threshold: String(THRESHOLD), ...query },
  });
  expect(answer.status).toBe(200);
  return answer.body as DuplicatesPage;
};

async function scan(): Promise<TaskView> {
  const started = await call({
    method: 'POST',
    path: '/duplicates/scan',
    query: { threshold: String(THRESHOLD) },
  });
  expect(started.status).toBe(202);
  const task = started.body as TaskView;
  const done = await waitFor(
    () => system.stores.tasks.get(task.id),
    (t) => t?.state !== 'running',
    240_000,
  );
  expect(done?.state).toBe('done');
  return task;
}

const firstScanChunk = async () =>
  (
    await clients.dynamodb.send(
      new GetItemCommand({ TableName: stack.table, Key: { pk: { S: `duplicates#${firstScan.id}#0` } } }),
    )
  ).Item;

async function put(key: string, body: Buffer): Promise<void> {
  await clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: body }));
}

beforeAll(async () => {
  ({
    stack,
    embedder,
    system,
    stop: stopCloud,
  } = await startCloud(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  }));
  process.env.PIC_MODEL_IDENTITY = JSON.stringify(embedder.info);
  const { handler } = await import('../../functions/api/duplicates.ts');
  duplicates = (event) => handler(event, lambdaContext('pic-search-duplicates', 'duplicates'));
}, 300_000);

afterAll(async () => {
  await stopCloud?.();
  clients.destroy();
});

it('answers before any scan with no groups and no finished scan', async () => {
  const empty = await page();
  expect(empty).toMatchObject({ groups: [], totalGroups: 0, scan: { running: false, finishedAt: null } });
});

it('groups a library with copies after a scan by the worker, the larger copy first', async () => {
  // Prepare: a photo with a smaller re-encoded copy, a photo with an exact copy, and a photo alone.
  await put(`images/${a.name}`, await readFile(a.path));
  await put(`images/small-${a.name}`, await transformedCopy(a.path));
  await put(`images/${b.name}`, await readFile(b.path));
  await put(`images/copy-${b.name}`, await readFile(b.path));
  await put(`images/${c.name}`, await readFile(c.path));
  await waitFor(
    () => system.operations.count(),
    (n) => n === 5,
  );

  firstScan = await scan();
  expect(await firstScanChunk()).toBeDefined();
  const found = await page();

  const byKeeper = new Map(found.groups.map((group) => [group.keep, group]));
  expect(found.totalGroups).toBe(2);
  expect(byKeeper.get(`images/${a.name}`)?.members.map((m) => m.key)).toEqual([
    `images/${a.name}`,
    `images/small-${a.name}`,
  ]);
  expect(
    byKeeper
      .get(`images/${b.name}`)
      ?.members.map((m) => m.key)
      .sort(),
  ).toEqual([`images/${b.name}`, `images/copy-${b.name}`].sort());
  expect(found.scan).toMatchObject({ running: false, threshold: THRESHOLD });
  expect(Date.parse(found.scan?.finishedAt as string)).not.toBeNaN();
  // Pairs under the scan's threshold were never kept: a lower one asks for a new scan.
  const below = await call({ method: 'GET', path: '/duplicates', query: { threshold: '0.5' } });
  expect(below.status).toBe(400);
  expect(below.body.message).toContain('POST /duplicates/scan');

  // "Not duplicates" is kept in DynamoDB and hides the pair from the next page.
  const dismissed = await call({
    method: 'POST',
    path: '/duplicates/dismissals',
    body: JSON.stringify({ keys: [`images/${b.name}`, `images/copy-${b.name}`] }),
    headers: { 'content-type': 'application/json' },
  });
  expect(dismissed.status).toBe(204);
  expect((await page()).groups.map((group) => group.keep)).toEqual([`images/${a.name}`]);
}, 300_000);

it(`pages through ${GENERATED_GROUPS}+ groups written straight into Milvus, each group once`, async () => {
  // Prepare: pairs of near copies of seeded random vectors (nothing like the photos).
  const { dimension } = embedder.info;
  const items = [];
  for (let g = 0; g < GENERATED_GROUPS; g++) {
    const base = seededUnitVector(g + 1, dimension);
    const noise = seededUnitVector(g + 100_000, dimension);
    const near = base.map((x, i) => x + 0.05 * (noise[i] as number));
    for (const [n, vector] of [base, near].entries()) {
      const key = `images/generated/${g}-${n}.jpg`;
      items.push({ id: vectorIdOf(key), key, vector });
    }
  }
  for (let at = 0; at < items.length; at += 500) await system.stores.index.upsert(items.slice(at, at + 500));

  await scan();
  // The first scan's pairs are gone from the table once the second finished.
  expect(await firstScanChunk()).toBeUndefined();
  const keepers: string[] = [];
  let cursor: string | undefined;
  let total = 0;
  do {
    const next = await page({ limit: '100', ...(cursor ? { cursor } : {}) });
    total = next.totalGroups;
    keepers.push(...next.groups.map((group) => group.members.map((m) => m.key).join(' ')));
    cursor = next.nextCursor ?? undefined;
  } while (cursor);

  const generated = keepers.filter((members) => members.startsWith('images/generated/'));
  expect(total).toBe(GENERATED_GROUPS + 1);
  expect(keepers).toHaveLength(total);
  expect(new Set(generated).size).toBe(GENERATED_GROUPS);
  for (const members of generated)
    expect(members).toMatch(/^images\/generated\/(\d+)-0\.jpg images\/generated\/\1-1\.jpg$/);
}, 600_000);
