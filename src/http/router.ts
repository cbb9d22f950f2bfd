import type { Duplicates } from '../app/duplicates.ts';
import type { Operations } from '../app/operations.ts';
import { ServiceUnavailableError, ValidationError } from '../domain/errors.ts';
import {
  makeDismissDuplicatesHandler,
  makeDuplicatesHandler,
  makeScanDuplicatesHandler,
} from './handlers/duplicates.ts';
import {
  type ImageVariant,
  makeDeleteAllHandler,
  makeDeleteImageHandler,
  makeGetImageHandler,
  makePutImageHandler,
  makeUploadImagesHandler,
} from './handlers/images.ts';
import { type IngestFolder, makeIngestHandler, makeUploadsHandler } from './handlers/ingest.ts';
import { makeSearchHandler } from './handlers/search.ts';
import {
  makeCountHandler,
  makeHealthHandler,
  makeProgressHandler,
  makeReindexHandler,
  makeVerifyHandler,
} from './handlers/status.ts';
import { openApiDocument } from './openapi.ts';
import { errorResult, handler, json } from './response.ts';
import {
  DEFAULT_HTTP_LIMITS,
  type HttpEvent,
  type HttpHandler,
  type HttpLimits,
  type HttpResult,
} from './types.ts';

export type Mode = 'embedded' | 'cloud';

export interface RouterOptions {
  mode: Mode;
  limits?: HttpLimits;
  /** Embedded mode: POST /ingest {path}. */
  ingestFolder?: IngestFolder;
  /** Cloud mode: images and thumbnails are 302s to these links. */
  linkFor?: (key: string, variant: ImageVariant) => Promise<string>;
  /** The duplicates finder behind /duplicates. */
  duplicates?: Duplicates;
}

export interface RouteMatch {
  /** API Gateway's route key, e.g. "GET /images/{key+}". */
  routeKey: string;
  pathParameters?: { key: string };
}

export interface Router {
  /** Every route key served, in API Gateway's notation. */
  readonly routeKeys: string[];
  match(method: string, rawPath: string): RouteMatch | undefined;
  /** Matches the event's method and raw path, fills routeKey and pathParameters, and runs the handler. */
  handle(event: HttpEvent): Promise<HttpResult>;
}

interface RouteContext extends RouterOptions {
  operations: Operations;
  limits: HttpLimits;
}

/** The route table, in API Gateway's route-key notation; infra gives API Gateway the same keys. */
const ROUTES: { key: string; embeddedOnly?: true; make: (c: RouteContext) => HttpHandler }[] = [
  { key: 'GET /health', make: (c) => makeHealthHandler(c.operations) },
  { key: 'GET /openapi.json', make: (c) => makeOpenApiHandler(c.mode) },
  { key: 'GET /count', make: (c) => makeCountHandler(c.operations) },
  { key: 'GET /progress', make: (c) => makeProgressHandler(c.operations) },
  { key: 'POST /ingest', make: (c) => makeIngestHandler(c.operations, c.ingestFolder) },
  { key: 'POST /images', make: (c) => makeUploadImagesHandler(c.operations, c.limits) },
  { key: 'POST /uploads', make: (c) => makeUploadsHandler(c.operations) },
  { key: 'POST /search', make: (c) => makeSearchHandler(c.operations, c.limits) },
  { key: 'GET /images/{key+}', make: (c) => makeGetImageHandler(c.operations, 'image', c.linkFor) },
  { key: 'GET /thumbnails/{key+}', make: (c) => makeGetImageHandler(c.operations, 'thumbnail', c.linkFor) },
  { key: 'PUT /images/{key+}', embeddedOnly: true, make: (c) => makePutImageHandler(c.operations, c.limits) },
  { key: 'DELETE /images/{key+}', make: (c) => makeDeleteImageHandler(c.operations) },
  { key: 'DELETE /images', make: (c) => makeDeleteAllHandler(c.operations) },
  { key: 'POST /verify', make: (c) => makeVerifyHandler(c.operations) },
  { key: 'POST /reindex', make: (c) => makeReindexHandler(c.operations) },
  { key: 'GET /duplicates', make: (c) => makeDuplicatesHandler(requireDuplicates(c)) },
  { key: 'POST /duplicates/dismissals', make: (c) => makeDismissDuplicatesHandler(requireDuplicates(c)) },
  { key: 'POST /duplicates/scan', make: (c) => makeScanDuplicatesHandler(requireDuplicates(c)) },
];

/** A router built without the finder (a test of other routes) answers 503 on its routes. */
function requireDuplicates(c: RouteContext): Duplicates {
  const unavailable = async (): Promise<never> => {
    throw new ServiceUnavailableError('The duplicates finder is not set up in this service.');
  };
  return c.duplicates ?? { find: unavailable, dismiss: unavailable, scan: unavailable };
}

/** Route keys served in `mode`. */
export function routeKeysFor(mode: Mode): string[] {
  return ROUTES.filter((route) => mode === 'embedded' || !route.embeddedOnly).map((route) => route.key);
}

/** GET /openapi.json */
export function makeOpenApiHandler(mode: Mode): HttpHandler {
  const document = openApiDocument(mode);
  return handler(async () => json(200, document));
}

/** The router the local server (and tests) use: the same handlers as the Lambda entries. */
export function createRouter(operations: Operations, options: RouterOptions): Router {
  const context = { ...options, operations, limits: options.limits ?? DEFAULT_HTTP_LIMITS };
  const routes: Record<string, HttpHandler> = Object.fromEntries(
    ROUTES.filter((route) => routeKeysFor(options.mode).includes(route.key)).map((route) => [
      route.key,
      route.make(context),
    ]),
  );
  const routeKeys = Object.keys(routes);
  const match = (method: string, rawPath: string) => matchRoute(routeKeys, method, rawPath);
  return {
    routeKeys,
    match,
    async handle(event) {
      const { method } = event.requestContext.http;
      let found: RouteMatch | undefined;
      try {
        found = match(method, event.rawPath);
      } catch (error) {
        return errorResult(error);
      }
      if (!found) return unmatched(routeKeys, method, event.rawPath);
      const run = routes[found.routeKey] as HttpHandler;
      return run({ ...event, routeKey: found.routeKey, pathParameters: found.pathParameters });
    },
  };
}

/**
 * Matches a raw (percent-encoded) path against route keys. A greedy `{key+}` takes the rest of the path,
 * decoded segment by segment as API Gateway HTTP APIs hand it to Lambda.
 */
export function matchRoute(routeKeys: string[], method: string, rawPath: string): RouteMatch | undefined {
  for (const routeKey of routeKeys) {
    const [routeMethod, template = ''] = routeKey.split(' ');
    if (routeMethod !== method.toUpperCase()) continue;
    const greedy = template.indexOf('/{key+}');
    if (greedy < 0) {
      if (rawPath === template) return { routeKey };
      continue;
    }
    const base = `${template.slice(0, greedy)}/`;
    if (!rawPath.startsWith(base) || rawPath.length === base.length) continue;
    return { routeKey, pathParameters: { key: decodeSegments(rawPath.slice(base.length)) } };
  }
  return undefined;
}

function decodeSegments(encoded: string): string {
  try {
    return encoded.split('/').map(decodeURIComponent).join('/');
  } catch {
    throw new ValidationError(`The path is not valid percent-encoding: ${encoded}`);
  }
}

function unmatched(routeKeys: string[], method: string, rawPath: string): HttpResult {
  const allowed = ['GET', 'POST', 'PUT', 'DELETE'].filter((other) => matchRoute(routeKeys, other, rawPath));
  if (allowed.length > 0) {
    return json(
      405,
      {
        error: 'method_not_allowed',
        message: `${method} is not served on ${rawPath}; use ${allowed.join(', ')}.`,
      },
      { allow: allowed.join(', ') },
    );
  }
  return json(404, {
    error: 'not_found',
    message: `No route for ${method} ${rawPath}; see GET /openapi.json.`,
  });
}
