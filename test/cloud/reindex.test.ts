import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { generationName } from '../../src/app/index-generations.ts';
import { IndexMismatchError } from '../../src/domain/errors.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { OnnxEmbedder } from '../../src/embedder/onnx-embedder.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import { loadManifest } from '../../src/model/manifest.ts';
import { writeSeededModel } from '../../src/model/seeded.ts';
import { type CloudSystem, createCloudSystem } from '../../src/wiring/cloud.ts';
import { apiEvent, fixturePhotos, invokedAsLambda, seededEmbedder, waitFor } from './harness.ts';
import { type CloudStack, createCloudStack, emulatorClients } from './support.ts';

// Re-index on moto + Milvus Lite: a library built with the classic head, then the default model configured:
// POST /reindex through its Lambda entry; the old collection answers (GET /count through its Lambda entry)
// until the new one (its own collection) is complete, the switch is one write of the table's library item,
// the API functions follow it, and the old collection is dropped.

const clients = emulatorClients(inject('awsEndpoint'));
const photos = fixturePhotos(4);
let stack: CloudStack;
let modelDir: string;
let classic: Embedder;
let current: Embedder;
let system: CloudSystem | undefined;
let reindex: HttpHandler;
let count: HttpHandler;
const savedEnv = { ...process.env };

const countNow = async () =>
  (JSON.parse((await count(apiEvent({ method: 'GET', path: '/count' }))).body as string) as { count: number })
    .count;

const put = async (key: string, path: string) =>
  clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: await readFile(path) }));

/** `ensureIndex: false` for the default model: a worker on a mismatched index refuses to start. */
const open = (embedder: Embedder, ensureIndex = true) =>
  createCloudSystem(loadCloudConfig(stack.env), {
    embedder,
    ensureIndex,
    waitMs: 500,
    // Every process trusts its copy of the generations record for CLOUD_GENERATION_TTL_MS: the old
    // collection is dropped twice that after the switch, plus this grace.
    taskOptions: { pollMs: 300, dropGraceMs: 1000 },
  });

beforeAll(async () => {
  stack = await createCloudStack(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  });
  modelDir = await mkdtemp(join(tmpdir(), 'pic-cloud-reindex-'));
  const mac = await writeSeededModel({ modelDir, descriptor: 'mac', whitening: 0 });
  classic = await OnnxEmbedder.create(await loadManifest(mac.manifestPath), { batchSize: 4 });
  current = await seededEmbedder();
  // The stack states the default model; its API functions read the generations record (a short TTL here).
  Object.assign(process.env, stack.env, { PIC_MODEL_IDENTITY: JSON.stringify(current.info) });
  reindex = invokedAsLambda((await import('../../functions/api/reindex.ts')).handler, 'reindex', 'reindex');
  count = invokedAsLambda((await import('../../functions/api/count.ts')).handler, 'count', 'reindex');
  system = await open(classic);
  system.worker.start();
  for (const photo of photos.slice(0, 3)) await put(`images/${photo.name}`, photo.path);
  await waitFor(
    () => system?.operations.count() ?? Promise.resolve(0),
    (n) => n === 3,
  );
  await system.close();
  system = undefined;
});

afterAll(async () => {
  process.env = savedEnv;
  await system?.close();
  await Promise.all([classic?.close(), current?.close()]);
  await rm(modelDir, { recursive: true, force: true });
});

it('builds the new model a collection of its own while the old one answers, switches, and drops the old', async () => {
  // Prepare: the default model on the classic library.
  await expect(open(current)).rejects.toBeInstanceOf(IndexMismatchError);
  system = await open(current, false);
  const { operations } = system;
  const query = await readFile(photos[0]?.path as string);
  await expect(operations.searchByImage(query, { topK: 3 })).rejects.toBeInstanceOf(IndexMismatchError);
  expect(await operations.count()).toBe(3);

  // Act: start the re-index through its function; a photo arrives and one leaves during the build.
  const started = await reindex(apiEvent({ method: 'POST', path: '/reindex' }));
  expect(started.statusCode).toBe(202);
  const task = JSON.parse(started.body as string) as { id: string };
  await expect(operations.searchByImage(query, { topK: 3 })).rejects.toThrow(/A re-index .* is running/);
  system.worker.start();
  await put(`images/${photos[3]?.name}`, photos[3]?.path as string);
  await clients.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket, Key: `images/${photos[2]?.name}` }));
  const counts: number[] = [];
  const finished = await waitFor(
    async () => {
      counts.push(await countNow());
      return (await operations.progress(0)).tasks.reindex;
    },
    (reindex) => reindex?.state !== 'running',
    180_000,
  );

  // Assess: the old collection answered with its photos until the switch, the new one has the library.
  expect(finished).toMatchObject({ id: task.id, state: 'done', progress: { indexed: 3, failed: 0 } });
  expect(counts[0]).toBe(3);
  const search = await operations.searchByImage(query, { topK: 3 });
  expect(search.model).toBe(current.info.model);
  expect(search.results[0]).toMatchObject({ key: `images/${photos[0]?.name}` });
  expect(await operations.count()).toBe(3);
  // The count function follows the switch once its copy of the record expires (CLOUD_GENERATION_TTL_MS).
  expect(await waitFor(countNow, (n) => n === 3 && counts.at(-1) !== undefined, 30_000)).toBe(3);
  const keys = (await operations.searchByImage(query, { topK: 10 })).results.map((r) => r.key).sort();
  expect(keys).toEqual([0, 1, 3].map((i) => `images/${photos[i]?.name}`).sort());
  const generations = await system.stores.tasks.indexGenerations();
  expect(generations).toMatchObject({ live: { name: generationName(current.info) } });
  expect(generations?.building).toBeUndefined();
  const old = new MilvusVectorIndex({ address: inject('milvusAddress'), collection: stack.collection });
  expect(await old.identity()).toBeUndefined();
  const built = new MilvusVectorIndex({
    address: inject('milvusAddress'),
    collection: `${stack.collection}_${generationName(current.info)}`,
  });
  expect(await built.identity()).toMatchObject({ model: current.info.model, dimension: 256 });
  await Promise.all([old.close(), built.close()]);
});
