import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { CloudConfig } from '../adapters/aws/config.ts';
import type { DynamoCatalogue } from '../adapters/aws/dynamo-catalogue.ts';
import type { DynamoTaskStore } from '../adapters/aws/dynamo-task-store.ts';
import type { S3ObjectStore } from '../adapters/aws/s3-object-store.ts';
import type { SqsJobQueue } from '../adapters/aws/sqs-job-queue.ts';
import type { GenerationalIndex } from '../app/index-generations.ts';
import type { IdOf, Stores } from '../app/indexing.ts';
import type { Operations } from '../app/operations.ts';
import { createOperations } from '../app/pic-search.ts';
import { runTaskSlice, type TaskDeps, type TaskOptions } from '../app/tasks.ts';
import { Worker, type WorkerOptions } from '../app/worker.ts';
import { IndexMismatchError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import { sameIdentity } from '../domain/index-identity.ts';
import type { Embedder, IndexIdentity } from '../domain/ports.ts';
import { type ExecutionProvider, OnnxEmbedder } from '../embedder/onnx-embedder.ts';
import { ingestSessions, restartOrExit, ThreadedEmbedder } from '../embedder/threaded-embedder.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import { loadManifest } from '../model/manifest.ts';
import { chooseModel } from '../model/precision.ts';
import {
  awsClientsFor,
  catalogueTable,
  cloudLinks,
  duplicateStores,
  imageStores,
  jobQueue,
  keptModels,
  liveIndex,
  outageReports,
  taskStore,
} from './cloud-stores.ts';
import { liveModelEmbedders } from './live-models.ts';

export interface CloudStores extends Stores {
  images: S3ObjectStore;
  thumbnails: S3ObjectStore;
  queue: SqsJobQueue;
  catalogue: DynamoCatalogue;
  /** The live generation's Milvus collection for reads, the configured model's for writes. */
  index: GenerationalIndex;
  tasks: DynamoTaskStore;
}

export interface CloudSystem {
  config: CloudConfig;
  operations: Operations;
  /** The ingest loop over SQS; created, not started (the GPU container starts it). */
  worker: Worker;
  embedder: Embedder;
  stores: CloudStores;
  /** Stops the worker (finishing or releasing its batches), then closes the model and the clients. */
  close(): Promise<void>;
}

export interface CloudOptions {
  logger?: Logger;
  /** Share one embedder (tests, benchmarks); otherwise one is made from the manifest. */
  embedder?: Embedder;
  /**
   * The manifest of a shared `embedder`, kept in the bucket with the index generations it builds
   * (src/model/kept-models.ts); an embedder made here keeps the configured manifest. @default none
   */
  modelManifest?: string;
  /** Providers tried in order before the CPU. @default ['cpu'] (Lambda); the GPU worker passes ['cuda'] */
  executionProviders?: ExecutionProvider[];
  /**
   * Run the model on a worker thread (ThreadedEmbedder): onnxruntime-node blocks its calling thread for a
   * whole batch, so the worker container does this to keep its S3, SQS, DynamoDB and Milvus calls moving
   * while a batch is inferred. Lambda (one request at a time) does not. @default false
   */
  embedderThread?: boolean;
  /**
   * Create the Milvus collection when missing and check its model identity at start, as the worker does
   * (a Lambda function does not: lambda.ts).
   * @default true
   */
  ensureIndex?: boolean;
  /** Long-poll wait of one receive; it also bounds how long a stop waits for a receive. @default 10000 */
  waitMs?: number;
  /** The worker's hook for ECS task scale-in protection (functions/worker/main.ts). */
  onHolding?: WorkerOptions['onHolding'];
  /** Told of each verification the worker finishes (functions/worker/main.ts publishes its drift). */
  onVerified?: TaskDeps['onVerified'];
  /** Test seam for hash collisions. */
  idOf?: IdOf;
  /** Tests shorten a re-index's pauses. @default the tasks' defaults (src/app/tasks.ts) */
  taskOptions?: TaskOptions;
}

/** The same operations and worker loop as embedded mode, on S3, SQS, DynamoDB and Milvus. */
export async function createCloudSystem(
  config: CloudConfig,
  options: CloudOptions = {},
): Promise<CloudSystem> {
  const log = options.logger;
  const aws = awsClientsFor(config);
  const ownEmbedder = options.embedder === undefined;
  const embedder = options.embedder ?? (await createCloudEmbedder(config, options));
  const tasks = taskStore(aws, config);
  const writerManifest = ownEmbedder ? config.modelManifest : options.modelManifest;
  const stores: CloudStores = {
    ...imageStores(aws, config),
    queue: jobQueue(aws, config),
    catalogue: catalogueTable(aws, config),
    tasks,
    index: await liveIndex(aws, config, embedder.info, {
      models: keptModels(aws, config),
      ...(writerManifest ? { writerManifest } : {}),
    }),
  };
  const liveModels = cloudLiveModels(stores.index, config, log);
  if (options.ensureIndex ?? true) {
    const generations = await stores.index.init();
    await stores.index.ensure(stores.index.writer).catch(async (error: unknown) => {
      // A worker whose model a re-index builds (or is to build: POST /reindex recorded it, a worker prepares
      // it) writes into that generation; any other refuses to start, leaving the queue's messages waiting.
      const writer = stores.index.writer;
      const reindex = await tasks.latest('reindex');
      const building =
        (generations.building && sameIdentity(generations.building.identity, writer)) ||
        (reindex?.state === 'running' && sameIdentity(reindex.options.target as IndexIdentity, writer));
      if (!(error instanceof IndexMismatchError) || !building) throw error;
    });
  }
  const idOf = options.idOf;
  const outages = outageReports(aws, config);
  const operations = createOperations({
    ...stores,
    embedder,
    mode: 'cloud',
    imagePrefix: config.imagePrefix,
    // The bucket's event notification queues uploads (src/adapters/aws/notifications.ts).
    queueUploads: false,
    imageInspector: imageInspector({ ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels }),
    ...(idOf ? { idOf } : {}),
    links: cloudLinks(stores),
    outage: () => outages.current(),
    generations: stores.index,
    embedderFor: liveModels.embedderFor,
  });
  const taskDeps: TaskDeps = {
    ...stores,
    idOf: idOf ?? vectorIdOf,
    imagePrefix: config.imagePrefix,
    model: embedder.info,
    scannedPairs: duplicateStores(aws, config).scannedPairs,
    generations: stores.index,
    ...(options.onVerified ? { onVerified: options.onVerified } : {}),
    ...(log ? { logger: log } : {}),
  };
  const workerId = randomUUID();
  const worker = new Worker(stores, embedder, {
    imagePrefix: config.imagePrefix,
    batchSize: config.batchSize,
    maxReceiveCount: config.maxReceiveCount,
    outageBackoff: config.outageBackoff,
    visibilitySeconds: config.visibilitySeconds,
    waitMs: options.waitMs ?? 10_000,
    // Delete-all's cleanup, verification and duplicates scans run here, on the worker, never in the API's Lambda (29 s).
    runTask: (taskId) => runTaskSlice(taskDeps, taskId, options.taskOptions),
    // The API functions run elsewhere: they read the breaker's state from the table (progress, health).
    onOutage: (outage) => outages.report(workerId, outage, outageFreshMs(config.outageBackoff.longestMs)),
    ...(idOf ? { idOf } : {}),
    ...(options.onHolding ? { onHolding: options.onHolding } : {}),
    ...(log ? { logger: log } : {}),
  });
  return {
    config,
    operations,
    worker,
    embedder,
    stores,
    async close() {
      await worker.stop();
      await liveModels.close();
      if (ownEmbedder) await embedder.close();
      await stores.index.close();
      aws.destroy();
    },
  };
}

/**
 * How long a worker's outage report stands: it is renewed at each check of the stores, at most
 * `longestMs` apart (plus the check itself), so twice that and a minute; a worker that died in an outage
 * stops showing it after this long.
 */
export function outageFreshMs(longestMs: number): number {
  return 2 * longestMs + 60_000;
}

/** The model from the manifest: on a worker thread for the worker container, on this thread for Lambda search. */
export async function createCloudEmbedder(
  config: Pick<CloudConfig, 'modelManifest' | 'modelPrecision' | 'batchSize' | 'threads' | 'maxPixels'> &
    Partial<Pick<CloudConfig, 'requireGpu' | 'ingestSessions'>>,
  options: Pick<CloudOptions, 'logger' | 'executionProviders' | 'embedderThread'> = {},
): Promise<Embedder> {
  const log = options.logger;
  const executionProviders = options.executionProviders ?? ['cpu'];
  const chosen = await chooseModel(await loadManifest(config.modelManifest), {
    precision: config.modelPrecision,
    provider: executionProviders.includes('cuda') ? 'cuda' : 'cpu',
    log: log ?? { info: () => undefined, error: () => undefined },
  });
  const { loaded } = chosen;
  const settings = {
    ...(chosen.fallback ? { fallback: chosen.fallback } : {}),
    batchSize: config.batchSize,
    intraOpNumThreads: config.threads,
    executionProviders,
    requireGpu: config.requireGpu ?? false,
    limits: { ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels },
  };
  if (options.embedderThread) {
    return ThreadedEmbedder.create(loaded, {
      ...settings,
      ...ingestSessions(config.threads, executionProviders, config.ingestSessions),
      ...restartOrExit(log),
      ...(log ? { log: { level: log.level, name: 'embedder' } } : {}),
    });
  }
  return OnnxEmbedder.create(loaded, { ...settings, ...(log ? { logger: log } : {}) });
}

/**
 * Embedders for a live generation's kept model, opened by a process that searches while a re-index builds
 * the deployed model's generation (src/wiring/live-models.ts): on this thread, CPU only, with the deployed
 * model's threads and decode limits.
 */
export function cloudLiveModels(
  generations: GenerationalIndex,
  config: Pick<CloudConfig, 'threads' | 'maxPixels'>,
  log?: Logger,
): ReturnType<typeof liveModelEmbedders> {
  const settings = {
    intraOpNumThreads: config.threads,
    limits: { ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels },
  };
  return liveModelEmbedders({
    generations,
    open: (loaded) => OnnxEmbedder.create(loaded, settings),
    ...(log ? { log } : {}),
  });
}
