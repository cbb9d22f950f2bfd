import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import sharp from 'sharp';
import type { AwsClients } from '../../src/adapters/aws/clients.ts';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import { FIXTURES, SEEDED_MANIFEST } from '../../src/app/test-system.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { OnnxEmbedder } from '../../src/embedder/onnx-embedder.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import { loadManifest } from '../../src/model/manifest.ts';
import type { LambdaHttpHandler } from '../../src/observability/lambda-handler.ts';
import { type CloudSystem, createCloudSystem } from '../../src/wiring/cloud.ts';
import { lambdaContext } from '../lambda-context.ts';
import { type CloudStack, createCloudStack } from './support.ts';

export { REPO_ROOT } from '../../src/app/test-system.ts';

/** The first `count` fixture JPEGs, by name, so runs are repeatable. */
export function fixturePhotos(count: number): { name: string; path: string }[] {
  return readdirSync(FIXTURES)
    .filter((name) => name.endsWith('.jpg'))
    .sort()
    .slice(0, count)
    .map((name) => ({ name, path: join(FIXTURES, name) }));
}

/** A transformed copy as a user would search with: smaller, re-encoded at lower quality. */
export async function transformedCopy(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  const { width = 640 } = await sharp(bytes).metadata();
  return sharp(bytes)
    .resize(Math.round(width * 0.6))
    .jpeg({ quality: 70 })
    .toBuffer();
}

export function seededEmbedder(): Promise<Embedder> {
  return loadManifest(SEEDED_MANIFEST).then((loaded) => OnnxEmbedder.create(loaded, { batchSize: 4 }));
}

export interface RunningCloud {
  stack: CloudStack;
  embedder: Embedder;
  system: CloudSystem;
  /** Closes the system and the embedder and gives process.env back as it was before startCloud. */
  stop(): Promise<void>;
}

/**
 * A cloud stack on the emulators and its system with the worker running; the stack's variables are put in
 * process.env so that Lambda entries imported afterwards build against the same stack.
 */
export async function startCloud(
  clients: AwsClients,
  emulators: { awsEndpoint: string; milvusAddress: string },
): Promise<RunningCloud> {
  const envBefore = { ...process.env };
  const stack = await createCloudStack(clients, emulators);
  const embedder = await seededEmbedder();
  const system = await createCloudSystem(loadCloudConfig(stack.env), { embedder, waitMs: 1000 });
  system.worker.start();
  // The stack states the model's identity to the functions that never open it (infra/bindings.ts).
  Object.assign(process.env, stack.env, { PIC_MODEL_IDENTITY: JSON.stringify(embedder.info) });
  const stop = async () => {
    process.env = envBefore;
    await system.close();
    await embedder.close();
  };
  return { stack, embedder, system, stop };
}

/** A function entry point called as Lambda calls it, with a context (request ids `<prefix>-<name>`). */
export function invokedAsLambda(handler: LambdaHttpHandler, name: string, prefix: string): HttpHandler {
  return (event) => handler(event, lambdaContext(`pic-search-${name}`, `${prefix}-${name}`));
}

/** Polls `read` until `done` holds; the last value is returned either way, so the assertion shows it. */
export async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resume) => setTimeout(resume, 300));
    value = await read();
  }
  return value;
}

/** An API Gateway HTTP API (payload v2) request, as Lambda hands it to a handler. */
export function apiEvent(request: {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer | string;
  pathParameters?: Record<string, string>;
}): APIGatewayProxyEventV2 {
  const binary = Buffer.isBuffer(request.body);
  return {
    version: '2.0',
    routeKey: `${request.method} ${request.path}`,
    rawPath: request.path,
    rawQueryString: new URLSearchParams(request.query ?? {}).toString(),
    headers: request.headers ?? {},
    ...(request.query ? { queryStringParameters: request.query } : {}),
    ...(request.pathParameters ? { pathParameters: request.pathParameters } : {}),
    ...(request.body === undefined
      ? {}
      : { body: binary ? (request.body as Buffer).toString('base64') : (request.body as string) }),
    isBase64Encoded: binary,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.test',
      domainPrefix: 'api',
      requestId: 'request',
      routeKey: `${request.method} ${request.path}`,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      http: {
        method: request.method,
        path: request.path,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'test',
      },
    },
  };
}
