import { makeDeleteImageHandler } from '../../src/http/handlers/images.ts';
import { deleteOperations } from '../../src/wiring/lambda.ts';

/** DELETE /images/{key+} */
export const handler = makeDeleteImageHandler(await deleteOperations('delete-image'));
