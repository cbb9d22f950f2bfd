import { makeCountHandler } from '../../src/http/handlers/status.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { countOperations } from '../../src/wiring/lambda.ts';

/** GET /count */
export const handler = lambdaHandler('count', makeCountHandler(await countOperations()));
