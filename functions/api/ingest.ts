import { makeIngestHandler } from '../../src/http/handlers/ingest.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { ingestOperations } from '../../src/wiring/lambda.ts';

/** POST /ingest {"prefix"} — backfill: queue what under the prefix is not indexed yet, forget the gone. */
export const handler = lambdaHandler('ingest', makeIngestHandler(await ingestOperations()));
