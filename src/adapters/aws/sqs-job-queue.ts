import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Job, JobQueue, QueueDepth, ReceivedMessage } from '../../domain/ports.ts';
import { ownMessageBody, parseQueueMessage, taskMessageBody } from './queue-messages.ts';

/** SQS's limit on entries per batch call and messages per receive. */
const SQS_BATCH = 10;
/** SQS long polling waits at most 20 s. */
const MAX_WAIT_SECONDS = 20;
/** Visibility timeouts are capped at 12 hours. */
const MAX_VISIBILITY_SECONDS = 43_200;

/**
 * An SQS queue fed by S3 event notifications (and by our own backfill messages). Receipts are SQS
 * receipt handles. Messages that fail stay in the queue and come back after their visibility timeout;
 * the queue's RedrivePolicy (maxReceiveCount) moves a message that keeps failing to the dead-letter queue.
 */
export class SqsJobQueue implements JobQueue {
  readonly #sqs: SQSClient;
  readonly #url: string;
  readonly #visibilitySeconds: number | undefined;

  /**
   * `visibilitySeconds`: how long a receive hides its messages (the worker's heartbeat period is a third
   * of it); the queue's own VisibilityTimeout when omitted.
   */
  constructor(sqs: SQSClient, queueUrl: string, options: { visibilitySeconds?: number } = {}) {
    this.#sqs = sqs;
    this.#url = queueUrl;
    this.#visibilitySeconds = options.visibilitySeconds;
  }

  /** One job per message, so a job that fails is retried (and dead-lettered) on its own. */
  async sendTask(taskId: string): Promise<void> {
    await this.#sqs.send(
      new SendMessageCommand({ QueueUrl: this.#url, MessageBody: taskMessageBody(taskId) }),
    );
  }

  async send(jobs: Job[]): Promise<void> {
    for (const chunk of chunks(jobs, SQS_BATCH)) {
      let entries = chunk.map((job, i) => ({ Id: String(i), MessageBody: ownMessageBody([job]) }));
      for (let attempt = 0; entries.length > 0; attempt++) {
        const out = await this.#sqs.send(
          new SendMessageBatchCommand({ QueueUrl: this.#url, Entries: entries }),
        );
        const failed = out.Failed ?? [];
        if (failed.length === 0) break;
        const senderFault = failed.find((f) => f.SenderFault);
        if (senderFault || attempt >= 4) {
          const first = senderFault ?? failed[0];
          throw new Error(
            `SQS refused ${failed.length} message(s): ${first?.Code} ${first?.Message ?? ''}`.trim(),
          );
        }
        const retry = new Set(failed.map((f) => f.Id));
        entries = entries.filter((e) => retry.has(e.Id));
        await backoff(attempt);
      }
    }
  }

  async receive(max: number, waitMs: number): Promise<ReceivedMessage[]> {
    const out = await this.#sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.#url,
        MaxNumberOfMessages: Math.max(1, Math.min(SQS_BATCH, max)),
        WaitTimeSeconds: Math.max(0, Math.min(MAX_WAIT_SECONDS, Math.ceil(waitMs / 1000))),
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        ...(this.#visibilitySeconds ? { VisibilityTimeout: this.#visibilitySeconds } : {}),
      }),
    );
    return (out.Messages ?? []).flatMap((message) => {
      if (!message.ReceiptHandle) return [];
      const parsed = parseQueueMessage(message.Body ?? '');
      return [
        {
          receipt: message.ReceiptHandle,
          jobs: parsed.jobs,
          receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 1),
          ...(parsed.malformed ? { malformed: parsed.malformed } : {}),
          ...(parsed.taskId ? { taskId: parsed.taskId } : {}),
        },
      ];
    });
  }

  async ack(receipts: string[]): Promise<void> {
    for (const chunk of chunks(receipts, SQS_BATCH)) {
      const out = await this.#sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.#url,
          Entries: chunk.map((receipt, i) => ({ Id: String(i), ReceiptHandle: receipt })),
        }),
      );
      throwOnFailures('DeleteMessageBatch', out.Failed);
    }
  }

  /** Either way a visibility of 0: SQS counts every receive (ApproximateReceiveCount), there is no refund. */
  release(receipts: string[], _delivery?: 'counted' | 'uncounted'): Promise<void> {
    return this.#changeVisibility(receipts, 0);
  }

  extend(receipts: string[], seconds: number): Promise<void> {
    return this.#changeVisibility(
      receipts,
      Math.max(0, Math.min(MAX_VISIBILITY_SECONDS, Math.ceil(seconds))),
    );
  }

  async depth(): Promise<QueueDepth> {
    const out = await this.#sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.#url,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return {
      visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  async #changeVisibility(receipts: string[], seconds: number): Promise<void> {
    for (const chunk of chunks(receipts, SQS_BATCH)) {
      const out = await this.#sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.#url,
          Entries: chunk.map((receipt, i) => ({
            Id: String(i),
            ReceiptHandle: receipt,
            VisibilityTimeout: seconds,
          })),
        }),
      );
      throwOnFailures('ChangeMessageVisibilityBatch', out.Failed);
    }
  }
}

function throwOnFailures(
  operation: string,
  failed: { Id?: string; Code?: string; Message?: string }[] | undefined,
): void {
  if (!failed || failed.length === 0) return;
  const first = failed[0];
  throw new Error(
    `${operation} failed for ${failed.length} message(s): ${first?.Code} ${first?.Message ?? ''}`.trim(),
  );
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function backoff(attempt: number): Promise<void> {
  return new Promise((done) => setTimeout(done, 50 * 2 ** attempt));
}
