import { makeVerifyHandler } from '../../src/http/handlers/status.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { verifyOperations } from '../../src/wiring/lambda.ts';

const operations = verifyOperations();
const http = makeVerifyHandler(operations);

/** The input the scheduled rule sends (infra/verify-schedule.ts). */
export interface ScheduledVerify {
  scheduledVerify: true;
  repair: boolean;
}

/** POST /verify?repair=true, and the scheduled verification: both start a task the worker runs. */
export const handler = (event: HttpEvent | ScheduledVerify) =>
  'scheduledVerify' in event ? operations.verify({ repair: event.repair }) : http(event);
