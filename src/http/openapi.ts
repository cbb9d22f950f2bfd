/**
 * The OpenAPI 3.1 document served at GET /openapi.json. Schemas come from src/http/schemas.ts through
 * z.toJSONSchema (OpenAPI 3.1 uses JSON Schema 2020-12), so the document describes what the handlers check.
 */
import { z } from 'zod';
import {
  countResponse,
  deleteAllQuery,
  deletedAllResponse,
  deletedOneResponse,
  deleteOneQuery,
  dismissDuplicatesBody,
  duplicatesQuery,
  duplicatesResponse,
  errorResponse,
  gatewayErrorResponse,
  healthResponse,
  ingestBody,
  ingestResponse,
  moreLikeThisBody,
  progressQuery,
  progressResponse,
  scanDuplicatesQuery,
  searchQuery,
  searchResponse,
  taskResponse,
  uploadResponse,
  uploadsBody,
  uploadsResponse,
  verifyQuery,
} from './schemas.ts';

type Json = Record<string, unknown>;
type Mode = 'embedded' | 'cloud';

/** Request bodies are described as callers send them ("input"): unknown fields are ignored, not refused. */
const requestComponents = {
  MoreLikeThis: moreLikeThisBody,
  IngestRequest: ingestBody,
  UploadsRequest: uploadsBody,
  DismissDuplicates: dismissDuplicatesBody,
} satisfies Record<string, z.ZodType>;

const responseComponents = {
  SearchResponse: searchResponse,
  Count: countResponse,
  Progress: progressResponse,
  Task: taskResponse,
  IngestReport: ingestResponse,
  Upload: uploadResponse,
  Uploads: uploadsResponse,
  DeletedOne: deletedOneResponse,
  DeletedAll: deletedAllResponse,
  Health: healthResponse,
  Duplicates: duplicatesResponse,
  Error: errorResponse,
  GatewayError: gatewayErrorResponse,
} satisfies Record<string, z.ZodType>;

type ComponentName = keyof typeof requestComponents | keyof typeof responseComponents;

/** Query parameters and responses are described as the handlers see them after parsing ("output"). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

const ref = (name: ComponentName) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (name: ComponentName) => ({ 'application/json': { schema: ref(name) } });
const ok = (status: number, description: string, name: ComponentName) => ({
  [status]: { description, content: jsonBody(name) },
});

const ERROR_MEANINGS: Record<number, string> = {
  400: 'Bad input, or a query parameter the operation does not take (the message says which and why).',
  404: 'Unknown key.',
  409: 'The index was built by another model or preprocessing profile.',
  413: 'Body, image or file count over the limit.',
  415: 'Not an image the decoder accepts (the message gives its reason).',
  500: 'Unexpected error.',
  501: 'Not available in this mode.',
  503: 'A backend (vector index, catalogue, bucket) is unavailable.',
};

/** Answered by API Gateway before the request reaches pic-search (cloud mode only), as {"message"}. */
const GATEWAY_ERRORS: Record<number, string> = {
  401: 'No Authorization header.',
  403: 'The bearer token is wrong.',
  429: 'Over the API rate limit; retry later.',
};

/** Error responses of an operation: the given statuses, plus those every operation can answer. */
function errorResponses(mode: Mode) {
  const gateway = mode === 'cloud' ? Object.keys(GATEWAY_ERRORS).map(Number) : [];
  return (...statuses: number[]): Json =>
    Object.fromEntries(
      [...new Set([400, ...statuses, ...gateway, 500, 503])]
        .sort((a, b) => a - b)
        .map((status) => [
          status,
          GATEWAY_ERRORS[status]
            ? { description: GATEWAY_ERRORS[status], content: jsonBody('GatewayError') }
            : { description: ERROR_MEANINGS[status], content: jsonBody('Error') },
        ]),
    );
}

function queryParameters(schema: z.ZodObject): Json[] {
  const { properties = {}, required = [] } = jsonSchema(schema) as { properties?: Json; required?: string[] };
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property as Json;
    // A default makes the output "required"; for the caller it is optional.
    return {
      name,
      in: 'query',
      required: required.includes(name) && !('default' in rest),
      description,
      schema: rest,
    };
  });
}

const keyParameter = {
  name: 'key',
  in: 'path',
  required: true,
  description: 'Object key; may contain "/". Percent-encode each segment, e.g. holiday/beach%20day.jpg.',
  schema: { type: 'string' },
};

const imageBody = (description: string) => ({
  required: true,
  description,
  content: {
    'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } },
    'multipart/form-data': {
      schema: { type: 'object', properties: { image: { type: 'string', contentMediaType: 'image/*' } } },
    },
    'application/json': { schema: ref('MoreLikeThis') },
  },
});

const imageResponse = (description: string, contentType: string) => ({
  200: {
    description,
    content: { [contentType]: { schema: { type: 'string', contentMediaType: contentType } } },
  },
  302: { description: 'Cloud mode: redirect to a short-lived presigned link.' },
});

/** The document for one mode: cloud adds the bearer token and API Gateway's own errors. */
export function openApiDocument(mode: Mode): Json {
  const errors = errorResponses(mode);
  const paths: Record<string, Json> = {
    '/health': {
      get: {
        operationId: 'health',
        summary: 'Mode, model, execution provider, index identity.',
        responses: { ...ok(200, 'Healthy.', 'Health'), ...errors() },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document.',
        responses: {
          200: {
            description: 'OpenAPI 3.1 document.',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
          ...errors(),
        },
      },
    },
    '/count': {
      get: {
        operationId: 'count',
        summary: 'Vectors in the index.',
        responses: { ...ok(200, 'The count.', 'Count'), ...errors() },
      },
    },
    '/progress': {
      get: {
        operationId: 'progress',
        summary: 'Ingest progress: totals, throughput, ETA and the latest failures with reasons.',
        parameters: queryParameters(progressQuery),
        responses: { ...ok(200, 'Progress.', 'Progress'), ...errors(400) },
      },
    },
    '/verify': {
      post: {
        operationId: 'verify',
        summary:
          'Compare bucket, catalogue and index in the background and report every drift (with repair=true, fix it); the report appears in GET /progress.',
        parameters: queryParameters(verifyQuery),
        responses: { ...ok(202, 'Started.', 'Task'), ...errors(400) },
      },
    },
    '/reindex': {
      post: {
        operationId: 'reindex',
        summary:
          'Rebuild the index with the configured model from the bucket, in a new index generation (embedded: a local file; cloud: a Milvus collection) built in the background while the live one answers; it switches when complete and drops the old one (docs/models.md). 202 with the task (the running one when started already); follow it in GET /progress (tasks.reindex). 409 when the index is built by the configured model already.',
        responses: { ...ok(202, 'Started.', 'Task'), ...errors(409) },
      },
    },
    '/ingest': {
      post: {
        operationId: 'ingest',
        summary:
          'Index a folder (embedded: {"path"}) or a bucket prefix ({"prefix"}); unchanged images are skipped, gone ones removed.',
        requestBody: { required: true, content: jsonBody('IngestRequest') },
        responses: { ...ok(202, 'Queued; follow GET /progress.', 'IngestReport'), ...errors(400) },
      },
    },
    '/images': {
      post: {
        operationId: 'uploadImages',
        summary:
          'Upload one or many images (parts named "files", optional field "prefix"); they are ingested like a drop. A file that is not a usable image is refused with its reason and the others are stored; 415 only when every file is refused.',
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                properties: {
                  files: { type: 'array', items: { type: 'string', contentMediaType: 'image/*' } },
                  prefix: { type: 'string' },
                },
                required: ['files'],
              },
            },
          },
        },
        responses: {
          ...ok(
            201,
            'The good files stored under these keys; the refused ones listed with their reasons.',
            'Upload',
          ),
          ...errors(400, 413, 415),
        },
      },
      delete: {
        operationId: 'deleteAll',
        summary:
          'Delete every vector and catalogue entry (and the images with deleteObjects=true). Needs confirm=true.',
        parameters: queryParameters(deleteAllQuery),
        responses: {
          ...ok(
            202,
            'Search and count are empty; the cleanup runs in the background (GET /progress).',
            'DeletedAll',
          ),
          ...errors(400),
        },
      },
    },
    '/uploads': {
      post: {
        operationId: 'uploadTargets',
        summary: 'Where to PUT each file (cloud: presigned S3 PUT; embedded: PUT /images/{key}).',
        requestBody: { required: true, content: jsonBody('UploadsRequest') },
        responses: { ...ok(200, 'One target per file.', 'Uploads'), ...errors(400) },
      },
    },
    '/search': {
      post: {
        operationId: 'search',
        summary:
          'Images most like the query image (raw body, multipart part "image", or {"key"} of an indexed image), best first; score is cosine similarity in [-1, 1].',
        parameters: queryParameters(searchQuery),
        requestBody: imageBody('The query image, or the key of an indexed image for "more like this".'),
        responses: {
          ...ok(200, 'Results, best first, and the time spent.', 'SearchResponse'),
          ...errors(400, 404, 409, 413, 415),
        },
      },
    },
    '/images/{key}': {
      get: {
        operationId: 'getImage',
        summary: 'The image itself.',
        parameters: [keyParameter],
        responses: { ...imageResponse('The image bytes.', 'image/*'), ...errors(400, 404) },
      },
      delete: {
        operationId: 'deleteImage',
        summary: 'Delete one image: its vector, catalogue entry and (unless keepObject=true) the file.',
        parameters: [keyParameter, ...queryParameters(deleteOneQuery)],
        responses: { ...ok(200, 'Deleted.', 'DeletedOne'), ...errors(400, 404) },
      },
      ...(mode === 'embedded' && {
        put: {
          operationId: 'putImage',
          summary: 'Store the raw body under this key (the embedded upload target); ingested like a drop.',
          parameters: [keyParameter],
          requestBody: {
            required: true,
            content: { 'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } } },
          },
          responses: { ...ok(201, 'Stored.', 'Upload'), ...errors(400, 413, 415) },
        },
      }),
    },
    '/duplicates': {
      get: {
        operationId: 'duplicates',
        summary:
          'Groups of near-duplicate images across the library (pairs at least `threshold` alike, linked), the most alike first, each with the copy to keep first.',
        parameters: queryParameters(duplicatesQuery),
        responses: { ...ok(200, 'One page of groups.', 'Duplicates'), ...errors(400) },
      },
    },
    '/duplicates/dismissals': {
      post: {
        operationId: 'dismissDuplicates',
        summary: '"Not duplicates": these images are never grouped with each other again.',
        requestBody: { required: true, content: jsonBody('DismissDuplicates') },
        responses: { 204: { description: 'Remembered.' }, ...errors(400) },
      },
    },
    '/duplicates/scan': {
      post: {
        operationId: 'scanDuplicates',
        summary:
          'Cloud: find the duplicates in the background (a worker task); GET /duplicates shows its groups once it finishes. Embedded mode needs no scan (400).',
        parameters: queryParameters(scanDuplicatesQuery),
        responses: { ...ok(202, 'Started.', 'Task'), ...errors(400) },
      },
    },
    '/thumbnails/{key}': {
      get: {
        operationId: 'getThumbnail',
        summary: 'A small WebP of the image, made once at ingest.',
        parameters: [keyParameter],
        responses: { ...imageResponse('The thumbnail.', 'image/webp'), ...errors(400, 404) },
      },
    },
  };
  const used = new Set(
    [...JSON.stringify(paths).matchAll(/#\/components\/schemas\/(\w+)/g)].map((m) => m[1]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'pic-search',
      version: '0.1.0',
      description: `Search by image (${mode} mode). Errors are JSON {"error", "message"} with the HTTP status.`,
    },
    // Relative to where this document is served (GET /openapi.json): the same API in both modes.
    servers: [
      { url: '/', description: mode === 'cloud' ? "The stack's ApiUrl." : 'The running `npm start`.' },
    ],
    security: mode === 'cloud' ? [{ bearerToken: [] }] : [],
    paths,
    components: {
      ...(mode === 'cloud' && {
        securitySchemes: {
          bearerToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'The API token kept in Secrets Manager (stack output ApiTokenSecretArn).',
          },
        },
      }),
      // Only what this mode's operations use (embedded-only routes bring their own schemas).
      schemas: Object.fromEntries(
        [
          ...Object.entries(requestComponents).map(([name, s]) => [name, jsonSchema(s, 'input')] as const),
          ...Object.entries(responseComponents).map(([name, s]) => [name, jsonSchema(s)] as const),
        ].filter(([name]) => used.has(name)),
      ),
    },
  };
}
