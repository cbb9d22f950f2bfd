import { basename, join, relative } from 'node:path';
import {
  Annotations,
  Aspects,
  CfnOutput,
  CfnResource,
  Duration,
  type IAspect,
  RemovalPolicy,
  Stack,
  type StackProps,
  TagManager,
  Tags,
} from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct, IConstruct } from 'constructs';
import type { EmbedderInfo } from '../src/domain/ports.ts';
import { Api } from './api.ts';
import type { StackConfig } from './config.ts';
import { Ingest } from './ingest.ts';
import { Storage } from './storage.ts';
import { VerifySchedule } from './verify-schedule.ts';
import { Web } from './web.ts';

export interface PicSearchStackProps extends StackProps {
  config: StackConfig;
  repoRoot: string;
  /** Built by layers/build.ts. */
  layers: { runtimeDir: string; modelDir: string; modelManifestInLambda: string };
  /** The model's identity as the search function states it (embedderInfoOf its manifest, CPU). */
  modelIdentity: EmbedderInfo;
}

/** The whole product in one stack: storage, GPU ingest, API and web page. */
export class PicSearchStack extends Stack {
  readonly storage: Storage;
  readonly ingest: Ingest;
  readonly api: Api;
  readonly web: Web;
  readonly config: StackConfig;

  constructor(scope: Construct, id: string, props: PicSearchStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.config = config;
    const tags = { project: 'pic-search', stack: id };
    for (const [key, value] of Object.entries(tags)) Tags.of(this).add(key, value);
    Aspects.of(this).add(new TagRawResources(tags));
    const logRetention = config.logRetentionDays as logs.RetentionDays;

    // Server access logs of the buckets (delivered under a bucket policy, no ACLs).
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    this.storage = new Storage(this, 'Storage', {
      imagePrefix: config.imagePrefix,
      existingBucketName: config.existingBucketName,
      milvusTokenSecretArn: config.milvusTokenSecretArn,
      protectData: config.protectData,
      visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
      maxReceiveCount: config.maxReceiveCount,
      accessLogs,
    });
    // The worker reads every part of the configuration (src/adapters/aws/config.ts loadCloudConfig); each
    // API function only its own, set together with its grants (bindings.ts).
    const workerEnvironment: Record<string, string> = {
      IMAGES_BUCKET: this.storage.images.bucketName,
      IMAGE_PREFIX: config.imagePrefix,
      THUMBNAIL_PREFIX: config.thumbnailPrefix,
      QUEUE_URL: this.storage.queue.queueUrl,
      TABLE_NAME: this.storage.table.tableName,
      MILVUS_ADDRESS: config.milvusAddress,
      MILVUS_TOKEN_SECRET_ARN: this.storage.milvusToken.secretArn,
      MILVUS_COLLECTION: config.milvusCollection,
      ...(config.milvusAllowPlaintext ? { MILVUS_ALLOW_PLAINTEXT: 'true' } : {}),
      PIC_MAX_RECEIVE_COUNT: String(config.maxReceiveCount),
      // The worker hides a batch for this long at once; the queue's default is the same.
      PIC_VISIBILITY_SECONDS: String(config.visibilityTimeoutSeconds),
    };

    if (config.milvusAllowPlaintext) {
      Annotations.of(this).addWarningV2(
        'pic-search:milvus-plaintext',
        `milvusAddress ${config.milvusAddress} is plaintext: the Milvus token and vectors cross the network unencrypted`,
      );
    }

    this.ingest = new Ingest(this, 'Ingest', {
      storage: this.storage,
      repoRoot: props.repoRoot,
      modelName: workerModelName(props.repoRoot, config.modelManifest),
      environment: workerEnvironment,
      instanceType: config.instanceType,
      maxWorkers: config.maxWorkers,
      messagesPerWorker: config.messagesPerWorker,
      workerMemoryMiB: config.workerMemoryMiB,
      logRetention,
    });

    this.web = new Web(this, 'Web', { accessLogs });
    const allowedOrigins = [this.web.origin, ...config.extraAllowedOrigins];
    // Browsers POST presigned upload forms straight to S3 from the web page, and follow presigned GETs.
    this.storage.ownedImages?.addCorsRule({
      allowedOrigins,
      allowedMethods: [s3.HttpMethods.POST, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
      allowedHeaders: ['*'],
      exposedHeaders: ['ETag'],
      maxAge: 3600,
    });

    this.api = new Api(this, 'Api', {
      storage: this.storage,
      repoRoot: props.repoRoot,
      runtimeLayerDir: props.layers.runtimeDir,
      modelLayerDir: props.layers.modelDir,
      bindings: {
        config,
        modelManifestInLambda: props.layers.modelManifestInLambda,
        modelIdentity: props.modelIdentity,
      },
      allowedOrigins,
      searchMemoryMiB: config.searchMemoryMiB,
      rateLimit: config.apiRateLimit,
      burstLimit: config.apiBurstLimit,
      logRetention,
    });
    this.web.deploy(config.webDist, { apiUrl: this.api.url });
    new VerifySchedule(this, 'VerifySchedule', { verifyFunction: this.api.functions.verify });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'HTTP API base URL' });
    new CfnOutput(this, 'WebUrl', { value: this.web.origin, description: 'Web page' });
    new CfnOutput(this, 'ImagesBucketName', {
      value: this.storage.images.bucketName,
      description: `Images bucket; objects under "${config.imagePrefix}" are indexed`,
    });
    new CfnOutput(this, 'IngestQueueUrl', {
      value: this.storage.queue.queueUrl,
      description: 'Ingest queue',
    });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.storage.deadLetters.queueUrl });
    new CfnOutput(this, 'ApiTokenSecretArn', {
      value: this.api.apiToken.secretArn,
      description:
        'aws secretsmanager get-secret-value --secret-id <this> --query SecretString --output text',
    });
    new CfnOutput(this, 'MilvusTokenSecretArn', {
      value: this.storage.milvusToken.secretArn,
      description: 'aws secretsmanager put-secret-value --secret-id <this> --secret-string <token>',
    });
  }
}

/** functions/worker/Dockerfile copies models/<MODEL>.onnx and its manifest from the build context. */
function workerModelName(repoRoot: string, manifestPath: string): string {
  const inModels = relative(join(repoRoot, 'models'), manifestPath);
  const name = basename(manifestPath, '.manifest.json');
  if (inModels !== basename(manifestPath) || name === basename(manifestPath)) {
    throw new Error(
      `modelManifest must be models/<name>.manifest.json inside the repository for the worker image; got ${manifestPath}`,
    );
  }
  return name;
}

/**
 * CDK's custom-resource provider functions and roles (auto-delete of bucket objects) are raw
 * CfnResources that Tags.of() cannot reach; tag them through the template properties instead.
 */
class TagRawResources implements IAspect {
  constructor(private readonly tags: Record<string, string>) {}

  visit(node: IConstruct): void {
    if (!(node instanceof CfnResource) || TagManager.isTaggable(node)) return;
    if (!['AWS::Lambda::Function', 'AWS::IAM::Role'].includes(node.cfnResourceType)) return;
    node.addPropertyOverride(
      'Tags',
      Object.entries(this.tags).map(([Key, Value]) => ({ Key, Value })),
    );
  }
}
