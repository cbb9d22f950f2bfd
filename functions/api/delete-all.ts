import { makeDeleteAllHandler } from '../../src/http/handlers/images.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { deleteOperations } from '../../src/wiring/lambda.ts';

/** DELETE /images?confirm=true[&deleteObjects=true] */
export const handler = lambdaHandler(
  'delete-all',
  makeDeleteAllHandler(await deleteOperations('delete-all')),
);
