/**
 * Request and response shapes of the HTTP API, once: handlers validate with them and the OpenAPI document
 * is generated from them (z.toJSONSchema), so the two cannot drift apart.
 */
import { z } from 'zod';
import { MATCH_LABELS, ORIENTATIONS } from '../app/operations.ts';

const INTEGER = /^[-+]?\d+$/;

/** A query-string integer: digits only (so "1.5" and "1e1" are refused), then range-checked. */
function queryInteger(min: number, max: number, name: string) {
  const message = `${name} must be an integer from ${min} to ${max}`;
  return z
    .string()
    .trim()
    .regex(INTEGER, message)
    .pipe(z.coerce.number<string>().int(message).min(min, message).max(max, message));
}

const queryBoolean = z.enum(['true', 'false']);

/** The query of a route that takes no parameters: any parameter is refused (src/http/request.ts). */
export const noQuery = z.object({});

export const searchQuery = z.object({
  topK: queryInteger(1, 100, 'topK').optional().default(10).describe('How many results, best first.'),
  minScore: z
    .string()
    .trim()
    .min(1, 'minScore must be a number from -1 to 1')
    .pipe(
      z.coerce
        .number<string>({ error: 'minScore must be a number from -1 to 1' })
        .min(-1, 'minScore must be from -1 to 1')
        .max(1, 'minScore must be from -1 to 1'),
    )
    .optional()
    .describe('Drop results whose cosine similarity is below this.'),
  prefix: z.string().optional().describe('Only keys that start with this.'),
  orientation: z
    .enum(ORIENTATIONS, { error: `orientation must be one of: ${ORIENTATIONS.join(', ')}` })
    .optional()
    .describe(
      'any: also find rotated (90°, 180°, 270°) or mirrored copies by embedding the query 8 ways (about 8× the embedding time); upright (default): the query as it is. Searches by key use the stored vector and ignore it.',
    ),
});

export const duplicatesQuery = z.object({
  threshold: z
    .string()
    .trim()
    .min(1, 'threshold must be a number from 0 to 1')
    .pipe(
      z.coerce.number<string>().gt(0, 'threshold must be more than 0').max(1, 'threshold must be at most 1'),
    )
    .optional()
    .describe('Cosine similarity from which two images count as duplicates; default: the configured one.'),
  limit: queryInteger(1, 100, 'limit').optional().default(20).describe('Groups per page.'),
  cursor: z.string().optional().describe("The previous page's nextCursor."),
});

export const scanDuplicatesQuery = duplicatesQuery.pick({ threshold: true });

export const dismissDuplicatesBody = z.object({
  keys: z.array(z.string().min(1)).min(2).max(1000).describe('Images that are not duplicates of each other.'),
});

export const progressQuery = z.object({
  failures: queryInteger(0, 1000, 'failures')
    .optional()
    .default(20)
    .describe('How many recent failures to list.'),
});

export const deleteAllQuery = z.object({
  confirm: z
    .literal('true', { error: 'add confirm=true to delete every vector and catalogue entry' })
    .describe('Must be "true": deleting everything is never implicit.'),
  deleteObjects: queryBoolean
    .optional()
    .default('false')
    .describe('Also delete the image files in the bucket.'),
});

export const verifyQuery = z.object({
  repair: queryBoolean
    .optional()
    .default('false')
    .describe('Also fix what it finds (re-queue, forget, delete ghost vectors, recount).'),
});

export const deleteOneQuery = z.object({
  keepObject: queryBoolean
    .optional()
    .default('false')
    .describe('Keep the image file; forget only its vector.'),
});

const prefix = z.string().max(512).describe('Key prefix, e.g. "holiday/".');

export const moreLikeThisBody = z.object({ key: z.string().min(1).describe('An indexed image key.') });

export const ingestBody = z
  .object({
    path: z
      .string()
      .min(1)
      .optional()
      .describe('Embedded mode: a folder on the server; its images are synced into the bucket first.'),
    prefix: prefix.optional(),
  })
  .refine((body) => body.path !== undefined || body.prefix !== undefined, 'give "path" or "prefix"');

export const uploadsBody = z.object({
  files: z
    .array(
      z.object({
        name: z.string().min(1).max(1024),
        contentType: z.string().regex(/^image\//, 'must be image/*'),
      }),
    )
    .min(1)
    .max(100),
  prefix: prefix.optional(),
});

const timings = z.object({
  decodeMs: z.number(),
  embedMs: z.number(),
  searchMs: z.number(),
  lookupMs: z.number(),
  signMs: z.number(),
  totalMs: z.number(),
});

export const searchResponse = z.object({
  results: z.array(
    z.object({
      key: z.string(),
      id: z.string().describe('Vector id: decimal 63-bit hash of the key.'),
      score: z.number().min(-1).max(1).describe('Cosine similarity; 1 is the same picture.'),
      match: z
        .enum(MATCH_LABELS)
        .describe(
          'duplicate: the same picture, perhaps edited (calibrated to ≥ 99 % precision); similar: probably related; weak: likely unrelated (docs/search-quality.md).',
        ),
      imageUrl: z.string(),
      thumbnailUrl: z.string(),
    }),
  ),
  topK: z.number().int(),
  model: z.string(),
  profile: z.string(),
  pretrained: z.boolean().describe('False when seeded (random) weights stand in for pretrained ones.'),
  timings,
});

export const countResponse = z.object({ count: z.number().int().min(0) });

const outageReport = z
  .object({
    store: z.string().describe('index, catalogue, object store or queue'),
    since: z.string(),
    reason: z.string(),
    message: z.string().describe('"index unavailable since <time>": the worker waits it out.'),
  })
  .describe('Present while the worker cannot reach a store; nothing is dead-lettered meanwhile.');
export const taskResponse = z
  .object({
    id: z.string(),
    kind: z.enum(['delete-all', 'verify', 'duplicates', 'reindex']),
    state: z.enum(['running', 'done', 'failed']),
    options: z.object({
      deleteObjects: z.boolean().optional(),
      repair: z.boolean().optional(),
      threshold: z.number().optional(),
      target: z
        .object({ model: z.string(), profile: z.string(), dimension: z.number().int() })
        .optional()
        .describe('A re-index: the identity it builds.'),
    }),
    progress: z.record(z.string(), z.number()).describe('Work done so far, e.g. recordsRemoved.'),
    report: z
      .unknown()
      .optional()
      .describe(
        'A verification: what drifted, by kind, and whether it was repaired. A re-index: its step (prepare, queue, build, switched) and the generations it goes from and to.',
      ),
    error: z.string().optional(),
    startedAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().optional(),
  })
  .describe('A background task the worker runs in slices (docs/operations.md).');

export const progressResponse = z.object({
  total: z.number().int(),
  pending: z.number().int(),
  indexed: z.number().int(),
  failed: z.number().int(),
  throughput: z.number().describe('Images indexed per second, recently.'),
  etaSeconds: z
    .number()
    .nullable()
    .describe(
      'Seconds until the outstanding work (pending images or queued messages, whichever is more) is done; null while the speed is unknown.',
    ),
  queue: z
    .object({ visible: z.number().int(), inFlight: z.number().int() })
    .describe(
      'Messages waiting and being worked on: objects dropped into the bucket are counted here before they have a record.',
    ),
  recentFailures: z.array(z.object({ key: z.string(), reason: z.string(), at: z.string() })),
  outage: outageReport.optional(),
  tasks: z
    .object({
      deleteAll: taskResponse.nullable(),
      verify: taskResponse.nullable(),
      reindex: taskResponse.nullable(),
    })
    .describe(
      "The newest delete-all cleanup, verification (its report under 'report' once done) and re-index (progress: queued, indexed, failed of total).",
    ),
});

export const ingestResponse = z.object({
  queued: z.number().int().describe('New or changed images queued for indexing.'),
  unchanged: z.number().int().describe('Already indexed with the same content.'),
  removed: z.number().int().describe('Forgotten because their file is gone.'),
  keptOut: z.number().int().describe('Photos a delete-all kept, left out (automatic reconciles only).'),
  prefix: z.string(),
  files: z
    .object({
      images: z.number().int(),
      copied: z.number().int(),
      unchanged: z.number().int(),
      deleted: z.number().int(),
      skipped: z.number().int().describe('Files without an image extension.'),
    })
    .optional()
    .describe('Folder ingest only: what copying the folder into the bucket did.'),
});

export const uploadResponse = z.object({
  keys: z.array(z.string()),
  rejected: z.array(z.object({ name: z.string(), error: z.string(), message: z.string() })),
});

export const uploadsResponse = z.object({
  uploads: z.array(
    z.discriminatedUnion('method', [
      z
        .object({
          key: z.string(),
          url: z.string(),
          method: z.literal('PUT'),
          headers: z.record(z.string(), z.string()),
          expiresInSeconds: z.number(),
        })
        .describe('Embedded: PUT the raw bytes with these headers.'),
      z
        .object({
          key: z.string(),
          url: z.string(),
          method: z.literal('POST'),
          fields: z.record(z.string(), z.string()),
          maxBytes: z.number(),
          expiresInSeconds: z.number(),
        })
        .describe('Cloud: a presigned S3 POST form: the fields, then the file as the part named "file".'),
    ]),
  ),
});

export const duplicatesResponse = z.object({
  groups: z.array(
    z.object({
      keep: z.string().describe('The copy to keep: most pixels, then largest file, then oldest.'),
      bestScore: z.number().describe('The highest similarity between two members.'),
      members: z.array(
        z.object({
          key: z.string(),
          id: z.string(),
          score: z.number().describe('Cosine similarity to the copy to keep.'),
          width: z.number().int(),
          height: z.number().int(),
          bytes: z.number().int(),
          modifiedAt: z.string(),
          imageUrl: z.string(),
          thumbnailUrl: z.string(),
        }),
      ),
    }),
  ),
  totalGroups: z.number().int(),
  threshold: z.number(),
  nextCursor: z.string().nullable().describe('null on the last page.'),
  scan: z
    .object({
      running: z.boolean(),
      finishedAt: z.string().nullable().describe('When the last scan finished; null before the first.'),
      threshold: z.number().nullable(),
    })
    .optional()
    .describe('Cloud: the scan the groups come from (POST /duplicates/scan starts one).'),
});

export const deletedOneResponse = z.object({ deleted: z.string() });
export const deletedAllResponse = z.object({
  deleted: z.number().int().describe("Images indexed when it was emptied (the catalogue's count)."),
  task: taskResponse.describe('The cleanup of records, thumbnails (and objects), running in the background.'),
});

export const healthResponse = z.object({
  status: z.enum(['ok', 'degraded']).describe('degraded: the worker cannot reach a store (see outage).'),
  mode: z.enum(['embedded', 'cloud']),
  model: z.object({
    model: z.string(),
    profile: z.string(),
    dimension: z.number().int(),
    provider: z.string(),
    pretrained: z.boolean(),
  }),
  index: z.object({ model: z.string(), profile: z.string(), dimension: z.number().int() }).optional(),
  outage: outageReport.optional(),
});

export const errorResponse = z.object({
  error: z
    .string()
    .describe(
      'bad_request, not_found, payload_too_large, conflict, index_mismatch, unavailable, internal, or for ' +
        'images: empty, not_an_image, unsupported_format, corrupt, too_many_pixels, bad_aspect_ratio',
    ),
  message: z.string().describe('What went wrong, in plain words.'),
});

/** What API Gateway answers by itself (cloud mode: missing or wrong token, throttling). */
export const gatewayErrorResponse = z.object({ message: z.string() });
