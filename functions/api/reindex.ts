import { makeReindexHandler } from '../../src/http/handlers/status.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { reindexOperations } from '../../src/wiring/lambda.ts';

/** POST /reindex: starts a re-index the worker runs (src/app/reindex.ts). */
export const handler = lambdaHandler('reindex', makeReindexHandler(await reindexOperations()));
