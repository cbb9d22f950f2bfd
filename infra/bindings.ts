import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { type CloudPart, KEPT_MODELS_PREFIX, variablesOf } from '../src/adapters/aws/config.ts';
import { OUTAGES_PK } from '../src/adapters/aws/dynamo-outage-reports.ts';
import { LIBRARY_PK } from '../src/adapters/aws/dynamo-task-store.ts';
import type { EmbedderInfo } from '../src/domain/ports.ts';
import { LAMBDA_PARTS, type LambdaName, type PartsOf } from '../src/wiring/lambda-parts.ts';
import type { StackConfig } from './config.ts';
import { allowList, allowObjects, type ObjectVerb } from './grants.ts';
import type { Storage } from './storage.ts';

/**
 * Grants and environment go together, as Powertools' `bindTable` helper does: binding a function to a
 * configuration part (src/adapters/aws/config.ts) sets that part's variables and grants the access this
 * table names, and nothing else. Each function is bound to exactly the parts its factory reads
 * (src/wiring/lambda-parts.ts); the types make the two tables agree, infra/stack.test.ts pins the result.
 */

/** `models`: the index generations' kept models (src/model/kept-models.ts). */
type BucketArea = 'images' | 'thumbnails' | 'models';
interface BucketAccess {
  get?: BucketArea[];
  put?: BucketArea[];
  delete?: BucketArea[];
  /** ListObjectsV2 over the bucket (backfill and delete-all walk a prefix). */
  list?: true;
}
type AccessOf<P extends CloudPart> = P extends 'bucket'
  ? BucketAccess
  : P extends 'table'
    ? // `items`: GetItem of these items alone (the workers' outage item, the library item).
      'read' | 'read-write' | { items: string[] }
    : P extends 'queue'
      ? 'send' | 'depth'
      : true;
export type FunctionAccess<F extends LambdaName> = { [P in PartsOf<F>]: AccessOf<P> };

/** What each function may do with each resource of its parts. */
export const FUNCTION_ACCESS: { [F in LambdaName]: FunctionAccess<F> } = {
  // Results carry presigned GET links to the image and its thumbnail; during a re-index, the live
  // generation's model is fetched from where the worker kept it.
  search: {
    bucket: { get: ['images', 'thumbnails', 'models'] },
    table: 'read',
    milvus: true,
    model: true,
    decode: true,
  },
  // Which collection is live: the library item (src/app/index-generations.ts).
  count: { milvus: true, table: { items: [LIBRARY_PK] }, modelIdentity: true },
  progress: { table: 'read', queue: 'depth' },
  // The index's identity (the library item says which collection is live); the workers' outage item, to
  // answer "degraded" while they wait one out.
  health: { milvus: true, modelIdentity: true, table: { items: [OUTAGES_PK, LIBRARY_PK] } },
  // Backfill lists the prefix, queues what changed and forgets what is gone (vector, thumbnail, entry).
  ingest: {
    bucket: { list: true, delete: ['thumbnails'] },
    table: 'read-write',
    queue: 'send',
    milvus: true,
    modelIdentity: true,
  },
  // Presigned browser uploads and multipart uploads, each file checked with sharp.
  uploads: { bucket: { put: ['images'] }, decode: true },
  images: { bucket: { get: ['images', 'thumbnails'] } },
  'delete-image': {
    bucket: { get: ['images'], delete: ['images', 'thumbnails'] },
    table: 'read-write',
    milvus: true,
    modelIdentity: true,
  },
  'delete-all': { table: 'read-write', queue: 'send', milvus: true, modelIdentity: true },
  verify: { table: 'read-write', queue: 'send' },
  reindex: { table: 'read-write', queue: 'send', milvus: true, modelIdentity: true },
  // Groups are described from the images (header, size) with links to them and their thumbnails; the
  // table holds the scan's pairs and the dismissals; the queue takes a new scan.
  duplicates: {
    bucket: { get: ['images', 'thumbnails'] },
    table: 'read-write',
    queue: 'send',
    milvus: true,
    modelIdentity: true,
    decode: true,
  },
};

export interface BindingTargets {
  storage: Storage;
  config: Pick<
    StackConfig,
    'imagePrefix' | 'thumbnailPrefix' | 'milvusAddress' | 'milvusCollection' | 'milvusAllowPlaintext'
  >;
  runtimeLayer: lambda.ILayerVersion;
  modelLayer: lambda.ILayerVersion;
  /** PIC_MODEL_MANIFEST inside the functions that get the model layer. */
  modelManifestInLambda: string;
  /** What the model is, for the functions that state it without the model (PIC_MODEL_IDENTITY). */
  modelIdentity: EmbedderInfo;
}

/** Binds `fn` to the parts of function `name`: variables, grants and layers. */
export function bindFunction<F extends LambdaName>(
  fn: lambda.Function,
  name: F,
  targets: BindingTargets,
): void {
  const access = FUNCTION_ACCESS[name] as Record<CloudPart, unknown>;
  const layers = new Set<lambda.ILayerVersion>();
  for (const part of LAMBDA_PARTS[name] as readonly CloudPart[]) {
    const environment = bindPart(fn, part, access[part], targets, layers);
    const known = variablesOf(part);
    for (const [variable, value] of Object.entries(environment)) {
      if (!known.includes(variable)) throw new Error(`${variable} is not a variable of the ${part} part`);
      fn.addEnvironment(variable, value);
    }
  }
  if (layers.size > 0) fn.addLayers(...layers);
}

function bindPart(
  fn: lambda.Function,
  part: CloudPart,
  access: unknown,
  targets: BindingTargets,
  layers: Set<lambda.ILayerVersion>,
): Record<string, string> {
  const { storage, config } = targets;
  switch (part) {
    case 'bucket': {
      const { get = [], put = [], delete: remove = [], list } = access as BucketAccess;
      const prefixOf = {
        images: config.imagePrefix,
        thumbnails: config.thumbnailPrefix,
        models: KEPT_MODELS_PREFIX,
      };
      const verbs: [ObjectVerb, BucketArea[]][] = [
        ['s3:GetObject', get],
        ['s3:PutObject', put],
        ['s3:DeleteObject', remove],
      ];
      for (const [verb, areas] of verbs) {
        if (areas.length > 0)
          allowObjects(
            fn,
            storage.images,
            [verb],
            areas.map((area) => prefixOf[area]),
          );
      }
      if (list) allowList(fn, storage.images);
      return {
        IMAGES_BUCKET: storage.images.bucketName,
        IMAGE_PREFIX: config.imagePrefix,
        THUMBNAIL_PREFIX: config.thumbnailPrefix,
      };
    }
    case 'table':
      if (typeof access === 'object' && access !== null && 'items' in access)
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['dynamodb:GetItem'],
            resources: [storage.table.tableArn],
            conditions: {
              'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': (access as { items: string[] }).items },
            },
          }),
        );
      else if (access === 'read') storage.table.grantReadData(fn);
      else storage.table.grantReadWriteData(fn);
      return { TABLE_NAME: storage.table.tableName };
    case 'queue':
      if (access === 'send') storage.queue.grantSendMessages(fn);
      else storage.queue.grant(fn, 'sqs:GetQueueAttributes');
      return { QUEUE_URL: storage.queue.queueUrl };
    case 'milvus':
      storage.milvusToken.grantRead(fn);
      return {
        MILVUS_ADDRESS: config.milvusAddress,
        MILVUS_TOKEN_SECRET_ARN: storage.milvusToken.secretArn,
        MILVUS_COLLECTION: config.milvusCollection,
        ...(config.milvusAllowPlaintext ? { MILVUS_ALLOW_PLAINTEXT: 'true' } : {}),
      };
    case 'model':
      layers.add(targets.runtimeLayer).add(targets.modelLayer);
      return { PIC_MODEL_MANIFEST: targets.modelManifestInLambda };
    case 'modelIdentity':
      return { PIC_MODEL_IDENTITY: JSON.stringify(targets.modelIdentity) };
    case 'decode':
      // sharp, from the runtime layer.
      layers.add(targets.runtimeLayer);
      return {};
    case 'worker':
      throw new Error('the worker part is the ECS task’s, not a Lambda function’s');
  }
}
