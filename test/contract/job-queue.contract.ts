import { afterEach, describe, expect, it } from 'vitest';
import type { Job, JobQueue, ReceivedMessage } from '../../src/domain/ports.ts';

export interface JobQueueSettings {
  /** Whole seconds: SQS's own granularity. */
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
}

export interface JobQueueFixture {
  queue: JobQueue;
  cleanup: () => Promise<void>;
  /** Messages in the dead-letter queue, where the adapter can tell. */
  deadLetterCount?: () => Promise<number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const byKey = (a: Job, b: Job) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** Receives until `count` jobs have arrived or `timeoutMs` passed (a queue may answer in parts). */
async function receiveJobs(queue: JobQueue, count: number, timeoutMs = 5000): Promise<ReceivedMessage[]> {
  const deadline = Date.now() + timeoutMs;
  const out: ReceivedMessage[] = [];
  while (out.flatMap((m) => m.jobs).length < count && Date.now() < deadline) {
    out.push(...(await queue.receive(10, Math.min(1000, Math.max(0, deadline - Date.now())))));
  }
  return out;
}

/**
 * What the worker relies on from a queue. Timings are in whole seconds with generous margins so the
 * same suite passes on SQS (moto) as on the embedded queue; each test makes its own queue.
 */
export function describeJobQueueContract(
  name: string,
  make: (settings: JobQueueSettings) => Promise<JobQueueFixture>,
): void {
  describe(`JobQueue contract: ${name}`, () => {
    let fixture: JobQueueFixture | undefined;
    const open = async (settings: Partial<JobQueueSettings> = {}) => {
      fixture = await make({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5, ...settings });
      return fixture.queue;
    };

    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    it('delivers every sent job, first with receiveCount 1', async () => {
      // Prepare
      const queue = await open();
      const jobs: Job[] = [
        { kind: 'upsert', key: 'a.jpg', etag: 'e1', size: 10 },
        { kind: 'upsert', key: 'b c/ü.jpg' },
        { kind: 'remove', key: 'c.jpg' },
      ];

      // Act
      await queue.send(jobs);
      const messages = await receiveJobs(queue, jobs.length);

      // Assess
      expect(messages.flatMap((m) => m.jobs).sort(byKey)).toEqual([...jobs].sort(byKey));
      expect(messages.every((m) => m.receiveCount === 1 && m.malformed === undefined)).toBe(true);
      expect(new Set(messages.map((m) => m.receipt)).size).toBe(messages.length);
    });

    it('hides a received message, then delivers it again after the visibility timeout with a higher receiveCount', async () => {
      const queue = await open({ visibilityTimeoutSeconds: 1 });
      await queue.send([{ kind: 'upsert', key: 'again.jpg' }]);
      const [first] = await receiveJobs(queue, 1);

      const whileHidden = await queue.receive(10, 0);
      const depthWhileHidden = await queue.depth();
      await sleep(1500);
      const [second] = await receiveJobs(queue, 1, 5000);

      expect(first?.receiveCount).toBe(1);
      expect(whileHidden).toEqual([]);
      expect(depthWhileHidden).toEqual({ visible: 0, inFlight: 1 });
      expect(second?.jobs).toEqual([{ kind: 'upsert', key: 'again.jpg' }]);
      expect(second?.receiveCount).toBe(2);
    });

    it('forgets an acked message for good', async () => {
      const queue = await open({ visibilityTimeoutSeconds: 1 });
      await queue.send([{ kind: 'upsert', key: 'done.jpg' }]);
      const messages = await receiveJobs(queue, 1);

      await queue.ack(messages.map((m) => m.receipt));
      await sleep(1500);
      const after = await queue.receive(10, 1000);

      expect(after).toEqual([]);
      expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
    });

    it('makes a released message visible at once', async () => {
      const queue = await open({ visibilityTimeoutSeconds: 60 });
      await queue.send([{ kind: 'upsert', key: 'handed-back.jpg' }]);
      const messages = await receiveJobs(queue, 1);

      await queue.release(messages.map((m) => m.receipt));
      const started = Date.now();
      const again = await receiveJobs(queue, 1, 5000);

      expect(again.flatMap((m) => m.jobs)).toEqual([{ kind: 'upsert', key: 'handed-back.jpg' }]);
      expect(again[0]?.receiveCount).toBe(2);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it('keeps an extended message hidden past its original timeout', async () => {
      const queue = await open({ visibilityTimeoutSeconds: 1 });
      await queue.send([{ kind: 'upsert', key: 'slow.jpg' }]);
      const messages = await receiveJobs(queue, 1);

      await queue.extend(
        messages.map((m) => m.receipt),
        6,
      );
      await sleep(2000);
      const whileExtended = await queue.receive(10, 500);
      await queue.release(messages.map((m) => m.receipt));
      const afterRelease = await receiveJobs(queue, 1);

      expect(whileExtended).toEqual([]);
      expect(afterRelease.flatMap((m) => m.jobs)).toEqual([{ kind: 'upsert', key: 'slow.jpg' }]);
    });

    it('counts visible and in-flight messages', async () => {
      const queue = await open();
      for (const key of ['1.jpg', '2.jpg', '3.jpg']) await queue.send([{ kind: 'upsert', key }]);

      const before = await queue.depth();
      const taken = await queue.receive(1, 2000);
      const after = await queue.depth();

      expect(before).toEqual({ visible: 3, inFlight: 0 });
      expect(taken).toHaveLength(1);
      expect(after).toEqual({ visible: 2, inFlight: 1 });
    });

    it('hands out no more messages than asked for', async () => {
      const queue = await open();
      for (const key of ['1.jpg', '2.jpg', '3.jpg', '4.jpg']) await queue.send([{ kind: 'upsert', key }]);

      const batch = await queue.receive(2, 2000);

      expect(batch.length).toBeGreaterThan(0);
      expect(batch.length).toBeLessThanOrEqual(2);
    });

    it('long-polls: a waiting receive returns a message sent while it waits', async () => {
      const queue = await open();

      const waiting = queue.receive(10, 8000);
      await sleep(500);
      const sentAt = Date.now();
      await queue.send([{ kind: 'remove', key: 'late.jpg' }]);
      const messages = await waiting;

      expect(messages.flatMap((m) => m.jobs)).toEqual([{ kind: 'remove', key: 'late.jpg' }]);
      expect(Date.now() - sentAt).toBeLessThan(3000);
    });

    it('returns nothing, without error, when nothing arrives before the wait ends', async () => {
      const queue = await open();
      const started = Date.now();

      const messages = await queue.receive(10, 1000);

      expect(messages).toEqual([]);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it('gives up on a message after maxReceiveCount deliveries without ack (dead letter)', async () => {
      const queue = await open({ visibilityTimeoutSeconds: 1, maxReceiveCount: 2 });
      await queue.send([{ kind: 'upsert', key: 'poison.jpg' }]);

      const first = await receiveJobs(queue, 1);
      await sleep(1200);
      const second = await receiveJobs(queue, 1, 5000);
      await sleep(1200);
      const third = await queue.receive(10, 2000);

      expect(first[0]?.receiveCount).toBe(1);
      expect(second[0]?.receiveCount).toBe(2);
      expect(third).toEqual([]);
      expect(await queue.depth()).toEqual({ visible: 0, inFlight: 0 });
      if (fixture?.deadLetterCount) expect(await fixture.deadLetterCount()).toBe(1);
    });
  });
}
