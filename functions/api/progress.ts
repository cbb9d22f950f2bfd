import { makeProgressHandler } from '../../src/http/handlers/status.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { progressOperations } from '../../src/wiring/lambda.ts';

/** GET /progress?failures=20 */
export const handler = lambdaHandler('progress', makeProgressHandler(await progressOperations()));
