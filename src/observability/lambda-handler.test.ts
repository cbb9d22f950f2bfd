import { afterEach, describe, expect, it, vi } from 'vitest';
import { lambdaContext } from '../../test/lambda-context.ts';
import { makeProgressHandler } from '../http/handlers/status.ts';
import { makeOpenApiHandler } from '../http/router.ts';
import type { HttpEvent } from '../http/types.ts';
import { operationsOf } from '../wiring/lambda.ts';
import { lambdaHandler } from './lambda-handler.ts';

const context = lambdaContext('pic-search-progress', 'c6af9ac6-7b61-11e6-9a41-93e812345678');

function eventFor(routeKey: string): HttpEvent {
  const [method, rawPath] = routeKey.split(' ') as [string, string];
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    requestContext: { http: { method, path: rawPath } },
  } as unknown as HttpEvent;
}

/** The JSON lines a call prints (Powertools: logs and EMF on stdout, errors and warnings on stderr). */
async function printedLinesOf(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const printed: string[] = [];
  const capture = (chunk: unknown) => {
    printed.push(String(chunk));
    return true;
  };
  const writes = [
    vi.spyOn(process.stdout, 'write').mockImplementation(capture),
    vi.spyOn(process.stderr, 'write').mockImplementation(capture),
  ];
  try {
    await run();
  } finally {
    for (const write of writes) write.mockRestore();
  }
  return printed
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('lambdaHandler: Powertools logs and metrics around every API function', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it('logs each request with the Lambda request id and the function as its service', async () => {
    const handler = lambdaHandler('health', makeOpenApiHandler('cloud'));
    let status: number | undefined;
    const lines = await printedLinesOf(async () => {
      status = (await handler(eventFor('GET /openapi.json'), context)).statusCode;
    });
    expect(status).toBe(200);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'INFO',
        message: 'request',
        service: 'health',
        function_request_id: context.awsRequestId,
        route: 'GET /openapi.json',
        status: 200,
      }),
    ]);
  });

  it('drops the request lines at POWERTOOLS_LOG_LEVEL=WARN', async () => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'WARN');
    const handler = lambdaHandler('health', makeOpenApiHandler('cloud'));
    const lines = await printedLinesOf(() => handler(eventFor('GET /openapi.json'), context));
    expect(lines).toEqual([]);
  });

  it('answers an unexpected error with 500 and logs it with the request id, counting it as a metric', async () => {
    // A real wiring mistake: the progress handler over operations given no catalogue.
    const handler = lambdaHandler('progress', makeProgressHandler(operationsOf('progress', {})));
    let result: Awaited<ReturnType<typeof handler>> | undefined;
    const lines = await printedLinesOf(async () => {
      result = await handler(eventFor('GET /progress'), context);
    });
    expect(result?.statusCode).toBe(500);
    expect(JSON.parse(result?.body ?? '')).toEqual({
      error: 'internal',
      message: 'Unexpected error; the service log has the details.',
    });
    const error = lines.find((line) => line.level === 'ERROR');
    expect(error).toMatchObject({
      message: 'unexpected error',
      service: 'progress',
      function_request_id: context.awsRequestId,
      error: {
        name: 'Error',
        message: expect.stringMatching(/the progress function has no catalogue table/),
      },
    });
    const emf = lines.find((line) => '_aws' in line);
    expect(emf).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'PicSearch', Dimensions: [['service']] }] },
      service: 'progress',
      UnexpectedErrors: 1,
    });
    expect(lines.find((line) => line.message === 'request')).toMatchObject({
      function_request_id: context.awsRequestId,
      status: 500,
    });
  });
});
