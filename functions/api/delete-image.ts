import { makeDeleteImageHandler } from '../../src/http/handlers/images.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

/** DELETE /images/{key+} */
export const handler = makeDeleteImageHandler(await cloudOperations());
