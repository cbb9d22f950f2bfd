import { AsyncLocalStorage } from 'node:async_hooks';
import { z } from 'zod';
import { AppError, TooBusyError } from '../domain/errors.ts';
import { describeIssues } from './issues.ts';
import { parseQuery } from './request.ts';
import { noQuery } from './schemas.ts';
import type { HttpEvent, HttpHandler, HttpResult } from './types.ts';

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(body),
  };
}

export function binary(body: Buffer, contentType: string, cacheControl: string): HttpResult {
  return {
    statusCode: 200,
    headers: {
      'content-type': contentType,
      'cache-control': cacheControl,
      'content-length': String(body.length),
    },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

export function redirect(location: string): HttpResult {
  return { statusCode: 302, headers: { location, 'cache-control': 'no-store' } };
}

type UnexpectedErrorLog = (error: unknown) => void;
const unexpectedErrorLog = new AsyncLocalStorage<UnexpectedErrorLog>();

/**
 * Runs a request with its own log for unexpected errors (the Lambda wrapper's logger, which carries the
 * request id); outside one, they go to stderr.
 */
export function withUnexpectedErrorLog<T>(log: UnexpectedErrorLog, run: () => T): T {
  return unexpectedErrorLog.run(log, run);
}

/** The one place where errors become responses: named errors keep their status and code. */
export function errorResult(error: unknown): HttpResult {
  if (error instanceof TooBusyError) {
    const retryAfter = String(error.retryAfterSeconds);
    return json(error.status, { error: error.code, message: error.message }, { 'retry-after': retryAfter });
  }
  if (error instanceof AppError) return json(error.status, { error: error.code, message: error.message });
  if (error instanceof z.ZodError) return json(400, { error: 'bad_request', message: describeIssues(error) });
  // Unexpected: the details go to the log, not to the caller.
  (unexpectedErrorLog.getStore() ?? console.error)(error);
  return json(500, { error: 'internal', message: 'Unexpected error; the service log has the details.' });
}

/**
 * Wraps a handler body: the query string is parsed with the route's schema (none given: the route takes
 * no parameters, and any is refused) and every thrown error becomes a JSON error response.
 */
export function handler(body: (event: HttpEvent) => Promise<HttpResult>): HttpHandler;
export function handler<Q extends z.ZodObject>(
  body: (event: HttpEvent, query: z.output<Q>) => Promise<HttpResult>,
  querySchema: Q,
): HttpHandler;
export function handler(
  body: (event: HttpEvent, query: unknown) => Promise<HttpResult>,
  querySchema: z.ZodObject = noQuery,
): HttpHandler {
  return async (event) => {
    try {
      return await body(event, parseQuery(querySchema, event));
    } catch (error) {
      return errorResult(error);
    }
  };
}
