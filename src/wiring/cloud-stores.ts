import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AwsClients, createAwsClients } from '../adapters/aws/clients.ts';
import { type CloudConfig, KEPT_MODELS_PREFIX } from '../adapters/aws/config.ts';
import { DynamoCatalogue } from '../adapters/aws/dynamo-catalogue.ts';
import { DynamoDismissedPairs, DynamoScannedPairs } from '../adapters/aws/dynamo-duplicates.ts';
import { DynamoOutageReports } from '../adapters/aws/dynamo-outage-reports.ts';
import { DynamoTaskStore } from '../adapters/aws/dynamo-task-store.ts';
import { S3ObjectStore } from '../adapters/aws/s3-object-store.ts';
import { readMilvusToken } from '../adapters/aws/secrets.ts';
import { SqsJobQueue } from '../adapters/aws/sqs-job-queue.ts';
import { MilvusCollections } from '../adapters/milvus/milvus-collections.ts';
import { GenerationalIndex } from '../app/index-generations.ts';
import { contentTypeOf, thumbnailKeyOf } from '../app/keys.ts';
import type { LinkBuilders } from '../app/pic-search.ts';
import type { IndexIdentity } from '../domain/ports.ts';
import { BucketModels } from '../model/kept-models.ts';

/**
 * The cloud adapters, one builder per configuration part (src/adapters/aws/config.ts), shared by the
 * worker's whole system (cloud.ts) and the Lambda functions, which build only the parts they are bound
 * to (lambda.ts). Nothing here loads the model or an image decoder.
 */

export function awsClientsFor(config: Pick<CloudConfig, 'region' | 'awsEndpoint'>): AwsClients {
  return createAwsClients({
    region: config.region,
    ...(config.awsEndpoint ? { endpoint: config.awsEndpoint } : {}),
  });
}

/** The images and, under their own prefix in the same bucket, the thumbnails. */
export function imageStores(
  aws: AwsClients,
  config: Pick<CloudConfig, 'bucket' | 'thumbnailPrefix' | 'urlExpiresSeconds'> &
    Partial<Pick<CloudConfig, 'maxObjectBytes'>>,
): { images: S3ObjectStore; thumbnails: S3ObjectStore } {
  const expiry = { urlExpiresSeconds: config.urlExpiresSeconds };
  return {
    images: new S3ObjectStore(aws.s3, {
      bucket: config.bucket,
      ...expiry,
      ...(config.maxObjectBytes ? { maxObjectBytes: config.maxObjectBytes } : {}),
    }),
    thumbnails: new S3ObjectStore(aws.s3, {
      bucket: config.bucket,
      keyPrefix: config.thumbnailPrefix,
      ...expiry,
    }),
  };
}

export function jobQueue(aws: AwsClients, config: Pick<CloudConfig, 'queueUrl' | 'visibilitySeconds'>) {
  return new SqsJobQueue(aws.sqs, config.queueUrl, { visibilitySeconds: config.visibilitySeconds });
}

export function catalogueTable(aws: AwsClients, config: Pick<CloudConfig, 'tableName'>) {
  return new DynamoCatalogue(aws.dynamodb, config.tableName);
}

/** Background tasks live in the catalogue's table. */
export function taskStore(aws: AwsClients, config: Pick<CloudConfig, 'tableName'>) {
  return new DynamoTaskStore(aws.dynamodb, config.tableName);
}

/** The workers' outages, for /progress and /health: one item of the catalogue's table. */
export function outageReports(aws: AwsClients, config: Pick<CloudConfig, 'tableName'>) {
  return new DynamoOutageReports(aws.dynamodb, config.tableName);
}

/** A duplicates scan's pairs and the "not duplicates" answers live in the catalogue's table too. */
export function duplicateStores(aws: AwsClients, config: Pick<CloudConfig, 'tableName'>) {
  return {
    scannedPairs: new DynamoScannedPairs(aws.dynamodb, config.tableName),
    dismissed: new DynamoDismissedPairs(aws.dynamodb, config.tableName),
  };
}

/**
 * The Milvus collections of the index generations (src/app/index-generations.ts): the configured
 * collection and one per re-index.
 */
export async function milvusCollections(
  aws: AwsClients,
  config: Pick<CloudConfig, 'milvus'>,
): Promise<MilvusCollections> {
  const { address, collection, tokenSecretArn } = config.milvus;
  const token = tokenSecretArn ? await readMilvusToken(aws.secrets, tokenSecretArn) : config.milvus.token;
  return new MilvusCollections({ address, collection, ...(token ? { token } : {}) });
}

/**
 * How long a process trusts its copy of the index generations record (one DynamoDB read per this, not per
 * request); a re-index drops the old collection only twice this long after its switch.
 */
export const CLOUD_GENERATION_TTL_MS = 10_000;

/**
 * Each generation's model in the bucket under KEPT_MODELS_PREFIX (the worker keeps it; search fetches it
 * into this container's temporary folder, per bucket: Lambda's /tmp).
 */
export function keptModels(aws: AwsClients, config: Pick<CloudConfig, 'bucket'>): BucketModels {
  return new BucketModels(
    new S3ObjectStore(aws.s3, { bucket: config.bucket, keyPrefix: KEPT_MODELS_PREFIX }),
    join(tmpdir(), 'pic-search-models', config.bucket),
  );
}

/**
 * The library's index: the live generation's collection for reads, the `writer` identity's for writes
 * (src/app/index-generations.ts). Reading the generations record needs GetItem on the table's library item.
 * `kept`: where generations' models are kept, and the writer's manifest (the worker's) to keep.
 */
export async function liveIndex(
  aws: AwsClients,
  config: Pick<CloudConfig, 'milvus' | 'tableName'>,
  writer: IndexIdentity,
  kept: { models?: BucketModels; writerManifest?: string } = {},
): Promise<GenerationalIndex> {
  const { model, profile, dimension } = writer;
  return new GenerationalIndex(await milvusCollections(aws, config), taskStore(aws, config), {
    writer: { model, profile, dimension },
    ttlMs: CLOUD_GENERATION_TTL_MS,
    ...kept,
  });
}

/** Search results and browser uploads link straight to S3 (presigned), never through Lambda's 6 MB limit. */
export function cloudLinks(stores: { images: S3ObjectStore; thumbnails: S3ObjectStore }): LinkBuilders {
  return {
    image: (key) => stores.images.downloadUrl(key),
    thumbnail: (key) => stores.thumbnails.downloadUrl(thumbnailKeyOf(key)),
    // The Content-Type is the one the key's extension names, never the browser's claim (no SVG).
    upload: async (key) => ({
      key,
      method: 'POST',
      ...(await stores.images.uploadForm(key, contentTypeOf(key))),
    }),
  };
}
