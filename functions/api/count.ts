import { makeCountHandler } from '../../src/http/handlers/status.ts';
import { countOperations } from '../../src/wiring/lambda.ts';

/** GET /count */
export const handler = makeCountHandler(await countOperations());
