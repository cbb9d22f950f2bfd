/**
 * The local HTTP server of embedded mode: a small adapter that turns node:http requests into API Gateway
 * HTTP API (payload v2) events for the same router and handlers Lambda runs, and serves the web page.
 * node:http rather than a framework: the router already does the routing, so all that is left is body
 * streaming with size caps, static files, and what API Gateway and the authorizer do in the cloud: the
 * bearer token, plus the checks a service on the user's own machine needs against web pages the user
 * visits (Host against DNS rebinding, Origin against cross-site requests). docs/security.md says why.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { extname, join, sep } from 'node:path';
import { tokenMatches } from '../src/http/bearer-token.ts';
import { multipartLimitCheck } from '../src/http/multipart.ts';
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
  /** Bearer token every API request must carry; required unless `host` is a loopback address. */
  apiToken?: string | undefined;
  /** @default DEFAULT_TIMEOUTS */
  timeouts?: ServerTimeouts;
}

/** Slow or silent clients must not hold connections forever. */
export interface ServerTimeouts {
  /** To receive the request line and headers. */
  headersMs: number;
  /** To receive the whole request, body included (a large upload over a slow link). */
  requestMs: number;
  /** A connection with nothing to read or write is closed after this. */
  idleMs: number;
  /** A kept-alive connection waits this long for the next request. */
  keepAliveMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  headersMs: 20_000,
  requestMs: 300_000,
  idleMs: 60_000,
  keepAliveMs: 5_000,
};

/**
 * The page's Content-Security-Policy: its own scripts, styles and API only (the built page has no inline
 * script or style element), images from itself or blobs (protected images, query previews), no plugins,
 * no framing, no <base> tricks.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface LocalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Why a body was refused while it streamed in. */
class BodyRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

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

/** On every response: browsers must not second-guess a content type (an image key holding HTML). */
const COMMON_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

/** Loopback: only this machine can connect, so the token may be left out. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  if (!isLoopback(options.host) && !options.apiToken) {
    throw new InsecureBindError(
      `Refusing to listen on ${options.host} without a token: anyone who can reach it could read and delete the library. ` +
        'Set PIC_API_TOKEN (16 characters or more), or listen on 127.0.0.1.',
    );
  }
  const webConfig: WebConfig = options.webConfig ?? {
    apiUrl: '',
    mode: 'embedded',
    auth: options.apiToken ? { kind: 'bearer' } : { kind: 'none' },
  };
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const server = createServer(
    // Node checks the header and request timeouts on this interval (30 s by default).
    { connectionsCheckingInterval: Math.min(timeouts.headersMs, 30_000) / 2 },
    (request, response) => {
      for (const [name, value] of Object.entries(COMMON_HEADERS)) response.setHeader(name, value);
      serve(request, response, options, webConfig).catch((error: unknown) => {
        // A client that hung up or timed out mid-body is no fault of ours: nothing to answer or log.
        if (request.destroyed) return void response.destroy();
        console.error(error);
        if (!response.headersSent)
          sendJson(response, 500, { error: 'internal', message: 'Unexpected error.' });
        else response.destroy();
      });
    },
  );
  // Clients that ask first (Expect: 100-continue, as curl does for large bodies) never send an oversized body.
  server.on('checkContinue', (request, response) => {
    const type = String(request.headers['content-type'] ?? '').toLowerCase();
    const limit = bodyLimit(options.limits, type);
    if (Number(request.headers['content-length']) > limit) return sendTooLarge(response, limit);
    response.writeContinue();
    server.emit('request', request, response);
  });
  server.headersTimeout = timeouts.headersMs;
  server.requestTimeout = timeouts.requestMs;
  server.keepAliveTimeout = timeouts.keepAliveMs;
  server.setTimeout(timeouts.idleMs, (socket) => socket.destroy());
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

/** Listening beyond loopback without a token. */
export class InsecureBindError extends Error {}

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

  const refusal = crossSiteRefusal(request, options.host);
  if (refusal) return sendJson(response, 403, { error: 'forbidden', message: refusal });
  if (routeMethod === 'GET' && rawPath === '/config.json') return sendJson(response, 200, webConfig);
  if (routeMethod === 'GET' && !isApiPath(options.router, rawPath)) {
    return serveStatic(response, options.webRoot, rawPath, method === 'HEAD');
  }
  if (options.apiToken && !tokenMatches(request.headers.authorization, options.apiToken)) {
    response.setHeader('www-authenticate', 'Bearer');
    return sendJson(response, 401, {
      error: 'unauthorized',
      message: 'Send the API token (PIC_API_TOKEN) as "Authorization: Bearer <token>".',
    });
  }

  const contentType = String(request.headers['content-type'] ?? '').toLowerCase();
  let body: Buffer;
  try {
    body = await readBody(request, contentType, options.limits);
  } catch (error) {
    if (!(error instanceof BodyRefused)) throw error;
    // No `Connection: close`: Node would close the socket as soon as the answer is out, while the client
    // may still be sending, and the reset would throw the answer away unread (readBody drains the rest).
    return sendJson(response, error.status, { error: error.code, message: error.message });
  }
  const isText = TEXT_TYPES.test(contentType);
  const event = toEvent(request, routeMethod, rawPath, rawQueryString, body, isText);
  const result = await options.router.handle(event);
  writeResult(response, result, method === 'HEAD');
}

/**
 * Why a request must be refused as cross-site, or undefined. The Host must name this server (a page on
 * another site that rebinds its DNS name to 127.0.0.1 sends its own name), and an Origin, when a browser
 * sends one, must be this server itself: a hostile page's form posts and text/plain fetches carry its
 * own origin. A server bound to all interfaces cannot know its names; its token is the guard there.
 */
function crossSiteRefusal(request: IncomingMessage, boundHost: string): string | undefined {
  const host = String(request.headers.host ?? '');
  if (!isWildcard(boundHost) && !namesOf(boundHost).has(hostnameOf(host))) {
    return `The Host header "${host}" does not name this server; use ${[...namesOf(boundHost)].join(' or ')}.`;
  }
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) {
    return `Cross-site requests are refused: the origin ${origin} is not this server (http://${host}).`;
  }
  return undefined;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** The names a client may use for a server bound to `host`, as they appear in a Host header. */
function namesOf(host: string): Set<string> {
  const bracketed = isIP(host) === 6 ? `[${host}]` : host;
  return isLoopback(host) ? new Set(['localhost', '127.0.0.1', '[::1]', bracketed]) : new Set([bracketed]);
}

/** "127.0.0.1:8080" → "127.0.0.1", "[::1]:8080" → "[::1]", lower case. */
function hostnameOf(host: string): string {
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return (name ?? '').toLowerCase();
}

/** Multipart uploads may carry many images; any other body is at most one image (or a small JSON). */
function bodyLimit(limits: HttpLimits, contentType: string): number {
  return contentType.startsWith('multipart/') ? limits.maxRequestBytes : limits.maxImageBytes;
}

/** API paths get JSON answers (404/405) from the router; only the page's own files are served as such. */
function isApiPath(router: Router, rawPath: string): boolean {
  const first = rawPath.split('/')[1] ?? '';
  return router.routeKeys.some((key) => key.split(' ')[1]?.split('/')[1] === first);
}

/**
 * Reads the body, refusing it as soon as it breaks a limit: the request's (Content-Length, or bytes
 * counted while streaming) and, for multipart, the per-file size and the file count, checked as the
 * parts stream in. A refused body's bytes are dropped at once, and the rest is read and discarded while the
 * client keeps sending, so it gets to read the answer, sent at once: cutting the connection while it still
 * sends makes the kernel answer with a reset, which throws away the answer unread. A client that does not
 * finish is cut once it has gone quiet for LINGER_QUIET_MS, or after LINGER_MAX_MS in all.
 */
function readBody(request: IncomingMessage, contentType: string, limits: HttpLimits): Promise<Buffer> {
  const limit = bodyLimit(limits, contentType);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    let quiet: NodeJS.Timeout | undefined;
    let lingerCap: NodeJS.Timeout | undefined;
    const refuse = (error: BodyRefused) => {
      if (refused) return;
      refused = true;
      chunks.length = 0;
      quiet = setTimeout(() => request.destroy(), LINGER_QUIET_MS).unref();
      lingerCap = setTimeout(() => request.destroy(), LINGER_MAX_MS).unref();
      reject(error);
    };
    const tooLarge = () =>
      refuse(new BodyRefused(413, 'payload_too_large', `The body is over the limit of ${limit} bytes.`));
    const fromPartCheck = (error: Error & { status?: number; code?: string }) =>
      refuse(new BodyRefused(error.status ?? 400, error.code ?? 'bad_request', error.message));
    let parts: ReturnType<typeof multipartLimitCheck> | undefined;
    if (contentType.startsWith('multipart/')) {
      try {
        parts = multipartLimitCheck(
          contentType,
          { maxFileBytes: limits.maxImageBytes, maxFiles: limits.maxFiles },
          fromPartCheck,
        );
      } catch (error) {
        fromPartCheck(error as Error);
      }
    }
    if (Number(request.headers['content-length']) > limit) tooLarge();
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (refused) return void quiet?.refresh();
      if (size > limit) return tooLarge();
      chunks.push(chunk);
      parts?.write(chunk);
    });
    request.on('end', () => {
      clearTimeout(quiet);
      clearTimeout(lingerCap);
      parts?.end();
      // The parser reports a limit synchronously from write/end, so `refused` is settled here.
      if (!refused) resolve(Buffer.concat(chunks));
    });
    request.on('error', reject);
  });
}

/** A refused body is read and discarded until the client is quiet this long, or LINGER_MAX_MS have passed. */
const LINGER_QUIET_MS = 2000;
const LINGER_MAX_MS = 30_000;

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

/** The page at "/" (or "/index.html") and the files of its build; any other path is a 404 JSON. */
async function serveStatic(
  response: ServerResponse,
  webRoot: string,
  rawPath: string,
  headOnly: boolean,
): Promise<void> {
  const isPage = rawPath === '/' || rawPath === '/index.html';
  const notFound = () =>
    sendJson(response, 404, {
      error: 'not_found',
      message: `Nothing at ${rawPath}: the page is at /, the API is described at /openapi.json.`,
    });
  const root = await realpath(webRoot).catch(() => undefined);
  if (!root) return isPage ? sendHtml(response, 200, NOT_BUILT_PAGE) : notFound();
  let relative: string;
  try {
    relative = isPage ? 'index.html' : decodeURIComponent(rawPath);
  } catch {
    return sendJson(response, 400, {
      error: 'bad_request',
      message: 'The path is not valid percent-encoding.',
    });
  }
  // Only files that really live under the web root.
  const found = await realpath(join(root, relative)).catch(() => undefined);
  const file = found?.startsWith(root + sep) ? found : undefined;
  const info = file === undefined ? undefined : await stat(file).catch(() => undefined);
  if (file === undefined || !info?.isFile()) {
    return isPage ? sendHtml(response, 200, NOT_BUILT_PAGE) : notFound();
  }
  const { size } = info;
  const type = STATIC_TYPES[extname(file)] ?? 'application/octet-stream';
  // Vite fingerprints asset names, so they can be cached for long; the page itself never.
  const cache = file.includes(`${sep}assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache';
  response.writeHead(200, {
    'content-type': type,
    'content-length': size,
    'cache-control': cache,
    ...(type.startsWith('text/html') ? { 'content-security-policy': PAGE_CSP } : {}),
  });
  if (headOnly) return void response.end();
  createReadStream(file).pipe(response);
}

function sendHtml(response: ServerResponse, status: number, html: string): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'content-security-policy': PAGE_CSP,
  });
  response.end(html);
}

const NOT_BUILT_PAGE = `<!doctype html><meta charset="utf-8"><title>pic-search</title>
<h1>pic-search is running</h1>
<p>The web page is not built yet. Build it with <code>npx tsx web/ensure-built.ts</code> and reload.
The API is here already: <a href="/openapi.json">/openapi.json</a>, <a href="/health">/health</a>.</p>`;
