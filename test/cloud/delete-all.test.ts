import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Progress } from '../../src/app/operations.ts';
import type { VerifyReport } from '../../src/app/verify.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import type { LambdaHttpHandler } from '../../src/observability/lambda-handler.ts';
import type { CloudSystem } from '../../src/wiring/cloud.ts';
import { apiEvent, fixturePhotos, invokedAsLambda, startCloud, waitFor } from './harness.ts';
import { type CloudStack, emulatorClients } from './support.ts';

// Delete-all on moto + Milvus Lite through the API function's own entry, held to its 29 s timeout, with
// a library larger than the photos: records and vectors of keys with no object, written through the real
// catalogue and index. (The 100k-record run is `npm run bench:delete-all`: docs/operations.md.)

const API_TIMEOUT_MS = 29_000;
const EXTRA_RECORDS = 300;
const clients = emulatorClients(inject('awsEndpoint'));
const photos = fixturePhotos(4);
let stack: CloudStack;
let embedder: Embedder;
let system: CloudSystem;
let stopCloud: (() => Promise<void>) | undefined;
let deleteAll: HttpHandler;
let progress: HttpHandler;

const invoked = (handler: LambdaHttpHandler, name: string) => invokedAsLambda(handler, name, 'delete-all');

const progressNow = async () =>
  JSON.parse((await progress(apiEvent({ method: 'GET', path: '/progress' }))).body as string) as Progress;

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
  deleteAll = invoked((await import('../../functions/api/delete-all.ts')).handler, 'delete-all');
  progress = invoked((await import('../../functions/api/progress.ts')).handler, 'progress');
  for (const photo of photos) {
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: stack.bucket,
        Key: `images/${photo.name}`,
        Body: await readFile(photo.path),
      }),
    );
  }
  await waitFor(
    () => system.operations.count(),
    (n) => n === photos.length,
  );
  const { catalogue, index } = system.stores;
  const extra = Array.from({ length: EXTRA_RECORDS }, (_, i) => `images/bulk/${i}.jpg`);
  const vector = (await index.get(vectorIdOf(`images/${photos[0]?.name}`))) as Float32Array;
  for (let start = 0; start < extra.length; start += 100) {
    const keys = extra.slice(start, start + 100);
    await index.upsert(keys.map((key) => ({ id: vectorIdOf(key), key, vector })));
    const { model, profile } = embedder.info;
    await catalogue.markIndexed(keys.map((key) => ({ key, id: vectorIdOf(key), etag: 'e', model, profile })));
  }
}, 300_000);

afterAll(async () => {
  await stopCloud?.();
  clients.destroy();
});

it('answers 202 within the API timeout with search and count empty at once; the worker cleans up; re-ingest indexes every photo again', async () => {
  const total = photos.length + EXTRA_RECORDS;
  expect(await system.operations.count()).toBe(total);
  const query = await readFile(photos[1]?.path as string);

  const started = performance.now();
  const response = await deleteAll(
    apiEvent({ method: 'DELETE', path: '/images', query: { confirm: 'true' } }),
  );
  const elapsedMs = performance.now() - started;

  expect(response.statusCode).toBe(202);
  expect(elapsedMs).toBeLessThan(API_TIMEOUT_MS);
  expect(JSON.parse(response.body as string)).toMatchObject({ deleted: total, task: { state: 'running' } });
  expect(await system.operations.count()).toBe(0);
  expect((await system.operations.searchByImage(query, { topK: 5 })).results).toEqual([]);

  const cleaned = await waitFor(progressNow, (p) => p.tasks.deleteAll?.state === 'done', 120_000);
  expect(cleaned).toMatchObject({
    total: 0,
    indexed: 0,
    tasks: { deleteAll: { progress: { recordsRemoved: total } } },
  });

  // Kept photos stay out until asked for: re-ingest indexes them all again.
  const report = await system.operations.backfill('');
  expect(report).toMatchObject({ queued: photos.length, unchanged: 0 });
  expect(
    await waitFor(
      () => system.operations.count(),
      (n) => n === photos.length,
    ),
  ).toBe(photos.length);
  const hits = (await system.operations.searchByImage(query, { topK: 1 })).results;
  expect(hits[0]?.key).toBe(`images/${photos[1]?.name}`);

  await system.operations.verify({ repair: false });
  const verified = await waitFor(progressNow, (p) => p.tasks.verify?.state === 'done', 60_000);
  expect((verified.tasks.verify?.report as VerifyReport | undefined)?.driftCount).toBe(0);
}, 300_000);
