import type * as s3 from 'aws-cdk-lib/aws-s3';
import { IMAGE_SUFFIXES, NOTIFICATION_EVENTS } from '../src/adapters/aws/notifications.ts';

/**
 * The bucket → queue notification rules, derived from the same module the moto integration tests use to
 * configure their bucket, so the deployed wiring and the tested wiring cannot drift apart.
 * S3 allows one prefix and one suffix per rule and suffixes are case-sensitive, hence one rule per
 * event × suffix (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html).
 */
export interface NotificationRule {
  event: s3.EventType;
  prefix: string;
  suffix: string;
}

export function imageNotificationRules(prefix: string): NotificationRule[] {
  return NOTIFICATION_EVENTS.flatMap((event) =>
    IMAGE_SUFFIXES.map((suffix) => ({ event: event as s3.EventType, prefix, suffix })),
  );
}
