import { makeDeleteImageHandler } from '../../src/http/handlers/images.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { deleteOperations } from '../../src/wiring/lambda.ts';

/** DELETE /images/{key+} */
export const handler = lambdaHandler(
  'delete-image',
  makeDeleteImageHandler(await deleteOperations('delete-image')),
);
