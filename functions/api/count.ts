import { makeCountHandler } from '../../src/http/handlers/status.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

/** GET /count */
export const handler = makeCountHandler(await cloudOperations());
