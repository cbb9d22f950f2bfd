import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigEnv, ConfigError, parseEnv } from '../../config.ts';

/**
 * Cloud configuration, read from the environment in parts: each part is the variables of one resource or
 * concern. A Lambda function reads only the parts its factory names (src/wiring/cloud-functions.ts), and
 * the stack sets exactly those variables together with the grants (infra/bindings.ts); the worker reads
 * every part but the model identity. A bad environment fails at start with one message naming every bad
 * variable of the parts read.
 */

/** One part: its variables and what they become. */
function part<S extends z.ZodObject, R extends object>(env: S, read: (e: z.infer<S>) => R) {
  return { env, read };
}

const flag = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');

/**
 * An S3 key prefix the service owns: not empty (that would be the whole bucket), ends with "/", does not
 * start with "/".
 */
export const StorePrefix = z
  .string()
  .regex(/^[^/].*\/$/, 'must end with "/", not start with "/", and not be empty (the whole bucket)');

/**
 * Where the worker keeps each index generation's model files in the bucket, for searches until a
 * re-index switches (src/model/kept-models.ts); the images bucket's own prefix, like the thumbnails'.
 */
export const KEPT_MODELS_PREFIX = 'index-models/';

const under = (a: string, b: string) => a.startsWith(b) || b.startsWith(a);

/**
 * Thumbnails and kept models must never be ingested as images, and the worker's grants on them must never
 * reach an image: no two of the three prefixes may start with one another. Returns the problem, naming the
 * configurable prefix at fault, if any.
 */
export function prefixOverlap(
  imagePrefix: string,
  thumbnailPrefix: string,
): { prefix: 'image' | 'thumbnail'; problem: string } | undefined {
  if (under(imagePrefix, thumbnailPrefix)) {
    return {
      prefix: 'thumbnail',
      problem: `the thumbnail prefix "${thumbnailPrefix}" and the image prefix "${imagePrefix}" overlap: thumbnails would be ingested as images, or the worker could overwrite images`,
    };
  }
  for (const [prefix, value] of [
    ['image', imagePrefix],
    ['thumbnail', thumbnailPrefix],
  ] as const) {
    if (under(value, KEPT_MODELS_PREFIX)) {
      return {
        prefix,
        problem: `the ${prefix} prefix "${value}" and "${KEPT_MODELS_PREFIX}", where the worker keeps each index generation's model, overlap: choose another ${prefix} prefix`,
      };
    }
  }
  return undefined;
}

/** gRPC without TLS, unless the address is https://. Loopback never leaves the host. */
export function isPlaintextRemote(address: string): boolean {
  if (address.startsWith('https://')) return false;
  const host = address.replace(/^http:\/\//, '').replace(/(:\d+)?\/?$/, '');
  return !['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host);
}

const common = part(
  z.object({
    AWS_REGION: z.string({ error: 'required' }),
    /** Emulators only (moto). */
    AWS_ENDPOINT_URL: z.url().optional(),
    PIC_LOG_LEVEL: ConfigEnv.shape.PIC_LOG_LEVEL,
  }),
  (e) => ({
    region: e.AWS_REGION,
    ...(e.AWS_ENDPOINT_URL ? { awsEndpoint: e.AWS_ENDPOINT_URL } : {}),
    logLevel: e.PIC_LOG_LEVEL,
  }),
);

const bucket = part(
  z.object({
    IMAGES_BUCKET: z.string({ error: 'required (the images bucket name)' }),
    IMAGE_PREFIX: StorePrefix.default('images/'),
    THUMBNAIL_PREFIX: StorePrefix.default('thumbnails/'),
    PIC_URL_EXPIRES_SECONDS: z.coerce.number().int().min(60).max(604_800).default(3600),
  }),
  (e) => {
    const overlap = prefixOverlap(e.IMAGE_PREFIX, e.THUMBNAIL_PREFIX);
    if (overlap) throw new ConfigError([`${overlap.prefix.toUpperCase()}_PREFIX: ${overlap.problem}`]);
    return {
      bucket: e.IMAGES_BUCKET,
      imagePrefix: e.IMAGE_PREFIX,
      thumbnailPrefix: e.THUMBNAIL_PREFIX,
      urlExpiresSeconds: e.PIC_URL_EXPIRES_SECONDS,
    };
  },
);

const queue = part(
  z.object({
    QUEUE_URL: z.url({ error: 'required (the ingest queue URL)' }),
    /** How long a receive hides a batch (the queue's VisibilityTimeout in the stack): the worker's heartbeat extends batches to it. */
    PIC_VISIBILITY_SECONDS: z.coerce.number().int().min(10).max(43_200).default(300),
  }),
  (e) => ({
    queueUrl: e.QUEUE_URL,
    visibilitySeconds: e.PIC_VISIBILITY_SECONDS,
  }),
);

const table = part(
  z.object({ TABLE_NAME: z.string({ error: 'required (the catalogue table name)' }) }),
  (e) => ({ tableName: e.TABLE_NAME }),
);

const milvus = part(
  z.object({
    MILVUS_ADDRESS: z.string({ error: 'required (host:port or https://endpoint)' }),
    /** Secrets Manager ARN of the Milvus token (cloud). */
    MILVUS_TOKEN_SECRET_ARN: z.string().optional(),
    /** The token itself (local runs); neither is needed for a Milvus without auth such as Milvus Lite. */
    MILVUS_TOKEN: z.string().optional(),
    MILVUS_COLLECTION: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/, 'letters, digits and _ only, not starting with a digit')
      .default('pic_search'),
    /** Accept a plaintext (not https://) address of another host: the token and vectors cross the network unencrypted. */
    MILVUS_ALLOW_PLAINTEXT: flag.default(false),
  }),
  (e) => {
    if (isPlaintextRemote(e.MILVUS_ADDRESS)) {
      const risk = `MILVUS_ADDRESS=${e.MILVUS_ADDRESS} is plaintext gRPC: the Milvus token and every vector cross the network unencrypted`;
      if (!e.MILVUS_ALLOW_PLAINTEXT) {
        throw new ConfigError([`${risk}; use https://, or set MILVUS_ALLOW_PLAINTEXT=true to accept it`]);
      }
      process.emitWarning(`${risk} (MILVUS_ALLOW_PLAINTEXT=true)`, { code: 'PIC_MILVUS_PLAINTEXT' });
    }
    return {
      milvus: {
        address: e.MILVUS_ADDRESS,
        collection: e.MILVUS_COLLECTION,
        ...(e.MILVUS_TOKEN_SECRET_ARN ? { tokenSecretArn: e.MILVUS_TOKEN_SECRET_ARN } : {}),
        ...(e.MILVUS_TOKEN ? { token: e.MILVUS_TOKEN } : {}),
      },
    };
  },
);

const model = part(
  z.object({
    PIC_MODEL_MANIFEST: z.string({ error: 'required (the model manifest JSON path)' }),
    PIC_BATCH_SIZE: ConfigEnv.shape.PIC_BATCH_SIZE,
    PIC_THREADS: ConfigEnv.shape.PIC_THREADS,
    PIC_MODEL_PRECISION: ConfigEnv.shape.PIC_MODEL_PRECISION,
  }),
  (e) => ({
    /** Absolute path of the model manifest. */
    modelManifest: resolve(e.PIC_MODEL_MANIFEST),
    /** CPU sessions: `auto` takes an int8 model deployed beside the manifest when this CPU has VNNI/AMX. */
    modelPrecision: e.PIC_MODEL_PRECISION,
    batchSize: e.PIC_BATCH_SIZE,
    threads: e.PIC_THREADS,
  }),
);

/** The EmbedderInfo the search function states (infra: embedderInfoOf the manifest, CPU provider). */
const ModelIdentity = z
  .object({
    model: z.string().min(1),
    profile: z.string().min(1),
    dimension: z.number().int().positive(),
    provider: z.string().min(1),
    pretrained: z.boolean(),
    matchThresholds: z.object({ duplicate: z.number(), similar: z.number() }).optional(),
  })
  .loose();
export type ModelIdentity = z.infer<typeof ModelIdentity>;

/**
 * What the model is, for the functions that state it without embedding (health, ingest): the stack
 * writes it from the same manifest the search function and the worker load, so they need no model layer.
 */
const modelIdentity = part(
  z.object({
    PIC_MODEL_IDENTITY: z
      .string({ error: 'required (JSON: model, profile, dimension, provider, pretrained)' })
      .transform((text, context) => {
        try {
          return ModelIdentity.parse(JSON.parse(text));
        } catch {
          context.addIssue({
            code: 'custom',
            message: 'must be the JSON the stack writes: {model, profile, dimension, provider, pretrained}',
          });
          return z.NEVER;
        }
      }),
  }),
  (e) => ({ modelIdentity: e.PIC_MODEL_IDENTITY }),
);

/** Limits of what is decoded: pixels from the header, and bytes of an uploaded or ingested object. */
const decode = part(
  z.object({
    PIC_MAX_PIXELS: ConfigEnv.shape.PIC_MAX_PIXELS,
    PIC_MAX_UPLOAD_BYTES: ConfigEnv.shape.PIC_MAX_UPLOAD_BYTES,
  }),
  (e) => ({ maxPixels: e.PIC_MAX_PIXELS, maxObjectBytes: e.PIC_MAX_UPLOAD_BYTES }),
);

const worker = part(
  z.object({
    PIC_INGEST_SESSIONS: ConfigEnv.shape.PIC_INGEST_SESSIONS,
    PIC_MAX_RECEIVE_COUNT: ConfigEnv.shape.PIC_MAX_RECEIVE_COUNT,
    PIC_OUTAGE_FIRST_MS: ConfigEnv.shape.PIC_OUTAGE_FIRST_MS,
    PIC_OUTAGE_LONGEST_MS: ConfigEnv.shape.PIC_OUTAGE_LONGEST_MS,
    /** GPU worker: refuse to start on the CPU provider. */
    PIC_REQUIRE_GPU: flag.default(false),
  }),
  (e) => ({
    ingestSessions: e.PIC_INGEST_SESSIONS,
    maxReceiveCount: e.PIC_MAX_RECEIVE_COUNT,
    outageBackoff: { firstMs: e.PIC_OUTAGE_FIRST_MS, longestMs: e.PIC_OUTAGE_LONGEST_MS },
    requireGpu: e.PIC_REQUIRE_GPU,
  }),
);

/** Every part of the cloud configuration, by name. */
export const CLOUD_PARTS = { bucket, queue, table, milvus, model, modelIdentity, decode, worker };
export type CloudPart = keyof typeof CLOUD_PARTS;
type PartConfig<P extends CloudPart> = ReturnType<(typeof CLOUD_PARTS)[P]['read']>;
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/** The configuration of the common part plus the parts `P`. */
export type CloudPartsConfig<P extends CloudPart> = ReturnType<typeof common.read> &
  Intersection<{ [K in P]: PartConfig<K> }[P]>;

/** The environment variables a part reads (the stack sets them; nothing else is read). */
export function variablesOf(part: CloudPart | 'common'): string[] {
  return Object.keys((part === 'common' ? common : CLOUD_PARTS[part]).env.shape);
}

/** Reads the common variables and those of `parts`, no others; one error names every bad one. */
export function loadCloudParts<P extends CloudPart>(
  parts: readonly P[],
  env: Record<string, string | undefined> = process.env,
): CloudPartsConfig<P> {
  const chosen = [common, ...parts.map((part) => CLOUD_PARTS[part])] as {
    env: z.ZodObject;
    read: (e: never) => object;
  }[];
  const schema = z.object(Object.assign({}, ...chosen.map((part) => part.env.shape)));
  const e = parseEnv(schema, env);
  return Object.assign({}, ...chosen.map((part) => part.read(e as never))) as CloudPartsConfig<P>;
}

const WORKER_PARTS = ['bucket', 'queue', 'table', 'milvus', 'model', 'decode', 'worker'] as const;

/** The whole cloud configuration: what the worker (and the tests' full system) reads. */
export type CloudConfig = CloudPartsConfig<(typeof WORKER_PARTS)[number]>;

export function loadCloudConfig(env: Record<string, string | undefined> = process.env): CloudConfig {
  return loadCloudParts(WORKER_PARTS, env);
}
