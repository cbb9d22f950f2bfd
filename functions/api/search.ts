import { makeSearchHandler } from '../../src/http/handlers/search.ts';
import { CLOUD_HTTP_LIMITS } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { searchOperations } from '../../src/wiring/lambda-search.ts';

/** POST /search — query image (raw, multipart "image") or {"key"}; clients are made once per container. */
export const handler = lambdaHandler(
  'search',
  makeSearchHandler(await searchOperations(), CLOUD_HTTP_LIMITS),
);
