import { makeDeleteAllHandler } from '../../src/http/handlers/images.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { deleteAllOperations } from '../../src/wiring/lambda.ts';

/** DELETE /images?confirm=true[&deleteObjects=true]: 202; the worker cleans up in the background. */
export const handler = lambdaHandler('delete-all', makeDeleteAllHandler(await deleteAllOperations()));
