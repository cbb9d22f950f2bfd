import { makeProgressHandler } from '../../src/http/handlers/status.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

/** GET /progress?failures=20 */
export const handler = makeProgressHandler(await cloudOperations());
