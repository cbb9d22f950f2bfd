import type { z } from 'zod';
import { validKey } from '../app/keys.ts';
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from '../domain/errors.ts';
import { describeIssues, plainWords } from './issues.ts';
import type { HttpEvent } from './types.ts';

/** Header lookup that does not depend on the caller having lowercased the names (API Gateway does). */
export function header(event: HttpEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}

/** `image/jpeg; charset=…` → `image/jpeg`; '' when absent. */
export function mediaType(event: HttpEvent): string {
  return (header(event, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** The raw body bytes, whether API Gateway sent them base64 (binary) or as text. */
export function bodyBytes(event: HttpEvent, maxBytes: number): Buffer {
  if (event.body === undefined || event.body === null) return Buffer.alloc(0);
  const body = Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  if (body.length > maxBytes) {
    throw new PayloadTooLargeError(`The body is ${body.length} bytes; the limit is ${maxBytes} bytes.`);
  }
  return body;
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value, { error: plainWords });
  if (!result.success) throw new ValidationError(`Invalid ${what}: ${describeIssues(result.error)}`);
  return result.data;
}

/**
 * The query string checked against the route's schema. A parameter the route does not take is refused
 * (a misspelt `top_k=3` must not silently search with the default), naming what the route does take.
 */
export function parseQuery<S extends z.ZodObject>(schema: S, event: HttpEvent): z.output<S> {
  const query = event.queryStringParameters ?? {};
  const known = Object.keys(schema.shape);
  const unknown = Object.keys(query).filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    const [first = ''] = unknown;
    const guess = known.find((name) => comparable(name) === comparable(first));
    const takes = known.length > 0 ? `it takes ${known.join(', ')}` : 'it takes none';
    throw new ValidationError(
      `Unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}` +
        `${guess ? ` (did you mean "${guess}"?)` : ''}; ${takes}.`,
    );
  }
  return parseWith(schema, query, 'query');
}

/** top_k, top-k and TOPK all read as topK. */
const comparable = (name: string) => name.replace(/[-_]/g, '').toLowerCase();

/**
 * The JSON body, checked against `schema`. Only `application/json` is taken: a browser sends text/plain
 * or a form cross-site without asking first (no CORS preflight), so a JSON route that parsed those would
 * be a route any web page could drive.
 */
export function parseJsonBody<S extends z.ZodType>(
  schema: S,
  event: HttpEvent,
  maxBytes: number,
): z.output<S> {
  const type = mediaType(event);
  if (type !== 'application/json') {
    throw new UnsupportedMediaTypeError(
      `Send the body as application/json${type ? `, not ${type}` : ' (the Content-Type header is missing)'}.`,
    );
  }
  const text = bodyBytes(event, maxBytes).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(`The body is not valid JSON: ${(error as Error).message}`);
  }
  return parseWith(schema, value, 'body');
}

/**
 * The `{key+}` path parameter. API Gateway HTTP APIs hand it over already URL-decoded; the local server
 * does the same, so the key here is the object key itself.
 */
export function pathKey(event: HttpEvent): string {
  const key = event.pathParameters?.key;
  if (!key) throw new ValidationError('The path must name an image key, e.g. /images/photos/cat.jpg.');
  return validKey(key);
}
