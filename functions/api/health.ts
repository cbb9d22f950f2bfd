import { makeHealthHandler } from '../../src/http/handlers/status.ts';
import { makeOpenApiHandler } from '../../src/http/router.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { healthOperations } from '../../src/wiring/lambda.ts';

const health = makeHealthHandler(await healthOperations());
const openApi = makeOpenApiHandler('cloud');

/** GET /health and GET /openapi.json (one small function for both). */
export const handler = lambdaHandler('health', (event: HttpEvent) =>
  event.routeKey === 'GET /openapi.json' ? openApi(event) : health(event),
);
