import { makeProgressHandler } from '../../src/http/handlers/status.ts';
import { progressOperations } from '../../src/wiring/lambda.ts';

/** GET /progress?failures=20 */
export const handler = makeProgressHandler(await progressOperations());
