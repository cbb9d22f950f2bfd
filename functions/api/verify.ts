import type { Context } from 'aws-lambda';
import { makeVerifyHandler } from '../../src/http/handlers/status.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { verifyOperations } from '../../src/wiring/lambda.ts';

const operations = verifyOperations();
const http = lambdaHandler('verify', makeVerifyHandler(operations));

/** The input the scheduled rule sends (infra/verify-schedule.ts). */
export interface ScheduledVerify {
  scheduledVerify: true;
  repair: boolean;
}

/** POST /verify?repair=true, and the scheduled verification: both start a task the worker runs. */
export const handler = (event: HttpEvent | ScheduledVerify, context: Context) =>
  'scheduledVerify' in event ? operations.verify({ repair: event.repair }) : http(event, context);
