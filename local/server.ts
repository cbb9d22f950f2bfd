/**
 * The local HTTP server of embedded mode: a small adapter that turns node:http requests into API Gateway
 * HTTP API (payload v2) events for the same router and handlers Lambda runs, and serves the web page.
 * node:http rather than a framework: the router already does the routing, so all that is left is body
 * streaming with a size cap and static files.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, sep } from 'node:path';
import type { Router } from '../src/http/router.ts';
import type { HttpEvent, HttpLimits, HttpResult } from '../src/http/types.ts';

export interface WebConfig {
  apiUrl: string;
  mode: 'embedded' | 'cloud';
  auth: { kind: 'none' } | { kind: 'bearer' };
}

export interface LocalServerOptions {
  router: Router;
  limits: HttpLimits;
  /** Built web page (web/dist); a page saying how to build it is served when it is missing. */
  webRoot: string;
  webConfig?: WebConfig;
  port: number;
  host: string;
}

export interface LocalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

class BodyTooLarge extends Error {}

/** Bodies passed as text, as API Gateway does; anything else (curl's default form type included) is base64. */
const TEXT_TYPES = /^(text\/|application\/json\b)/;

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
};

export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const webConfig = options.webConfig ?? { apiUrl: '', mode: 'embedded', auth: { kind: 'none' } };
  const server = createServer((request, response) => {
    serve(request, response, options, webConfig).catch((error: unknown) => {
      console.error(error);
      if (!response.headersSent) sendJson(response, 500, { error: 'internal', message: 'Unexpected error.' });
      else response.destroy();
    });
  });
  // Clients that ask first (Expect: 100-continue, as curl does for large bodies) never send an oversized body.
  server.on('checkContinue', (request, response) => {
    const type = String(request.headers['content-type'] ?? '').toLowerCase();
    const limit = bodyLimit(options.limits, type);
    if (Number(request.headers['content-length']) > limit) return sendTooLarge(response, limit);
    response.writeContinue();
    server.emit('request', request, response);
  });
  // Uploads of many large images over a slow link must not be cut off by the default 5-minute timeout.
  server.requestTimeout = 0;
  // Inference runs on the main thread and can hold it for seconds on a busy machine; a short keep-alive
  // timeout would then fire just as a client reuses its idle connection and reset it (ECONNRESET).
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  options: LocalServerOptions,
  webConfig: WebConfig,
): Promise<void> {
  const method = request.method ?? 'GET';
  const target = request.url ?? '/';
  const queryAt = target.indexOf('?');
  const rawPath = queryAt < 0 ? target : target.slice(0, queryAt);
  const rawQueryString = queryAt < 0 ? '' : target.slice(queryAt + 1);
  // HEAD is answered as GET without the body, as API Gateway does for GET routes.
  const routeMethod = method === 'HEAD' ? 'GET' : method;

  if (routeMethod === 'GET' && rawPath === '/config.json') return sendJson(response, 200, webConfig);
  if (routeMethod === 'GET' && !isApiPath(options.router, rawPath)) {
    return serveStatic(response, options.webRoot, rawPath, method === 'HEAD');
  }

  const contentType = String(request.headers['content-type'] ?? '').toLowerCase();
  const limit = bodyLimit(options.limits, contentType);
  let body: Buffer;
  try {
    body = await readBody(request, limit);
  } catch (error) {
    if (!(error instanceof BodyTooLarge)) throw error;
    return sendTooLarge(response, limit);
  }
  const isText = TEXT_TYPES.test(contentType);
  const event = toEvent(request, routeMethod, rawPath, rawQueryString, body, isText);
  const result = await options.router.handle(event);
  writeResult(response, result, method === 'HEAD');
}

/** Multipart uploads may carry many images; any other body is at most one image (or a small JSON). */
function bodyLimit(limits: HttpLimits, contentType: string): number {
  return contentType.startsWith('multipart/') ? limits.maxRequestBytes : limits.maxImageBytes;
}

/** API paths get JSON answers (404/405) from the router; everything else GET is the web page. */
function isApiPath(router: Router, rawPath: string): boolean {
  const first = rawPath.split('/')[1] ?? '';
  return router.routeKeys.some((key) => key.split(' ')[1]?.split('/')[1] === first);
}

/**
 * Reads the body, refusing it as soon as it passes `limit` (by Content-Length, or while streaming). The
 * rest of an oversized body is drained, up to a bound, so the client gets to read the 413 instead of a
 * reset connection; past the bound the connection is dropped.
 */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = () => {
      refused = true;
      chunks.length = 0;
      reject(new BodyTooLarge());
    };
    if (Number(request.headers['content-length']) > limit) refuse();
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (refused) {
        if (size > limit + DRAIN_BYTES) request.destroy();
        return;
      }
      if (size > limit) return refuse();
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

const DRAIN_BYTES = 64 * 1024 * 1024;

function sendTooLarge(response: ServerResponse, limit: number): void {
  response.setHeader('connection', 'close');
  sendJson(response, 413, {
    error: 'payload_too_large',
    message: `The body is over the limit of ${limit} bytes.`,
  });
}

function toEvent(
  request: IncomingMessage,
  method: string,
  rawPath: string,
  rawQueryString: string,
  body: Buffer,
  isText: boolean,
): HttpEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  // API Gateway joins repeated query parameters with commas.
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(rawQueryString)) {
    query[name] = name in query ? `${query[name]},${value}` : value;
  }
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    queryStringParameters: Object.keys(query).length > 0 ? query : undefined,
    body: body.length === 0 ? undefined : body.toString(isText ? 'utf8' : 'base64'),
    isBase64Encoded: body.length > 0 && !isText,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: String(request.headers.host ?? 'localhost'),
      domainPrefix: 'local',
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '',
        userAgent: String(request.headers['user-agent'] ?? ''),
      },
      requestId: crypto.randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
  };
}

function writeResult(response: ServerResponse, result: HttpResult, headOnly: boolean): void {
  const body =
    result.body === undefined
      ? undefined
      : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  response.statusCode = result.statusCode ?? 200;
  for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(name, String(value));
  if (body) response.setHeader('content-length', body.length);
  response.end(headOnly ? undefined : body);
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

async function serveStatic(
  response: ServerResponse,
  webRoot: string,
  rawPath: string,
  headOnly: boolean,
): Promise<void> {
  const root = await realpath(webRoot).catch(() => undefined);
  if (!root) return sendHtml(response, 200, NOT_BUILT_PAGE);
  let relative: string;
  try {
    relative = decodeURIComponent(rawPath);
  } catch {
    return sendJson(response, 400, {
      error: 'bad_request',
      message: 'The path is not valid percent-encoding.',
    });
  }
  // Only files that really live under the web root; anything else falls back to the page itself.
  const candidate = await realpath(join(root, relative)).catch(() => undefined);
  const inside = candidate !== undefined && (candidate === root || candidate.startsWith(root + sep));
  const info = inside ? await stat(candidate).catch(() => undefined) : undefined;
  const file = info?.isFile() ? (candidate as string) : join(root, 'index.html');
  const type = STATIC_TYPES[extname(file)] ?? 'application/octet-stream';
  const size = (await stat(file).catch(() => undefined))?.size;
  if (size === undefined) return sendHtml(response, 200, NOT_BUILT_PAGE);
  // Vite fingerprints asset names, so they can be cached for long; the page itself never.
  const cache = file.includes(`${sep}assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache';
  response.writeHead(200, { 'content-type': type, 'content-length': size, 'cache-control': cache });
  if (headOnly) return void response.end();
  createReadStream(file).pipe(response);
}

function sendHtml(response: ServerResponse, status: number, html: string): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
  });
  response.end(html);
}

const NOT_BUILT_PAGE = `<!doctype html><meta charset="utf-8"><title>pic-search</title>
<h1>pic-search is running</h1>
<p>The web page is not built yet. Build it with <code>npx tsx web/ensure-built.ts</code> and reload.
The API is here already: <a href="/openapi.json">/openapi.json</a>, <a href="/health">/health</a>.</p>`;
