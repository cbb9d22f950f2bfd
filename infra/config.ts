import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { isPlaintextRemote, prefixOverlap, StorePrefix } from '../src/adapters/aws/config.ts';

/**
 * Everything a deployment can change, read once from CDK context (`-c key=value` or cdk.json) and checked
 * with one aggregated error that names every bad key. Context values arrive as strings on the command
 * line, so numbers and booleans are coerced.
 */

const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')]);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** GPU families ECS's GPU AMI supports with one or more NVIDIA GPUs; sizes are checked by EC2 at deploy. */
const GPU_INSTANCE =
  /^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e)\.[0-9]*x?large$|^(g4dn|g5|g6|g6e|p3|p4d|p5)\.metal$/;

/** CloudWatch Logs accepts only these retention periods. */
const VALID_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

export const StackConfig = z.object({
  /** CloudFormation stack name. */
  stackName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, 'letters, digits and hyphens, starting with a letter')
    .default('PicSearch'),
  /** Milvus / Zilliz Cloud endpoint, e.g. https://in03-xxxx.serverless.gcp-us-west1.cloud.zilliz.com */
  milvusAddress: z
    .string({ error: 'is required: pass -c milvusAddress=https://<your Zilliz Cloud or Milvus endpoint>' })
    .regex(/^(https?:\/\/)?[A-Za-z0-9.-]+(:\d+)?\/?$/, 'must be a host[:port] or http(s)://host[:port] URL'),
  milvusCollection: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/, 'letters, digits and underscores, not starting with a digit')
    .default('pic_search'),
  /** Import an existing Secrets Manager secret holding the Milvus token; otherwise an empty one is created. */
  milvusTokenSecretArn: z
    .string()
    .regex(
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/,
      'must be a Secrets Manager secret ARN',
    )
    .optional(),
  /** Accept a plaintext (http:// or bare host:port) Milvus address: the token and vectors cross the internet unencrypted. */
  milvusAllowPlaintext: flag.default(false),
  /** Where images live in the bucket; only objects under it are embedded. Never empty: thumbnails live beside it. */
  imagePrefix: StorePrefix.default('images/'),
  thumbnailPrefix: StorePrefix.default('thumbnails/'),
  /** Use this bucket (by name) for images instead of creating one; it is never deleted by the stack. */
  existingBucketName: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
    .optional(),
  /** Keep the data (images bucket, table, token secret) on `cdk destroy` and turn on table deletion protection. */
  protectData: flag.default(false),
  instanceType: z
    .string()
    .regex(GPU_INSTANCE, 'must be an NVIDIA GPU instance type such as g4dn.xlarge, g5.xlarge or g6.xlarge')
    .default('g4dn.xlarge'),
  /** Upper bound on GPU instances (one worker task per instance). */
  maxWorkers: int(1, 20).default(2),
  /** Backlog (visible + in-flight messages) one worker is expected to clear in a few minutes. */
  messagesPerWorker: int(1, 1_000_000).default(2000),
  /** Soft memory reservation of the worker container. */
  workerMemoryMiB: int(1024, 1_000_000).default(8192),
  /** How long a received message stays hidden; the worker extends it while a batch is still running. */
  visibilityTimeoutSeconds: int(60, 43_200).default(900),
  /** Receives before a message goes to the dead-letter queue. */
  maxReceiveCount: int(1, 1000).default(5),
  /** Manifest of the ONNX extractor shipped in the model layer and the worker image. */
  modelManifest: z.string().default('models/vgg16-pretrained.manifest.json'),
  /** Folder holding the built web page (vite build output). */
  webDist: z.string().default('web/dist'),
  /** Extra browser origins allowed by the API and bucket CORS besides the CloudFront site, e.g. http://localhost:5173. */
  extraAllowedOrigins: z
    .union([z.array(z.string()), z.string().transform((value) => value.split(',').filter(Boolean))])
    .pipe(z.array(z.url().regex(/^https?:\/\/[^/]+$/, 'must be an origin: scheme://host[:port], no path')))
    .default([]),
  apiRateLimit: int(1, 10_000).default(50),
  apiBurstLimit: int(1, 5_000).default(100),
  searchMemoryMiB: int(1024, 10_240).default(3008),
  logRetentionDays: z.coerce
    .number()
    .refine(
      (days) => VALID_RETENTION_DAYS.includes(days),
      `must be a CloudWatch Logs retention period: ${VALID_RETENTION_DAYS.join(', ')}`,
    )
    .default(30),
});
export type StackConfig = z.infer<typeof StackConfig>;

export const CONFIG_KEYS = Object.keys(StackConfig.shape) as (keyof StackConfig)[];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Resolves repo-relative paths and checks that the files the stack ships exist. */
export function parseConfig(raw: Record<string, unknown>, repoRoot: string): StackConfig {
  const picked = Object.fromEntries(
    CONFIG_KEYS.filter((key) => raw[key] !== undefined).map((key) => [key, raw[key]]),
  );
  const parsed = StackConfig.safeParse(picked);
  if (!parsed.success) {
    throw new ConfigError(
      `Invalid pic-search configuration (CDK context):\n${z.prettifyError(parsed.error)}`,
    );
  }
  const config = parsed.data;
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(repoRoot, path));
  const result = {
    ...config,
    modelManifest: absolute(config.modelManifest),
    webDist: absolute(config.webDist),
  };
  const problems: string[] = [];
  const overlap = prefixOverlap(config.imagePrefix, config.thumbnailPrefix);
  if (overlap) problems.push(`${overlap.prefix}Prefix: ${overlap.problem}`);
  if (isPlaintextRemote(config.milvusAddress) && !config.milvusAllowPlaintext) {
    problems.push(
      `milvusAddress: ${config.milvusAddress} is plaintext gRPC (the token and vectors would cross the network unencrypted) — use https://, or pass -c milvusAllowPlaintext=true to accept it`,
    );
  }
  if (!existsSync(result.modelManifest)) {
    problems.push(
      `modelManifest: ${result.modelManifest} does not exist — run \`npm run model:fetch\` first (or pass -c modelManifest=models/vgg16-seeded.manifest.json to try the stack with the seeded test model)`,
    );
  }
  if (!existsSync(resolve(result.webDist, 'index.html'))) {
    problems.push(
      `webDist: ${result.webDist}/index.html does not exist — build the web page first (npm run build:web)`,
    );
  }
  if (problems.length > 0)
    throw new ConfigError(
      `Invalid pic-search configuration (CDK context):\n${problems.map((p) => `✖ ${p}`).join('\n')}`,
    );
  return result;
}
