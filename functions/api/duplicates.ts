import {
  makeDismissDuplicatesHandler,
  makeDuplicatesHandler,
  makeScanDuplicatesHandler,
} from '../../src/http/handlers/duplicates.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { duplicatesFinder } from '../../src/wiring/lambda-duplicates.ts';

const duplicates = await duplicatesFinder();
const find = makeDuplicatesHandler(duplicates);
const dismiss = makeDismissDuplicatesHandler(duplicates);
const scan = makeScanDuplicatesHandler(duplicates);

/** GET /duplicates (the last scan's groups), POST /duplicates/dismissals, POST /duplicates/scan (202). */
export const handler = lambdaHandler('duplicates', (event: HttpEvent) => {
  if (event.routeKey === 'POST /duplicates/scan') return scan(event);
  return event.routeKey === 'POST /duplicates/dismissals' ? dismiss(event) : find(event);
});
