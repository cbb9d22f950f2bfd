import { z } from 'zod';
import type { Job } from '../../domain/ports.ts';

/**
 * S3 event notification as S3 delivers it to SQS, several records per message.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 * Keys are URL-encoded the way HTML forms are: '+' is a space, so decode '+' before '%XX'.
 */
const S3EventRecord = z.object({
  eventSource: z.literal('aws:s3'),
  eventName: z.string(),
  s3: z.object({
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      eTag: z.string().optional(),
    }),
  }),
});

const S3Event = z.object({ Records: z.array(z.unknown()).min(1) });

/** Sent by S3 when a notification configuration is saved; carries no object. */
const S3TestEvent = z.object({ Service: z.literal('Amazon S3'), Event: z.literal('s3:TestEvent') });

const JobSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('upsert'),
    key: z.string().min(1),
    etag: z.string().optional(),
    size: z.number().int().nonnegative().optional(),
    force: z.boolean().optional(),
  }),
  z.object({ kind: z.literal('remove'), key: z.string().min(1) }),
]);

/** The project's own messages (backfill, re-ingest): jobs in our own words. */
const OwnMessage = z.object({ source: z.literal('pic-search'), jobs: z.array(JobSchema).min(1) });

/** The next slice of a background task (src/app/tasks.ts). */
const TaskMessage = z.object({ source: z.literal('pic-search'), task: z.string().min(1) });

export type ParsedMessage =
  | { jobs: Job[]; malformed?: undefined; taskId?: string }
  | { jobs: Job[]; malformed: string; taskId?: undefined };

export function ownMessageBody(jobs: Job[]): string {
  return JSON.stringify({ source: 'pic-search', jobs } satisfies z.infer<typeof OwnMessage>);
}

export function taskMessageBody(taskId: string): string {
  return JSON.stringify({ source: 'pic-search', task: taskId } satisfies z.infer<typeof TaskMessage>);
}

/**
 * Jobs in one SQS message body. S3 test events and event kinds we do not act on (restore, tagging,
 * lifecycle transitions) yield no jobs; a body that is none of the known shapes is `malformed`, with a
 * reason, so the worker can record it and let redrive move the message to the dead-letter queue.
 */
export function parseQueueMessage(body: string): ParsedMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { jobs: [], malformed: `message body is not JSON: ${preview(body)}` };
  }
  if (S3TestEvent.safeParse(json).success) return { jobs: [] };
  const own = OwnMessage.safeParse(json);
  if (own.success) return { jobs: own.data.jobs as Job[] };
  const task = TaskMessage.safeParse(json);
  if (task.success) return { jobs: [], taskId: task.data.task };
  const event = S3Event.safeParse(json);
  if (!event.success)
    return { jobs: [], malformed: `not an S3 event or a pic-search message: ${preview(body)}` };
  const jobs: Job[] = [];
  for (const raw of event.data.Records) {
    const record = S3EventRecord.safeParse(raw);
    if (!record.success)
      return { jobs: [], malformed: `S3 event record without an object key: ${preview(body)}` };
    const key = decodeS3Key(record.data.s3.object.key);
    if (key === undefined) {
      return { jobs: [], malformed: `S3 event key is not valid URL encoding: ${record.data.s3.object.key}` };
    }
    const { eventName } = record.data;
    if (eventName.startsWith('ObjectCreated:')) {
      const { eTag, size } = record.data.s3.object;
      jobs.push({
        kind: 'upsert',
        key,
        ...(eTag ? { etag: eTag } : {}),
        ...(size !== undefined ? { size } : {}),
      });
    } else if (eventName.startsWith('ObjectRemoved:')) {
      jobs.push({ kind: 'remove', key });
    }
  }
  return { jobs };
}

export function decodeS3Key(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function preview(body: string): string {
  return body.length > 200 ? `${body.slice(0, 200)}…` : body;
}
