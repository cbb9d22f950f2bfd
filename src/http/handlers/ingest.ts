import type { IngestReport, Operations } from '../../app/operations.ts';
import { ValidationError } from '../../domain/errors.ts';
import { parseJsonBody } from '../request.ts';
import { handler, json } from '../response.ts';
import { ingestBody, uploadsBody } from '../schemas.ts';
import type { HttpHandler } from '../types.ts';

const MAX_JSON_BYTES = 1024 * 1024;

/** Embedded mode only: copy a server folder's images into the bucket under `prefix`, then backfill. */
export type IngestFolder = (path: string, prefix?: string) => Promise<IngestReport>;

/**
 * POST /ingest {"path"?, "prefix"?} → 202. With a path (embedded), the folder is synced into the bucket;
 * with a prefix only, objects already in the bucket are backfilled.
 */
export function makeIngestHandler(operations: Operations, ingestFolder?: IngestFolder): HttpHandler {
  return handler(async (event) => {
    const body = parseJsonBody(ingestBody, event, MAX_JSON_BYTES);
    if (body.path === undefined) return json(202, await operations.backfill(body.prefix ?? ''));
    if (!ingestFolder) {
      throw new ValidationError(
        'Ingest by folder path is for embedded mode; upload to the bucket and send {"prefix"}.',
      );
    }
    return json(202, await ingestFolder(body.path, body.prefix));
  });
}

/** POST /uploads {"files": [{name, contentType}], "prefix"?} → where to PUT each file. */
export function makeUploadsHandler(operations: Operations): HttpHandler {
  return handler(async (event) => {
    const { files, prefix } = parseJsonBody(uploadsBody, event, MAX_JSON_BYTES);
    return json(200, { uploads: await operations.uploadTargets(files, prefix) });
  });
}
