import { makeIngestHandler } from '../../src/http/handlers/ingest.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

/** POST /ingest {"prefix"} — backfill: queue what under the prefix is not indexed yet, forget the gone. */
export const handler = makeIngestHandler(await cloudOperations());
