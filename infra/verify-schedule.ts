import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { ScheduledVerify } from '../functions/api/verify.ts';

export interface VerifyScheduleProps {
  /** The API's verify function: it starts a verification task that the worker runs. */
  verifyFunction: lambda.IFunction;
  /** @default 1 day */
  every?: Duration;
  /** Fix the drift found (re-queue, forget, delete ghost vectors, recount): safe while ingest runs. @default true */
  repair?: boolean;
}

/** A scheduled verification of bucket, catalogue and index (docs/operations.md). */
export class VerifySchedule extends Construct {
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: VerifyScheduleProps) {
    super(scope, id);
    const input: ScheduledVerify = { scheduledVerify: true, repair: props.repair ?? true };
    this.rule = new events.Rule(this, 'Rule', {
      description: 'pic-search: verify (and repair) bucket, catalogue and vector index',
      schedule: events.Schedule.rate(props.every ?? Duration.days(1)),
      targets: [
        new targets.LambdaFunction(props.verifyFunction, { event: events.RuleTargetInput.fromObject(input) }),
      ],
    });
  }
}
