import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { makeHealthHandler, makeProgressHandler } from '../../src/http/handlers/status.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import { type CloudSystem, createCloudSystem } from '../../src/wiring/cloud.ts';
import { healthOperations, progressOperations } from '../../src/wiring/lambda.ts';
import { startMilvusLite } from '../services/emulators.ts';
import { startProxy } from '../services/proxy.ts';
import { apiEvent, fixturePhotos, REPO_ROOT, seededEmbedder, waitFor } from './harness.ts';
import {
  type CloudStack,
  createCloudStack,
  emulatorClients,
  uniqueCollection,
  visibleMessages,
} from './support.ts';

// Failures the cloud deployment must survive, each on its own queue, table and collection. The Milvus
// outages use a Milvus Lite server of this file's own (its own data directory and port), stopped and
// started again for real; the process test runs functions/worker/main.ts as the container does.

const awsEndpoint = inject('awsEndpoint');
const clients = emulatorClients(awsEndpoint);
const photos = fixturePhotos(8);
let embedder: Embedder;
let milvusDir: string;
let milvus: Awaited<ReturnType<typeof startMilvusLite>>;
const systems: CloudSystem[] = [];
const logLines: string[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) });

async function stackAndSystem(options: {
  maxReceiveCount: number;
  milvusAddress: string;
  batchSize?: number;
  /** The worker reaches AWS through this endpoint instead (a proxy that can be cut). */
  workerAwsEndpoint?: string;
}): Promise<{ stack: CloudStack; system: CloudSystem }> {
  const stack = await createCloudStack(
    clients,
    { awsEndpoint, milvusAddress: options.milvusAddress },
    { maxReceiveCount: options.maxReceiveCount, visibilityTimeoutSeconds: 30 },
  );
  const through = options.workerAwsEndpoint;
  const env = {
    ...stack.env,
    PIC_MAX_RECEIVE_COUNT: String(options.maxReceiveCount),
    PIC_BATCH_SIZE: String(options.batchSize ?? 2),
    PIC_VISIBILITY_SECONDS: '30',
    // The breaker's clock, shortened: 100 ms doubling to 2 s (the default is 1 s to 5 min).
    PIC_OUTAGE_FIRST_MS: '100',
    PIC_OUTAGE_LONGEST_MS: '2000',
    ...(through
      ? { AWS_ENDPOINT_URL: through, QUEUE_URL: stack.queue.url.replace(awsEndpoint, through) }
      : {}),
  };
  stack.env = env;
  const system = await createCloudSystem(loadCloudConfig(env), { embedder, waitMs: 1000, logger });
  systems.push(system);
  return { stack, system };
}

const putPhotos = async (bucket: string, list: typeof photos) => {
  for (const photo of list) {
    await clients.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: `images/${photo.name}`, Body: await readFile(photo.path) }),
    );
  }
};

beforeAll(async () => {
  embedder = await seededEmbedder();
  milvusDir = await mkdtemp(join(tmpdir(), 'pic-milvus-faults-'));
  milvus = await startMilvusLite(milvusDir);
}, 120_000);

afterAll(async () => {
  for (const system of systems) await system.close();
  await embedder?.close();
  await milvus?.stop();
  await rm(milvusDir, { recursive: true, force: true });
  clients.destroy();
});

/** GET /progress and GET /health as their Lambda functions answer them, built from the stack's variables. */
async function statusFunctions(env: Record<string, string>) {
  const call = async (handler: HttpHandler, path: string) =>
    JSON.parse((await handler(apiEvent({ method: 'GET', path }))).body as string) as Record<string, unknown>;
  const lambdaEnv = { ...env, PIC_MODEL_IDENTITY: JSON.stringify(embedder.info) };
  const progress = makeProgressHandler(await progressOperations(lambdaEnv));
  const health = makeHealthHandler(await healthOperations(lambdaEnv));
  return { progress: () => call(progress, '/progress'), health: () => call(health, '/health') };
}

describe('cloud faults', () => {
  it('waits out a Milvus outage mid-ingest: nothing dead-lettered, every image indexed once after; the progress and health functions show it meanwhile', async () => {
    const { stack, system } = await stackAndSystem({ maxReceiveCount: 2, milvusAddress: milvus.address });
    const lambdas = await statusFunctions(stack.env);
    system.worker.start();
    // Two photos before the outage and the rest during it, so that the worker meets the outage however
    // fast it indexes (with all eight put at once, a quick worker could finish before Milvus stops).
    await putPhotos(stack.bucket, photos.slice(0, 2));

    await waitFor(
      () => system.operations.progress(0),
      (p) => p.indexed === 2,
    );
    expect(await lambdas.health()).toMatchObject({ status: 'ok' });
    await milvus.stop();
    await putPhotos(stack.bucket, photos.slice(2));
    await waitFor(
      async () => system.worker.outage,
      (outage) => outage?.store === 'index',
    );
    // The worker is another process for the functions: they read what it reported to the table.
    const since = system.worker.outage?.since.toISOString();
    const message = `index unavailable since ${since}`;
    const shown = await waitFor(lambdas.progress, (p) => p.outage !== undefined, 10_000);
    expect(shown.outage).toMatchObject({ store: 'index', since, message });
    expect(await lambdas.health()).toMatchObject({ status: 'degraded', outage: { store: 'index', message } });
    // 15 s down with the breaker's pauses capped at 2 s: a dozen closed checks, no receive meanwhile.
    await new Promise((resume) => setTimeout(resume, 15_000));
    milvus = await startMilvusLite(milvusDir, milvus.port);
    const done = await waitFor(
      () => system.operations.progress(5),
      (p) => p.indexed === photos.length && p.pending === 0,
      240_000,
    );

    // Milvus Lite replays its write-ahead log when the collection is loaded again after the restart.
    const vectors = await waitFor(
      () => system.stores.index.count(),
      (n) => n === photos.length,
      30_000,
    );

    expect(done).toMatchObject({ total: photos.length, indexed: photos.length, failed: 0, pending: 0 });
    const missing: string[] = [];
    for (const photo of photos) {
      if (!(await system.stores.index.get(vectorIdOf(`images/${photo.name}`)))) missing.push(photo.name);
    }
    expect(missing, 'recorded indexed, yet without a vector in Milvus Lite').toEqual([]);
    expect(vectors).toBe(photos.length);
    expect(system.worker.stats).toMatchObject({ indexed: photos.length, retried: 0, failed: 0 });
    expect(system.worker.outage).toBeUndefined();
    expect(await lambdas.progress()).not.toHaveProperty('outage');
    expect(await lambdas.health()).toMatchObject({ status: 'ok' });
    expect(await visibleMessages(clients, stack.queue.deadLetterUrl)).toBe(0);
    expect(logLines.some((line) => line.includes('index unavailable: receiving nothing'))).toBe(true);
  });

  it('waits out an AWS outage (S3, SQS and DynamoDB unreachable) mid-ingest the same way', async () => {
    const proxy = await startProxy(new URL(awsEndpoint).port);
    const { stack, system } = await stackAndSystem({
      maxReceiveCount: 2,
      milvusAddress: inject('milvusAddress'),
      workerAwsEndpoint: proxy.endpoint,
    });
    system.worker.start();
    await putPhotos(stack.bucket, photos);

    await waitFor(
      () => system.operations.progress(0),
      (p) => p.indexed >= 2,
    );
    await proxy.cut();
    await waitFor(
      async () => system.worker.outage,
      (outage) => outage !== undefined,
    );
    await new Promise((resume) => setTimeout(resume, 10_000));
    await proxy.restore();
    const done = await waitFor(
      () => system.operations.progress(5),
      (p) => p.indexed === photos.length && p.pending === 0,
      240_000,
    );
    await proxy.close();

    expect(done).toMatchObject({ total: photos.length, indexed: photos.length, failed: 0, pending: 0 });
    expect(await system.stores.index.count()).toBe(photos.length);
    expect(system.worker.stats).toMatchObject({ retried: 0, failed: 0 });
    expect(await visibleMessages(clients, stack.queue.deadLetterUrl)).toBe(0);
  });

  it('keeps every row of upserts sent at once across a Milvus Lite restart', async () => {
    const index = new MilvusVectorIndex({ address: milvus.address, collection: uniqueCollection('at_once') });
    await index.ensure({ model: 'm', profile: 'p', dimension: 512 });
    let next = 1;
    const batch = () =>
      Array.from({ length: 8 }, () => {
        const i = next++;
        return {
          id: String(i),
          key: `k/${i}`,
          vector: Float32Array.from({ length: 512 }, (_, d) => 2 + Math.sin(i + d)),
        };
      });

    // Three batches of 512-d vectors in flight at a time (the worker has two), 100 times over.
    for (let round = 0; round < 100; round++) {
      await Promise.all([index.upsert(batch()), index.upsert(batch()), index.upsert(batch())]);
    }
    await milvus.stop();
    milvus = await startMilvusLite(milvusDir, milvus.port);
    const rows = await index.count();
    await index.close();

    expect(rows).toBe(next - 1);
  });

  it('dead-letters a message nobody can read, logging why', async () => {
    const { stack, system } = await stackAndSystem({ maxReceiveCount: 2, milvusAddress: milvus.address });
    system.worker.start();
    const body = '{"this is": "not an S3 event"}';

    await clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queue.url, MessageBody: body }));
    await waitFor(
      () => visibleMessages(clients, stack.queue.deadLetterUrl),
      (n) => n === 1,
    );

    const dead = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queue.deadLetterUrl }));
    expect(dead.Messages?.[0]?.Body).toBe(body);
    expect(await visibleMessages(clients, stack.queue.url)).toBe(0);
    expect(logLines.some((line) => line.includes('not an S3 event or a pic-search message'))).toBe(true);
  });

  it('loses nothing when the worker process gets SIGTERM mid-batch', async () => {
    const { stack, system } = await stackAndSystem({
      maxReceiveCount: 5,
      milvusAddress: inject('milvusAddress'),
    });
    await putPhotos(stack.bucket, photos);
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'functions/worker/main.ts', '--mode', 'cloud'],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...stack.env, PIC_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = once(child, 'exit');

    await waitFor(
      () => system.operations.progress(0),
      (p) => p.indexed >= 1,
      120_000,
    );
    child.kill('SIGTERM');
    const [code] = await exited;
    const atStop = await system.operations.progress(0);
    system.worker.start();
    const done = await waitFor(
      () => system.operations.progress(5),
      (p) => p.indexed === photos.length && p.pending === 0,
      180_000,
    );

    expect(code).toBe(0);
    expect(stderr).toContain('worker stopped');
    expect(atStop.indexed).toBeLessThan(photos.length);
    expect(done).toMatchObject({ total: photos.length, indexed: photos.length, failed: 0 });
    expect(await system.stores.index.count()).toBe(photos.length);
    expect(await visibleMessages(clients, stack.queue.deadLetterUrl)).toBe(0);
  });
});
