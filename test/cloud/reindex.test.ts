import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { KEPT_MODELS_PREFIX, loadCloudConfig } from '../../src/adapters/aws/config.ts';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { generationName } from '../../src/app/index-generations.ts';
import type { SearchResponse } from '../../src/app/operations.ts';
import { SEEDED_MANIFEST } from '../../src/app/test-system.ts';
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
// POST /reindex through its Lambda entry; the old collection answers (GET /count, and POST /search with the
// classic model the worker kept in the bucket, through their Lambda entries) until the new one (its own
// collection) is complete, the switch is one write of the table's library item, the API functions follow
// it, and the old collection and its kept model are dropped.

const clients = emulatorClients(inject('awsEndpoint'));
const photos = fixturePhotos(4);
let stack: CloudStack;
let modelDir: string;
let classic: Embedder;
let current: Embedder;
let system: CloudSystem | undefined;
let worker: CloudSystem | undefined;
let reindex: HttpHandler;
let count: HttpHandler;
let search: HttpHandler;
let classicManifest: string;
const savedEnv = { ...process.env };

const countNow = async () =>
  (JSON.parse((await count(apiEvent({ method: 'GET', path: '/count' }))).body as string) as { count: number })
    .count;

/** POST /search through the search function, which holds only the default model (its layer's). */
const searchNow = async (image: Buffer) => {
  const response = await search(
    apiEvent({
      method: 'POST',
      path: '/search',
      query: { topK: '3' },
      headers: { 'content-type': 'image/jpeg' },
      body: image,
    }),
  );
  return { status: response.statusCode, ...(JSON.parse(response.body as string) as Partial<SearchResponse>) };
};

const put = async (key: string, path: string) =>
  clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: await readFile(path) }));

/**
 * `ensureIndex: false` for the default model: a worker on a mismatched index refuses to start. Each worker
 * keeps its model (the shared embedder's manifest) with the generation it builds.
 */
const open = (embedder: Embedder, modelManifest: string, ensureIndex = true) =>
  createCloudSystem(loadCloudConfig(stack.env), {
    embedder,
    modelManifest,
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
  classicManifest = (await writeSeededModel({ modelDir, descriptor: 'mac', whitening: 0 })).manifestPath;
  classic = await OnnxEmbedder.create(await loadManifest(classicManifest), { batchSize: 4 });
  current = await seededEmbedder();
  // The stack states the default model; its API functions read the generations record (a short TTL here).
  Object.assign(process.env, stack.env, { PIC_MODEL_IDENTITY: JSON.stringify(current.info) });
  reindex = invokedAsLambda((await import('../../functions/api/reindex.ts')).handler, 'reindex', 'reindex');
  count = invokedAsLambda((await import('../../functions/api/count.ts')).handler, 'count', 'reindex');
  search = invokedAsLambda((await import('../../functions/api/search.ts')).handler, 'search', 'reindex');
  system = await open(classic, classicManifest);
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
  await Promise.all([system?.close(), worker?.close()]);
  await Promise.all([classic?.close(), current?.close()]);
  await rm(modelDir, { recursive: true, force: true });
  // Where the search function fetched the kept model (src/wiring/cloud-stores.ts keptModels).
  await rm(join(tmpdir(), 'pic-search-models', stack.bucket), { recursive: true, force: true });
});

it('builds the new model a collection of its own while the old one answers, switches, and drops the old', async () => {
  // Prepare: the default model on the classic library.
  await expect(open(current, SEEDED_MANIFEST)).rejects.toBeInstanceOf(IndexMismatchError);
  system = await open(current, SEEDED_MANIFEST, false);
  const { operations } = system;
  const query = await readFile(photos[0]?.path as string);
  expect(await operations.searchByImage(query, { topK: 3 })).toMatchObject({ model: classic.info.model });
  expect(await operations.count()).toBe(3);

  // Act: start the re-index through its function; a photo arrives and one leaves during the build.
  const started = await reindex(apiEvent({ method: 'POST', path: '/reindex' }));
  expect(started.statusCode).toBe(202);
  const task = JSON.parse(started.body as string) as { id: string };
  const beforeBuild = await searchNow(query);
  // A worker of the new model starts now that a re-index is to build its generation.
  worker = await open(current, SEEDED_MANIFEST);
  worker.worker.start();
  await put(`images/${photos[3]?.name}`, photos[3]?.path as string);
  await clients.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket, Key: `images/${photos[2]?.name}` }));
  const counts: number[] = [];
  const searches: Awaited<ReturnType<typeof searchNow>>[] = [];
  const finished = await waitFor(
    async () => {
      counts.push(await countNow());
      searches.push(await searchNow(query));
      return (await operations.progress(0)).tasks.reindex;
    },
    (reindex) => reindex?.state !== 'running',
    180_000,
  );

  // Assess: the old collection answered with its photos until the switch, the new one has the library;
  // the search function answered all along, with the classic model it fetched until it saw the switch.
  expect(finished).toMatchObject({ id: task.id, state: 'done', progress: { indexed: 3, failed: 0 } });
  expect(counts[0]).toBe(3);
  expect(beforeBuild).toMatchObject({
    status: 200,
    model: classic.info.model,
    results: [{ key: `images/${photos[0]?.name}` }, {}, {}],
  });
  expect(searches.map((answer) => answer.status)).toEqual(searches.map(() => 200));
  const models = searches.map((answer) => answer.model);
  const switchedAt = models.indexOf(current.info.model);
  expect(models.slice(0, switchedAt < 0 ? models.length : switchedAt)).toEqual(
    models.slice(0, switchedAt < 0 ? models.length : switchedAt).map(() => classic.info.model),
  );
  for (const answer of searches)
    expect(answer.results?.[0]).toMatchObject({ key: `images/${photos[0]?.name}` });
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
  // The classic model left the bucket with its generation; the default one is kept with its own.
  const kept = await clients.s3.send(
    new ListObjectsV2Command({ Bucket: stack.bucket, Prefix: KEPT_MODELS_PREFIX }),
  );
  const folders = new Set((kept.Contents ?? []).map((object) => object.Key?.split('/')[1]));
  expect([...folders]).toEqual([generationName(current.info)]);
  expect(await searchNow(query)).toMatchObject({ status: 200, model: current.info.model });
});
