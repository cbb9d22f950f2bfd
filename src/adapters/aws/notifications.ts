import type { NotificationConfiguration } from '@aws-sdk/client-s3';
import { IMAGE_EXTENSIONS } from '../../imaging/formats.ts';

/**
 * The bucket → ingest queue notification, in one place: the CDK stack (infra/notification-rules.ts) and
 * the moto tests both build theirs from these lists, so what is tested is what is deployed.
 *
 * Created (Put, Post, Copy, CompleteMultipartUpload) and Removed (Delete, DeleteMarkerCreated) events
 * of keys under the image prefix; thumbnails live under another prefix and so never loop back. S3
 * allows one suffix per rule and matches it case-sensitively, so each image extension gets a rule in
 * lower and in upper case; other spellings (".Jpg") and extensionless keys are still picked up by
 * backfill (`POST /ingest`), which lists the prefix.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html
 */
export const NOTIFICATION_EVENTS = ['s3:ObjectCreated:*', 's3:ObjectRemoved:*'] as const;

export const IMAGE_SUFFIXES: readonly string[] = IMAGE_EXTENSIONS.flatMap((ext) => [ext, ext.toUpperCase()]);

/** The bucket's NotificationConfiguration as PutBucketNotificationConfiguration takes it. */
export function imageQueueNotification(queueArn: string, prefix: string): NotificationConfiguration {
  return {
    QueueConfigurations: NOTIFICATION_EVENTS.flatMap((event) =>
      IMAGE_SUFFIXES.map((suffix) => ({
        QueueArn: queueArn,
        Events: [event],
        Filter: {
          Key: {
            FilterRules: [
              ...(prefix ? [{ Name: 'prefix' as const, Value: prefix }] : []),
              { Name: 'suffix' as const, Value: suffix },
            ],
          },
        },
      })),
    ),
  };
}
