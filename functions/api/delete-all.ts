import { makeDeleteAllHandler } from '../../src/http/handlers/images.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

/** DELETE /images?confirm=true[&deleteObjects=true] */
export const handler = makeDeleteAllHandler(await cloudOperations());
