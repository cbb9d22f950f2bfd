import type { Duplicates } from '../../app/duplicates.ts';
import { viewOf } from '../../app/tasks.ts';
import { parseJsonBody } from '../request.ts';
import { handler, json } from '../response.ts';
import { dismissDuplicatesBody, duplicatesQuery, scanDuplicatesQuery } from '../schemas.ts';
import type { HttpHandler } from '../types.ts';

const MAX_JSON_BYTES = 256 * 1024;

/** GET /duplicates?threshold&limit&cursor — one page of near-duplicate groups. */
export function makeDuplicatesHandler(duplicates: Duplicates): HttpHandler {
  return handler(async (_event, { threshold, limit, cursor }) => {
    const page = await duplicates.find({
      limit,
      ...(threshold === undefined ? {} : { threshold }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    return json(200, page, { 'cache-control': 'no-store' });
  }, duplicatesQuery);
}

/** POST /duplicates/dismissals {"keys"} → 204: "not duplicates". */
export function makeDismissDuplicatesHandler(duplicates: Duplicates): HttpHandler {
  return handler(async (event) => {
    const { keys } = parseJsonBody(dismissDuplicatesBody, event, MAX_JSON_BYTES);
    await duplicates.dismiss(keys);
    return { statusCode: 204 };
  });
}

/** POST /duplicates/scan?threshold → 202 with the task: cloud mode's scan, run by the worker. */
export function makeScanDuplicatesHandler(duplicates: Duplicates): HttpHandler {
  return handler(
    async (_event, { threshold }) => json(202, viewOf(await duplicates.scan(threshold))),
    scanDuplicatesQuery,
  );
}
