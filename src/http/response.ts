import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
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

/** The one place where errors become responses: named errors keep their status and code. */
export function errorResult(error: unknown): HttpResult {
  if (error instanceof AppError) return json(error.status, { error: error.code, message: error.message });
  if (error instanceof z.ZodError) return json(400, { error: 'bad_request', message: describeIssues(error) });
  // Unexpected: the details go to the log, not to the caller.
  console.error(error);
  return json(500, { error: 'internal', message: 'Unexpected error; the service log has the details.' });
}

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/** Wraps a handler body so that every thrown error becomes a JSON error response. */
export function handler(body: (event: HttpEvent) => Promise<HttpResult>): HttpHandler {
  return async (event) => {
    try {
      return await body(event);
    } catch (error) {
      return errorResult(error);
    }
  };
}
