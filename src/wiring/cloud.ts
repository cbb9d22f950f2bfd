import type { Logger } from 'pino';
import { type AwsClients, createAwsClients } from '../adapters/aws/clients.ts';
import { type CloudConfig, loadCloudConfig } from '../adapters/aws/config.ts';
import { DynamoCatalogue } from '../adapters/aws/dynamo-catalogue.ts';
import { S3ObjectStore } from '../adapters/aws/s3-object-store.ts';
import { readMilvusToken } from '../adapters/aws/secrets.ts';
import { SqsJobQueue } from '../adapters/aws/sqs-job-queue.ts';
import { MilvusVectorIndex } from '../adapters/milvus/milvus-vector-index.ts';
import type { IdOf, Stores } from '../app/indexing.ts';
import { thumbnailKeyOf } from '../app/keys.ts';
import type { Operations } from '../app/operations.ts';
import { createOperations } from '../app/pic-search.ts';
import { Worker } from '../app/worker.ts';
import type { Embedder } from '../domain/ports.ts';
import { LazyEmbedder } from '../embedder/lazy-embedder.ts';
import { type ExecutionProvider, embedderInfoOf, OnnxEmbedder } from '../embedder/onnx-embedder.ts';
import { ingestSessions, restartOrExit, ThreadedEmbedder } from '../embedder/threaded-embedder.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import { loadManifest } from '../model/manifest.ts';

export interface CloudStores extends Stores {
  images: S3ObjectStore;
  thumbnails: S3ObjectStore;
  queue: SqsJobQueue;
  catalogue: DynamoCatalogue;
  index: MilvusVectorIndex;
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
  /** Providers tried in order before the CPU. @default ['cpu'] (Lambda); the GPU worker passes ['cuda'] */
  executionProviders?: ExecutionProvider[];
  /**
   * Run the model on a worker thread (ThreadedEmbedder): onnxruntime-node blocks its calling thread for a
   * whole batch, so the worker container does this to keep its S3, SQS, DynamoDB and Milvus calls moving
   * while a batch is inferred. Lambda (one request at a time) does not. @default false
   */
  embedderThread?: boolean;
  /**
   * When to open the ONNX session: 'on-first-use' spares the Lambda functions that never embed (all but
   * search) the model load at cold start. CPU only, as the provider is part of the stated identity.
   * @default 'at-start'
   */
  openModel?: 'at-start' | 'on-first-use';
  /**
   * Create the Milvus collection when missing and check its model identity at start: the worker does,
   * a Lambda function does not (a cold start should not pay for it; searches check the identity anyway).
   * @default true
   */
  ensureIndex?: boolean;
  /** Long-poll wait of one receive; it also bounds how long a stop waits for a receive. @default 10000 */
  waitMs?: number;
  /** Test seam for hash collisions. */
  idOf?: IdOf;
}

/** The same operations and worker loop as embedded mode, on S3, SQS, DynamoDB and Milvus. */
export async function createCloudSystem(
  config: CloudConfig,
  options: CloudOptions = {},
): Promise<CloudSystem> {
  const log = options.logger;
  const aws: AwsClients = createAwsClients({
    region: config.region,
    ...(config.awsEndpoint ? { endpoint: config.awsEndpoint } : {}),
  });
  const token = config.milvus.tokenSecretArn
    ? await readMilvusToken(aws.secrets, config.milvus.tokenSecretArn)
    : config.milvus.token;
  const ownEmbedder = options.embedder === undefined;
  const embedder = options.embedder ?? (await createEmbedder(config, options));
  const expiry = { urlExpiresSeconds: config.urlExpiresSeconds };
  const stores: CloudStores = {
    images: new S3ObjectStore(aws.s3, { bucket: config.bucket, ...expiry }),
    thumbnails: new S3ObjectStore(aws.s3, {
      bucket: config.bucket,
      keyPrefix: config.thumbnailPrefix,
      ...expiry,
    }),
    queue: new SqsJobQueue(aws.sqs, config.queueUrl, { visibilitySeconds: config.visibilitySeconds }),
    catalogue: new DynamoCatalogue(aws.dynamodb, config.tableName),
    index: new MilvusVectorIndex({
      address: config.milvus.address,
      collection: config.milvus.collection,
      ...(token ? { token } : {}),
    }),
  };
  if (options.ensureIndex ?? true) {
    const { model, profile, dimension } = embedder.info;
    await stores.index.ensure({ model, profile, dimension });
  }
  const idOf = options.idOf;
  const operations = createOperations({
    ...stores,
    embedder,
    mode: 'cloud',
    imagePrefix: config.imagePrefix,
    // The bucket's event notification queues uploads (src/adapters/aws/notifications.ts).
    queueUploads: false,
    imageInspector: imageInspector({ ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels }),
    ...(idOf ? { idOf } : {}),
    links: {
      image: (key) => stores.images.downloadUrl(key),
      thumbnail: (key) => stores.thumbnails.downloadUrl(thumbnailKeyOf(key)),
      upload: async (key, contentType) => ({
        key,
        method: 'PUT',
        ...(await stores.images.uploadUrl(key, contentType)),
      }),
    },
  });
  const worker = new Worker(stores, embedder, {
    batchSize: config.batchSize,
    maxReceiveCount: config.maxReceiveCount,
    visibilitySeconds: config.visibilitySeconds,
    waitMs: options.waitMs ?? 10_000,
    ...(idOf ? { idOf } : {}),
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
      if (ownEmbedder) await embedder.close();
      await stores.index.close();
      aws.destroy();
    },
  };
}

async function createEmbedder(config: CloudConfig, options: CloudOptions): Promise<Embedder> {
  const log = options.logger;
  const loaded = await loadManifest(config.modelManifest);
  const executionProviders = options.executionProviders ?? ['cpu'];
  const settings = {
    batchSize: config.batchSize,
    intraOpNumThreads: config.threads,
    executionProviders,
    requireGpu: config.requireGpu,
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
  const open = () => OnnxEmbedder.create(loaded, { ...settings, ...(log ? { logger: log } : {}) });
  if (options.openModel !== 'on-first-use') return open();
  if (executionProviders.some((provider) => provider !== 'cpu'))
    throw new Error("openModel 'on-first-use' is for the CPU provider only");
  return new LazyEmbedder(embedderInfoOf(loaded.manifest, 'cpu'), open);
}

let lambdaSystem: Promise<CloudSystem> | undefined;

type OpenModel = NonNullable<CloudOptions['openModel']>;

/**
 * The cloud system for Lambda handlers, made once per container from the environment and reused by every
 * invocation (clients, ONNX session, Milvus channel). Only the search function opens the model at start;
 * the others never embed, and would open it on first use. A failed start is not cached: the next
 * invocation tries again.
 */
export function lambdaCloudSystem(openModel: OpenModel = 'on-first-use'): Promise<CloudSystem> {
  lambdaSystem ??= Promise.resolve()
    .then(() => createCloudSystem(loadCloudConfig(), { ensureIndex: false, openModel }))
    .catch((error: unknown) => {
      lambdaSystem = undefined;
      throw error;
    });
  return lambdaSystem;
}

export function cloudOperations(openModel: OpenModel = 'on-first-use'): Promise<Operations> {
  return lambdaCloudSystem(openModel).then((system) => system.operations);
}

/** Presigned GET links for an image or its thumbnail: Lambda answers 302 instead of streaming bytes. */
export async function cloudImageLinks(): Promise<
  (key: string, variant: 'image' | 'thumbnail') => Promise<string>
> {
  const { stores } = await lambdaCloudSystem();
  return (key, variant) =>
    variant === 'image' ? stores.images.downloadUrl(key) : stores.thumbnails.downloadUrl(thumbnailKeyOf(key));
}
