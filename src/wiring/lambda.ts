import { type CloudPartsConfig, loadCloudParts } from '../adapters/aws/config.ts';
import type { Stores } from '../app/indexing.ts';
import type { Operations } from '../app/operations.ts';
import { createOperations, type OperationsDeps } from '../app/pic-search.ts';
import type { Embedder, EmbedderInfo } from '../domain/ports.ts';
import { LazyEmbedder } from '../embedder/lazy-embedder.ts';
import type { LinkFor } from '../http/handlers/images.ts';
import {
  awsClientsFor,
  catalogueTable,
  cloudLinks,
  imageStores,
  jobQueue,
  liveIndex,
  outageReports,
  taskStore,
} from './cloud-stores.ts';
import { LAMBDA_PARTS, type LambdaName, type PartsOf } from './lambda-parts.ts';

/**
 * One factory per Lambda function family. Each reads only its configuration parts (lambda-parts.ts) and
 * builds only the adapters those parts name: count holds a Milvus client and nothing else, progress
 * DynamoDB and SQS, and no function but search loads the model. Functions that need a native module live
 * in their own modules (lambda-search.ts, lambda-uploads.ts), so that these bundles import neither
 * onnxruntime-node nor sharp and ship without their layer. Handlers call a factory once, at module load
 * (once per container); the environment is a parameter for the tests.
 */

type Env = Record<string, string | undefined>;

export function readParts<F extends LambdaName>(fn: F, env: Env): CloudPartsConfig<PartsOf<F>> {
  return loadCloudParts(LAMBDA_PARTS[fn] as readonly PartsOf<F>[], env);
}

/**
 * A port a function was not given: its role has no grant for it and its environment no variable. Any
 * use is a wiring mistake, reported as one at once instead of as an AccessDenied from AWS later.
 */
function unwired<T extends object>(port: string, fn: LambdaName): T {
  return new Proxy({} as T, {
    get(_, property) {
      if (property === 'then') return undefined;
      throw new Error(
        `the ${fn} function has no ${port} (src/wiring/lambda-parts.ts): ${String(property)} was asked for`,
      );
    },
  });
}

/**
 * The model's identity without the model, for functions that state or compare it but never embed
 * (health, ingest): opening it is refused.
 */
function identityOnly(info: EmbedderInfo, fn: LambdaName): Embedder {
  return new LazyEmbedder(info, () => Promise.reject(new Error(`the ${fn} function does not embed`)));
}

/** Operations over the ports given; every other port is unwired. */
export function operationsOf(
  fn: LambdaName,
  given: Partial<Stores> &
    Partial<
      Pick<
        OperationsDeps,
        'embedder' | 'embedderFor' | 'links' | 'imageInspector' | 'imagePrefix' | 'outage' | 'generations'
      >
    >,
): Operations {
  const { images, thumbnails, queue, catalogue, index, tasks, embedder, imageInspector, ...rest } = given;
  return createOperations({
    images: images ?? unwired('images bucket', fn),
    thumbnails: thumbnails ?? unwired('thumbnails', fn),
    queue: queue ?? unwired('queue', fn),
    catalogue: catalogue ?? unwired('catalogue table', fn),
    index: index ?? unwired('Milvus index', fn),
    tasks: tasks ?? unwired('task store', fn),
    embedder: embedder ?? unwired('model', fn),
    imageInspector: imageInspector ?? unwired('image decoder', fn),
    mode: 'cloud',
    // The bucket's event notification queues uploads (src/adapters/aws/notifications.ts).
    queueUploads: false,
    ...rest,
  });
}

/** The live index generation's collection (the table's library item says which), for reads and removals. */
async function generationsOf(
  aws: ReturnType<typeof awsClientsFor>,
  config: Parameters<typeof liveIndex>[1] & { modelIdentity: EmbedderInfo },
) {
  const index = await liveIndex(aws, config, config.modelIdentity);
  return { index, generations: index };
}

/** GET /count: the live Milvus collection only. */
export async function countOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('count', env);
  return operationsOf('count', await generationsOf(awsClientsFor(config), config));
}

/** GET /progress: catalogue counters, queue depth and the workers' outages; no Milvus, so no token. */
export async function progressOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('progress', env);
  const aws = awsClientsFor(config);
  const outages = outageReports(aws, config);
  return operationsOf('progress', {
    catalogue: catalogueTable(aws, config),
    queue: jobQueue(aws, config),
    tasks: taskStore(aws, config),
    outage: () => outages.current(),
  });
}

/** GET /health: the index's identity beside the model's, as the stack stated it, and the workers' outages. */
export async function healthOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('health', env);
  const aws = awsClientsFor(config);
  const outages = outageReports(aws, config);
  return operationsOf('health', {
    ...(await generationsOf(aws, config)),
    embedder: identityOnly(config.modelIdentity, 'health'),
    outage: () => outages.current(),
  });
}

/** POST /ingest (backfill): lists the bucket, queues what changed, forgets what is gone. */
export async function ingestOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('ingest', env);
  const aws = awsClientsFor(config);
  return operationsOf('ingest', {
    ...imageStores(aws, config),
    queue: jobQueue(aws, config),
    catalogue: catalogueTable(aws, config),
    ...(await generationsOf(aws, config)),
    embedder: identityOnly(config.modelIdentity, 'ingest'),
    imagePrefix: config.imagePrefix,
  });
}

/** DELETE /images/{key+}: the object, its thumbnail, record and vector. */
export async function deleteOperations(fn: 'delete-image', env: Env = process.env): Promise<Operations> {
  const config = readParts(fn, env);
  const aws = awsClientsFor(config);
  return operationsOf(fn, {
    ...imageStores(aws, config),
    catalogue: catalogueTable(aws, config),
    ...(await generationsOf(aws, config)),
    imagePrefix: config.imagePrefix,
  });
}

/** DELETE /images: empties the index and queues the cleanup as a task for the worker (src/app/tasks.ts). */
export async function deleteAllOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('delete-all', env);
  const aws = awsClientsFor(config);
  return operationsOf('delete-all', {
    catalogue: catalogueTable(aws, config),
    queue: jobQueue(aws, config),
    tasks: taskStore(aws, config),
    ...(await generationsOf(aws, config)),
  });
}

/** POST /verify and the scheduled verification: records the task and queues it for the worker. */
export function verifyOperations(env: Env = process.env): Operations {
  const config = readParts('verify', env);
  const aws = awsClientsFor(config);
  return operationsOf('verify', { queue: jobQueue(aws, config), tasks: taskStore(aws, config) });
}

/** POST /reindex: records the task with the stack's model as the target and queues it for the worker. */
export async function reindexOperations(env: Env = process.env): Promise<Operations> {
  const config = readParts('reindex', env);
  const aws = awsClientsFor(config);
  return operationsOf('reindex', {
    queue: jobQueue(aws, config),
    tasks: taskStore(aws, config),
    ...(await generationsOf(aws, config)),
    embedder: identityOnly(config.modelIdentity, 'reindex'),
  });
}

/** GET /images/{key+} and GET /thumbnails/{key+}: presigned links to the bucket. */
export function imageOperations(env: Env = process.env): { operations: Operations; linkFor: LinkFor } {
  const config = readParts('images', env);
  const stores = imageStores(awsClientsFor(config), config);
  const links = cloudLinks(stores);
  return {
    operations: operationsOf('images', { ...stores, links, imagePrefix: config.imagePrefix }),
    linkFor: (key, variant) => (variant === 'image' ? links.image(key) : links.thumbnail(key)),
  };
}
