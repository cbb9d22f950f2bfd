import { availableParallelism, homedir } from 'node:os';
import { delimiter, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { Precision } from './model/precision.ts';

/**
 * Environment variables of the embedded service (and what the cloud worker shares), parsed once at
 * start-up. Empty strings count as unset so `PORT= npm start` means the default, not an error.
 */
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * Cosine similarity from which the duplicates view groups two images when neither PIC_DUPLICATE_THRESHOLD nor
 * the model's manifest says (docs/web-page.md: measured with the seeded model).
 */
export const DEFAULT_DUPLICATE_THRESHOLD = 0.995;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const ConfigEnv = z.object({
  PIC_DATA_DIR: z.string().default('./data'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  /** Model manifest; unset means: the pretrained model when present, otherwise the seeded one. */
  PIC_MODEL_MANIFEST: z.string().optional(),
  PIC_MODEL_FETCH: z.enum(['true', 'false', '1', '0']).default('true'),
  PIC_MODEL_PRECISION: Precision.default('auto'),
  PIC_INT8_PREPARE: z.enum(['true', 'false', '1', '0']).default('true'),
  PIC_MAX_UPLOAD_BYTES: positiveInt(25 * 1024 * 1024),
  PIC_MAX_PIXELS: positiveInt(100_000_000),
  /** Query images are decoded while a person waits: a lower ceiling than ingest's (a phone's 48 MP fits). */
  PIC_MAX_QUERY_PIXELS: positiveInt(50_000_000),
  /** Searches waiting for the embedder beyond those running; unset: 4 per core. */
  PIC_SEARCH_QUEUE: z.coerce.number().int().min(0).max(10_000).optional(),
  /** Folders POST /ingest may read, separated by the path delimiter (":"); unset: home and data folder. */
  PIC_INGEST_ROOTS: z
    .string()
    .refine(
      (value) => value.split(delimiter).every((root) => isAbsolute(root)),
      `each folder must be an absolute path, separated by "${delimiter}"`,
    )
    .optional(),
  /** Bearer token for the local API; required when HOST is not a loopback address. */
  PIC_API_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  PIC_BATCH_SIZE: z.coerce.number().int().min(1).max(256).default(8),
  PIC_THREADS: positiveInt(availableParallelism()),
  /** Intra-op threads of the search model session; unset: PIC_THREADS (docs/performance.md, Service). */
  PIC_SEARCH_THREADS: z.coerce.number().int().min(1).max(256).optional(),
  /** Unset: one per thread on the CPU (up to 4), one with CUDA (see ingestSessions). */
  PIC_INGEST_SESSIONS: z.coerce.number().int().min(1).max(64).optional(),
  PIC_MAX_RECEIVE_COUNT: z.coerce.number().int().min(1).max(1000).default(5),
  /** Circuit breaker: first pause after a store is seen unreachable, doubling up to the longest. */
  PIC_OUTAGE_FIRST_MS: positiveInt(1000),
  PIC_OUTAGE_LONGEST_MS: positiveInt(300_000),
  PIC_WATCH: z.enum(['true', 'false', '1', '0']).default('true'),
  PIC_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /** Unset: the model's calibrated duplicate threshold, else DEFAULT_DUPLICATE_THRESHOLD. */
  PIC_DUPLICATE_THRESHOLD: z.coerce.number().gt(0).max(1).optional(),
  /** Unset: the index's default (DEFAULT_INT8_FROM in src/adapters/embedded/exact-vector-index.ts). */
  PIC_INDEX_INT8_FROM: z.coerce.number().int().positive().optional(),
});

export interface Config {
  /** Absolute. Holds bucket/, thumbnails/, queue.db, catalogue.db and the vector index. */
  dataDir: string;
  port: number;
  host: string;
  modelManifest: string | undefined;
  /** Download the pretrained weights at start when none are installed (else the seeded model stands in). */
  modelFetch: boolean;
  /** CPU model precision: `auto` takes the int8 model when it is valid and faster here (chooseModel). */
  modelPrecision: Precision;
  /** At start, make the int8 model in the background when there is none (`npm run model:quantize`). */
  int8Prepare: boolean;
  maxUploadBytes: number;
  maxPixels: number;
  /** Pixel ceiling of a query image (PIC_MAX_QUERY_PIXELS). */
  maxQueryPixels: number;
  /** Searches that may wait for the embedder before more are refused with 429. */
  searchQueue: number;
  /** Absolute folders POST /ingest may read from. */
  ingestRoots: string[];
  /** Bearer token every API request must carry; undefined: none (loopback only). */
  apiToken: string | undefined;
  /** Images per inference batch in the worker. */
  batchSize: number;
  /** CPU threads for inference: ingest shares them among its sessions. */
  threads: number;
  /** Intra-op threads of the session that embeds query images. */
  searchThreads: number;
  /** Model sessions of the ingest embedder; undefined: chosen by ingestSessions. */
  ingestSessions: number | undefined;
  /** Deliveries of a job before it is given up on (recorded as failed and dead-lettered). */
  maxReceiveCount: number;
  /** The worker's circuit breaker clock (docs/consistency.md). */
  outageBackoff: { firstMs: number; longestMs: number };
  /** Watch the bucket folder for dropped and deleted files. */
  watch: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  /** Cosine similarity from which two images count as duplicates (GET /duplicates' default); undefined: the model's. */
  duplicateThreshold: number | undefined;
  /** Vectors from which a search scans int8 codes and re-scores the best in float32; undefined: the index's default. */
  indexInt8From: number | undefined;
}

/** Every invalid variable, named, in one message (CONVENTIONS rule 5). */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses `env` against a schema whose keys are variable names; throws one ConfigError naming every bad
 * variable with the value it had. Exported so the cloud wiring validates its variables the same way.
 */
export function parseEnv<S extends z.ZodObject>(
  schema: S,
  env: Record<string, string | undefined>,
): z.infer<S> {
  const present = Object.fromEntries(
    Object.keys(schema.shape)
      .map((name) => [name, env[name]?.trim()] as const)
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '(environment)');
      const value = present[name];
      return value === undefined
        ? `${name}: ${issue.message}`
        : `${name}=${JSON.stringify(value)}: ${issue.message}`;
    }),
  );
}

/** Reads the configuration from `env` (process.env by default; callers merge CLI overrides into it). */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const e = parseEnv(ConfigEnv, env);
  const dataDir = resolve(e.PIC_DATA_DIR);
  return {
    dataDir,
    port: e.PORT,
    host: e.HOST,
    modelManifest: e.PIC_MODEL_MANIFEST === undefined ? undefined : resolve(e.PIC_MODEL_MANIFEST),
    modelFetch: flag(e.PIC_MODEL_FETCH),
    modelPrecision: e.PIC_MODEL_PRECISION,
    int8Prepare: flag(e.PIC_INT8_PREPARE),
    maxUploadBytes: e.PIC_MAX_UPLOAD_BYTES,
    maxPixels: e.PIC_MAX_PIXELS,
    maxQueryPixels: e.PIC_MAX_QUERY_PIXELS,
    searchQueue: e.PIC_SEARCH_QUEUE ?? 4 * e.PIC_THREADS,
    ingestRoots: e.PIC_INGEST_ROOTS?.split(delimiter) ?? [homedir(), dataDir],
    apiToken: e.PIC_API_TOKEN,
    batchSize: e.PIC_BATCH_SIZE,
    threads: e.PIC_THREADS,
    searchThreads: e.PIC_SEARCH_THREADS ?? e.PIC_THREADS,
    ingestSessions: e.PIC_INGEST_SESSIONS,
    maxReceiveCount: e.PIC_MAX_RECEIVE_COUNT,
    outageBackoff: { firstMs: e.PIC_OUTAGE_FIRST_MS, longestMs: e.PIC_OUTAGE_LONGEST_MS },
    watch: flag(e.PIC_WATCH),
    logLevel: e.PIC_LOG_LEVEL,
    duplicateThreshold: e.PIC_DUPLICATE_THRESHOLD,
    indexInt8From: e.PIC_INDEX_INT8_FROM,
  };
}

function flag(value: 'true' | 'false' | '1' | '0'): boolean {
  return value === 'true' || value === '1';
}
