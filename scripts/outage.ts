/**
 * `npm run outage -- --minutes 5 --mode embedded|cloud [--store index|aws] [--photos 40]`: a store down
 * for minutes in the middle of an ingest, with the breaker's real clock (PIC_OUTAGE_FIRST_MS 1 s doubling
 * to PIC_OUTAGE_LONGEST_MS 5 min unless set), then the checks of docs/consistency.md "Outages": nothing
 * dead-lettered, every photo indexed exactly once, no divergence between the index and the bucket.
 *
 * - embedded, index: the real embedded stores, the index behind a switch that fails every call as an
 *   unreachable server would (switchableIndex); the worker is built as the embedded wiring builds it.
 * - cloud, index: moto + a Milvus Lite of this run's own, stopped and started again on its port.
 * - cloud, aws: S3, SQS and DynamoDB unreachable: the worker reaches moto through a proxy that is cut
 *   (stopping moto itself would lose its in-memory state).
 *
 * The queue's redrive policy allows 2 receives (PIC_MAX_RECEIVE_COUNT 2), so an outage that burned
 * deliveries would dead-letter at once. Prints one JSON report; exits 1 on a dead letter, a divergence, or a
 * photo the worker indexed more than once (its count of images indexed must equal the photos).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Command, Option } from 'commander';
import { loadCloudConfig } from '../src/adapters/aws/config.ts';
import type { Operations } from '../src/app/operations.ts';
import { createOperations } from '../src/app/pic-search.ts';
import { waitUntilSettled } from '../src/app/settle.ts';
import { switchableIndex, tempSystem } from '../src/app/test-system.ts';
import { Worker } from '../src/app/worker.ts';
import { makeProgressHandler } from '../src/http/handlers/status.ts';
import { DEFAULT_DECODE_LIMITS } from '../src/imaging/decode.ts';
import { imageInspector } from '../src/imaging/image-processor.ts';
import { createCloudSystem } from '../src/wiring/cloud.ts';
import { progressOperations } from '../src/wiring/lambda.ts';
import { apiEvent, seededEmbedder } from '../test/cloud/harness.ts';
import { createCloudStack, emulatorClients, visibleMessages } from '../test/cloud/support.ts';
import { type Content, contentPool, divergences, type RaceTarget } from '../test/race/race.ts';
import { startMilvusLite, startMoto } from '../test/services/emulators.ts';
import { startProxy } from '../test/services/proxy.ts';

const options = new Command('outage')
  .option('--minutes <n>', 'how long the store stays down', Number, 5)
  .addOption(
    new Option('--mode <mode>', 'which deployment').choices(['embedded', 'cloud']).default('embedded'),
  )
  .addOption(
    new Option('--store <store>', 'what goes down (aws: cloud only)')
      .choices(['index', 'aws'])
      .default('index'),
  )
  .option('--photos <n>', 'photos ingested (at most 100)', Number, 40)
  .parse()
  .opts<{ minutes: number; mode: 'embedded' | 'cloud'; store: 'index' | 'aws'; photos: number }>();
if (options.mode === 'embedded' && options.store === 'aws') throw new Error('--store aws is cloud mode only');

/** One deployment under the outage: its worker, what the API answers, and the switch. */
interface Run {
  worker: Worker;
  operations: Operations;
  /** The `outage` /progress shows during the outage, as the API answers it in this mode. */
  shownOutage(): Promise<unknown>;
  put(key: string, body: Buffer): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
  deadLetters(): Promise<number>;
  target: Pick<RaceTarget, 'count' | 'progress' | 'search' | 'records' | 'etagOf'>;
  close(): Promise<void>;
}

const MAX_RECEIVE_COUNT = '2';
const log = (message: string) => console.error(`${new Date().toISOString()} ${message}`);

async function embeddedRun(): Promise<Run> {
  const system = await tempSystem({ PIC_MAX_RECEIVE_COUNT: MAX_RECEIVE_COUNT });
  const { config, stores } = system;
  const index = switchableIndex(stores.index);
  const worker = new Worker({ ...stores, index }, system.ingestEmbedder, {
    batchSize: config.batchSize,
    maxReceiveCount: config.maxReceiveCount,
    outageBackoff: config.outageBackoff,
  });
  // The embedded wiring's operations, reading this worker's breaker as /progress and /health do.
  const operations = createOperations({
    ...stores,
    index,
    embedder: system.embedder,
    mode: 'embedded',
    queueUploads: true,
    imageInspector: imageInspector(DEFAULT_DECODE_LIMITS),
    outage: () => worker.outage,
  });
  return {
    worker,
    operations,
    shownOutage: async () => (await operations.progress(0)).outage,
    async put(key, body) {
      await stores.images.put(key, body);
      await stores.queue.send([{ kind: 'upsert', key }]);
    },
    down: async () => {
      index.down = true;
    },
    up: async () => {
      index.down = false;
    },
    deadLetters: async () => stores.queue.deadLetters().length,
    target: {
      count: () => operations.count(),
      progress: () => operations.progress(0),
      search: async (body, topK) => (await operations.searchByImage(body, { topK })).results,
      records: () => stores.catalogue.list(),
      etagOf: async (key) => (await stores.images.head(key))?.etag,
    },
    async close() {
      await worker.stop();
      await system.dispose();
    },
  };
}

async function cloudRun(store: 'index' | 'aws'): Promise<Run> {
  const workDir = await mkdtemp(join(tmpdir(), 'pic-outage-'));
  const moto = await startMoto({ recordingFile: join(workDir, 'moto-recording.jsonl') });
  let milvus = await startMilvusLite(workDir);
  const clients = emulatorClients(moto.endpoint);
  const proxy = store === 'aws' ? await startProxy(new URL(moto.endpoint).port) : undefined;
  const embedder = await seededEmbedder();
  const stack = await createCloudStack(
    clients,
    { awsEndpoint: moto.endpoint, milvusAddress: milvus.address },
    { maxReceiveCount: Number(MAX_RECEIVE_COUNT), visibilityTimeoutSeconds: 60 },
  );
  const env = { ...stack.env, PIC_MAX_RECEIVE_COUNT: MAX_RECEIVE_COUNT, PIC_VISIBILITY_SECONDS: '60' };
  // The worker's own view of AWS goes through the proxy, as an ECS task's goes through its network.
  const workerEnv = proxy
    ? {
        ...env,
        AWS_ENDPOINT_URL: proxy.endpoint,
        QUEUE_URL: stack.queue.url.replace(moto.endpoint, proxy.endpoint),
      }
    : env;
  const system = await createCloudSystem(loadCloudConfig(workerEnv), { embedder, waitMs: 1000 });
  const progress = makeProgressHandler(await progressOperations(env));
  const { operations, stores } = system;
  return {
    worker: system.worker,
    operations,
    // The progress function, another process for the worker: it reads what the worker reported.
    shownOutage: async () =>
      (
        JSON.parse((await progress(apiEvent({ method: 'GET', path: '/progress' }))).body as string) as {
          outage?: unknown;
        }
      ).outage,
    async put(key, body) {
      await clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: body }));
    },
    async down() {
      if (proxy) await proxy.cut();
      else await milvus.stop();
    },
    async up() {
      if (proxy) await proxy.restore();
      else milvus = await startMilvusLite(workDir, milvus.port);
    },
    deadLetters: () => visibleMessages(clients, stack.queue.deadLetterUrl),
    target: {
      count: () => operations.count(),
      progress: () => operations.progress(0),
      search: async (body, topK) => (await operations.searchByImage(body, { topK })).results,
      records: () => stores.catalogue.list('images/'),
      etagOf: async (key) => (await stores.images.head(key))?.etag,
    },
    async close() {
      await system.close();
      await embedder.close();
      await proxy?.close();
      clients.destroy();
      await Promise.all([moto.stop(), milvus.stop()]);
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

const started = Date.now();
const pool = (await contentPool()).slice(0, Math.min(options.photos, 100));
const run = options.mode === 'embedded' ? await embeddedRun() : await cloudRun(options.store);
const prefix = options.mode === 'cloud' ? 'images/outage/' : 'outage/';
const state = new Map<string, Content>(
  pool.map((_, i) => [`${prefix}${i}.jpg`, { kind: 'valid', content: i }]),
);
let exitCode = 1;
try {
  // Three quarters queued before the outage, the rest put while the store is down: ingest goes on.
  const keys = [...state.keys()];
  const late = keys.splice(Math.ceil((keys.length * 3) / 4));
  const put = (key: string) => run.put(key, pool[(state.get(key) as { content: number }).content] as Buffer);
  for (const key of keys) await put(key);
  run.worker.start();
  const firstBatches = Math.max(2, Math.floor(pool.length / 5));
  while ((await run.operations.progress(0)).indexed < firstBatches) await sleep(200);
  const indexedBefore = (await run.operations.progress(0)).indexed;

  const downAt = Date.now();
  await run.down();
  log(`${options.store} down with ${indexedBefore} of ${pool.length} indexed`);
  for (const key of late) await put(key);
  while (!run.worker.outage) {
    if (Date.now() - downAt > 5 * 60_000) throw new Error('the worker did not see the outage in 5 minutes');
    await sleep(100);
  }
  const detectedMs = Date.now() - downAt;
  // The table is behind the cut when AWS is down: the progress function cannot answer then.
  const shown = options.store === 'aws' ? 'not readable: DynamoDB is down' : await run.shownOutage();
  log(`breaker open after ${detectedMs} ms; /progress shows ${JSON.stringify(shown)}`);
  await sleep(options.minutes * 60_000 - (Date.now() - downAt));
  const handedBackDuringOutage = run.worker.stats.handedBack;

  const upAt = Date.now();
  await run.up();
  log(`${options.store} up again after ${Math.round((upAt - downAt) / 1000)} s`);
  while (run.worker.outage) await sleep(200);
  const closedMs = Date.now() - upAt;
  log(`breaker closed ${Math.round(closedMs / 1000)} s after the store came back`);
  await waitUntilSettled(run.operations, { timeoutMs: 20 * 60_000, intervalMs: 500 });
  const settledMs = Date.now() - upAt;
  // Milvus Lite replays its write-ahead log when the collection loads again after a restart.
  for (let tries = 0; (await run.target.count()) !== pool.length && tries < 60; tries++) await sleep(1000);

  const found = await divergences(run.target, state, pool);
  const deadLetters = await run.deadLetters();
  const { indexed, failed, retried, handedBack, deadLettered } = run.worker.stats;
  const report = {
    mode: options.mode,
    store: options.store,
    photos: pool.length,
    maxReceiveCount: Number(MAX_RECEIVE_COUNT),
    indexedBeforeOutage: indexedBefore,
    outageSeconds: Math.round((upAt - downAt) / 1000),
    breakerOpenAfterMs: detectedMs,
    shownDuringOutage: shown,
    handedBackDuringOutage,
    breakerClosedAfterSeconds: Math.round(closedMs / 1000),
    settledAfterSeconds: Math.round(settledMs / 1000),
    worker: { indexed, failed, retried, handedBack, deadLettered },
    vectors: await run.target.count(),
    deadLetters,
    divergences: found,
    totalSeconds: Math.round((Date.now() - started) / 1000),
  };
  console.log(JSON.stringify(report, null, 2));
  exitCode = found.length === 0 && deadLetters === 0 && indexed === pool.length ? 0 : 1;
} finally {
  await run.close();
}
process.exit(exitCode);
