import type { Operations } from '../../app/operations.ts';
import { handler, json } from '../response.ts';
import { progressQuery, verifyQuery } from '../schemas.ts';
import type { HttpHandler } from '../types.ts';

/** GET /health — mode, model, execution provider and the index's identity. */
export function makeHealthHandler(operations: Operations): HttpHandler {
  return handler(async () => json(200, await operations.health()));
}

/** GET /count — vectors in the index. */
export function makeCountHandler(operations: Operations): HttpHandler {
  return handler(async () => json(200, { count: await operations.count() }));
}

/** GET /progress?failures=20 — totals, throughput, ETA and the latest failures with their reasons. */
export function makeProgressHandler(operations: Operations): HttpHandler {
  return handler(
    async (_event, { failures }) =>
      json(200, await operations.progress(failures), { 'cache-control': 'no-store' }),
    progressQuery,
  );
}

/** POST /verify?repair=true — starts a verification in the background; 202 with its task. */
export function makeVerifyHandler(operations: Operations): HttpHandler {
  return handler(
    async (_event, { repair }) => json(202, await operations.verify({ repair: repair === 'true' })),
    verifyQuery,
  );
}

/** POST /reindex — starts re-indexing with the configured model in the background; 202 with its task. */
export function makeReindexHandler(operations: Operations): HttpHandler {
  return handler(async () => json(202, await operations.reindex()));
}
