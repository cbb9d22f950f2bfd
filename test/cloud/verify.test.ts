import { readFile } from 'node:fs/promises';
import { PutBucketNotificationConfigurationCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { isSettled } from '../../src/app/settle.ts';
import type { VerifyReport } from '../../src/app/verify.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { CloudSystem } from '../../src/wiring/cloud.ts';
import { fixturePhotos, startCloud, waitFor } from './harness.ts';
import { type CloudStack, emulatorClients } from './support.ts';

// Stale versions on moto + Milvus Lite: drift made through the real stores (an older look's vector written
// through the Milvus adapter after its record; an object overwritten whose event never came), reported by
// a verification the worker runs, repaired by re-queueing, and a second verification finds none.

const clients = emulatorClients(inject('awsEndpoint'));
const [first, second, third] = fixturePhotos(3) as [Photo, Photo, Photo];
type Photo = { name: string; path: string };
const keyOf = (photo: Photo) => `images/${photo.name}`;
let stack: CloudStack;
let system: CloudSystem;
let stopCloud: (() => Promise<void>) | undefined;

const put = async (key: string, body: Buffer) =>
  clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: body }));

async function verified(repair: boolean): Promise<VerifyReport> {
  const task = await system.operations.verify({ repair });
  const done = await waitFor(
    () => system.stores.tasks.get(task.id),
    (t) => t?.state === 'done',
    120_000,
  );
  return done?.report as VerifyReport;
}

const settled = () =>
  waitFor(
    () => system.operations.progress(0),
    (progress) => isSettled(progress),
    120_000,
  );

beforeAll(async () => {
  ({
    stack,
    system,
    stop: stopCloud,
  } = await startCloud(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  }));
  for (const photo of [first, second]) await put(keyOf(photo), await readFile(photo.path));
  await waitFor(
    () => system.operations.count(),
    (n) => n === 2,
  );
}, 300_000);

afterAll(async () => {
  await stopCloud?.();
  clients.destroy();
});

it('reports stale versions made through the real stores, repairs them by re-queueing, and then finds none', async () => {
  const { catalogue, index } = system.stores;
  const [firstBytes, thirdBytes] = await Promise.all([readFile(first.path), readFile(third.path)]);
  // Arrange: the look at the first photo's object that its vector and record came from.
  const firstId = vectorIdOf(keyOf(first));
  const older = { etag: (await catalogue.get(keyOf(first)))?.etag, vector: await index.get(firstId) };

  // Act 1: the first photo overwritten and indexed, then the older look's vector written late through
  // the Milvus adapter; the second overwritten after the bucket stopped sending events (one never came).
  await put(keyOf(first), thirdBytes);
  await waitFor(
    () => catalogue.get(keyOf(first)),
    (record) => record?.state === 'indexed' && record.etag !== older.etag,
  );
  await index.upsert([
    { id: firstId, key: keyOf(first), etag: older.etag, vector: older.vector as Float32Array },
  ]);
  await clients.s3.send(
    new PutBucketNotificationConfigurationCommand({ Bucket: stack.bucket, NotificationConfiguration: {} }),
  );
  await put(keyOf(second), firstBytes);
  const found = await verified(false);

  // Assess 1: both keys are stale versions, and nothing else drifted.
  expect(found.drift.staleVersions.examples.sort()).toEqual([keyOf(first), keyOf(second)].sort());
  expect(found.driftCount).toBe(2);

  // Act 2: repair, settle, verify again.
  expect((await verified(true)).repaired).toBe(true);
  await settled();
  const after = await verified(false);

  // Assess 2: no drift; each key is found by the bytes the bucket holds.
  expect(after).toMatchObject({ driftCount: 0, records: 2, vectors: 2 });
  for (const [bytes, key] of [
    [thirdBytes, keyOf(first)],
    [firstBytes, keyOf(second)],
  ] as const) {
    const hits = (await system.operations.searchByImage(bytes, { topK: 2 })).results;
    expect(hits.find((hit) => hit.key === key)?.score).toBeGreaterThanOrEqual(0.999);
  }
}, 300_000);
