import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { errorResult, withUnexpectedErrorLog } from '../http/response.ts';
import type { HttpEvent, HttpHandler, HttpResult } from '../http/types.ts';
import type { LambdaName } from '../wiring/lambda-parts.ts';
import { countUnexpectedError, createMetrics } from './metrics.ts';

export type LambdaHttpHandler = (event: HttpEvent, context: Context) => Promise<HttpResult>;

/**
 * The one wrapper of every API function (functions/api/*.ts): a Powertools Logger named after the
 * function logs one line per request and every unexpected error, each with the Lambda request id; such
 * errors answer 500 and count as the `UnexpectedErrors` metric. Level: POWERTOOLS_LOG_LEVEL (INFO).
 */
export function lambdaHandler(service: LambdaName, handle: HttpHandler): LambdaHttpHandler {
  const logger = new Logger({ serviceName: service });
  const metrics = createMetrics(service);
  const logUnexpected = (error: unknown) => {
    logger.error('unexpected error', error instanceof Error ? error : new Error(String(error)));
    countUnexpectedError(metrics);
  };
  return async (event, context) => {
    logger.addContext(context);
    try {
      const result = await withUnexpectedErrorLog(logUnexpected, async () => {
        try {
          return await handle(event);
        } catch (error) {
          return errorResult(error);
        }
      });
      logger.info('request', { route: event.routeKey, status: result.statusCode });
      return result;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}
