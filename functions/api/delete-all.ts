import { makeDeleteAllHandler } from '../../src/http/handlers/images.ts';
import { deleteOperations } from '../../src/wiring/lambda.ts';

/** DELETE /images?confirm=true[&deleteObjects=true] */
export const handler = makeDeleteAllHandler(await deleteOperations('delete-all'));
