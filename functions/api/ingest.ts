import { makeIngestHandler } from '../../src/http/handlers/ingest.ts';
import { ingestOperations } from '../../src/wiring/lambda.ts';

/** POST /ingest {"prefix"} — backfill: queue what under the prefix is not indexed yet, forget the gone. */
export const handler = makeIngestHandler(await ingestOperations());
