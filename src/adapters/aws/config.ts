import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigEnv, ConfigError, type LOG_LEVELS, parseEnv } from '../../config.ts';

/**
 * Cloud configuration, read once from the environment (the CDK stack sets these; tests point them at
 * the emulators). A bad environment fails at start with one message naming every bad variable.
 */
export const CloudEnv = z.object({
  IMAGES_BUCKET: z.string({ error: 'required (the images bucket name)' }),
  IMAGE_PREFIX: z.string().default('images/'),
  THUMBNAIL_PREFIX: z.string().default('thumbnails/'),
  QUEUE_URL: z.url({ error: 'required (the ingest queue URL)' }),
  TABLE_NAME: z.string({ error: 'required (the catalogue table name)' }),
  MILVUS_ADDRESS: z.string({ error: 'required (host:port or https://endpoint)' }),
  /** Secrets Manager ARN of the Milvus token (cloud). */
  MILVUS_TOKEN_SECRET_ARN: z.string().optional(),
  /** The token itself (local runs); neither is needed for a Milvus without auth such as Milvus Lite. */
  MILVUS_TOKEN: z.string().optional(),
  MILVUS_COLLECTION: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/, 'letters, digits and _ only, not starting with a digit')
    .default('pic_search'),
  PIC_MODEL_MANIFEST: z.string({ error: 'required (the model manifest JSON path)' }),
  AWS_REGION: z.string({ error: 'required' }),
  /** Emulators only (moto). */
  AWS_ENDPOINT_URL: z.url().optional(),
  PIC_URL_EXPIRES_SECONDS: z.coerce.number().int().min(60).max(604_800).default(3600),
  PIC_BATCH_SIZE: ConfigEnv.shape.PIC_BATCH_SIZE,
  PIC_THREADS: ConfigEnv.shape.PIC_THREADS,
  PIC_INGEST_SESSIONS: ConfigEnv.shape.PIC_INGEST_SESSIONS,
  PIC_MAX_PIXELS: ConfigEnv.shape.PIC_MAX_PIXELS,
  PIC_MAX_RECEIVE_COUNT: ConfigEnv.shape.PIC_MAX_RECEIVE_COUNT,
  PIC_LOG_LEVEL: ConfigEnv.shape.PIC_LOG_LEVEL,
  /** How long a receive hides a batch (the queue's VisibilityTimeout in the stack): the worker's heartbeat extends batches to it. */
  PIC_VISIBILITY_SECONDS: z.coerce.number().int().min(10).max(43_200).default(300),
  /** GPU worker: refuse to start on the CPU provider. */
  PIC_REQUIRE_GPU: z.enum(['true', 'false', '1', '0']).default('false'),
});

export interface CloudConfig {
  bucket: string;
  imagePrefix: string;
  thumbnailPrefix: string;
  queueUrl: string;
  tableName: string;
  milvus: { address: string; collection: string; tokenSecretArn?: string; token?: string };
  /** Absolute path of the model manifest. */
  modelManifest: string;
  region: string;
  awsEndpoint?: string;
  urlExpiresSeconds: number;
  batchSize: number;
  threads: number;
  ingestSessions: number | undefined;
  maxPixels: number;
  maxReceiveCount: number;
  visibilitySeconds: number;
  requireGpu: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
}

export function loadCloudConfig(env: Record<string, string | undefined> = process.env): CloudConfig {
  const e = parseEnv(CloudEnv, env);
  if (e.IMAGE_PREFIX === e.THUMBNAIL_PREFIX) {
    throw new ConfigError([
      'THUMBNAIL_PREFIX: must differ from IMAGE_PREFIX, or thumbnails would be ingested',
    ]);
  }
  return {
    bucket: e.IMAGES_BUCKET,
    imagePrefix: e.IMAGE_PREFIX,
    thumbnailPrefix: e.THUMBNAIL_PREFIX,
    queueUrl: e.QUEUE_URL,
    tableName: e.TABLE_NAME,
    milvus: {
      address: e.MILVUS_ADDRESS,
      collection: e.MILVUS_COLLECTION,
      ...(e.MILVUS_TOKEN_SECRET_ARN ? { tokenSecretArn: e.MILVUS_TOKEN_SECRET_ARN } : {}),
      ...(e.MILVUS_TOKEN ? { token: e.MILVUS_TOKEN } : {}),
    },
    modelManifest: resolve(e.PIC_MODEL_MANIFEST),
    region: e.AWS_REGION,
    ...(e.AWS_ENDPOINT_URL ? { awsEndpoint: e.AWS_ENDPOINT_URL } : {}),
    urlExpiresSeconds: e.PIC_URL_EXPIRES_SECONDS,
    batchSize: e.PIC_BATCH_SIZE,
    threads: e.PIC_THREADS,
    ingestSessions: e.PIC_INGEST_SESSIONS,
    maxPixels: e.PIC_MAX_PIXELS,
    maxReceiveCount: e.PIC_MAX_RECEIVE_COUNT,
    visibilitySeconds: e.PIC_VISIBILITY_SECONDS,
    requireGpu: e.PIC_REQUIRE_GPU === 'true' || e.PIC_REQUIRE_GPU === '1',
    logLevel: e.PIC_LOG_LEVEL,
  };
}
