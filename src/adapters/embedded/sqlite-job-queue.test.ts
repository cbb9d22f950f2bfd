import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../../domain/ports.ts';
import { SqliteJobQueue } from './sqlite-job-queue.ts';

const run = promisify(execFile);

describe('SqliteJobQueue', () => {
  let dir: string;
  let path: string;
  const opened: SqliteJobQueue[] = [];
  const open = (options: ConstructorParameters<typeof SqliteJobQueue>[1] = {}) => {
    const queue = new SqliteJobQueue(path, options);
    opened.push(queue);
    return queue;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'queue-'));
    path = join(dir, 'queue.db');
  });

  afterEach(async () => {
    for (const queue of opened.splice(0)) queue.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers again a message whose consumer process died without acking it', async () => {
    // Prepare
    const queue = open({ visibilityTimeoutSeconds: 1 });
    await queue.send([{ kind: 'upsert', key: 'survives a crash.jpg' }]);

    // Act
    const child = await run(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'crashing-consumer.ts'), path],
      { encoding: 'utf8' },
    ).catch((error: { code: number; stdout: string }) => error);
    const seenByChild = JSON.parse(child.stdout) as ReceivedMessage[];
    const afterRestart = await open({ visibilityTimeoutSeconds: 1 }).receive(10, 5000);

    // Assess
    expect('code' in child && child.code).toBe(3);
    expect(seenByChild.map((m) => m.jobs)).toEqual([[{ kind: 'upsert', key: 'survives a crash.jpg' }]]);
    expect(afterRestart.map((m) => [m.jobs, m.receiveCount])).toEqual([
      [[{ kind: 'upsert', key: 'survives a crash.jpg' }], 2],
    ]);
  });

  it('keeps sent messages across a restart', async () => {
    const first = open();
    await first.send([{ kind: 'remove', key: 'a.jpg' }]);
    first.close();
    opened.splice(opened.indexOf(first), 1);

    const messages = await open().receive(10, 1000);

    expect(messages.flatMap((m) => m.jobs)).toEqual([{ kind: 'remove', key: 'a.jpg' }]);
  });

  it('hands a malformed body to the worker with the reason, then dead-letters it with that reason', async () => {
    const queue = open({ visibilityTimeoutSeconds: 0.05, maxReceiveCount: 1 });
    // Another (older or broken) writer put a body this version cannot read.
    const raw = new Database(path);
    raw
      .prepare('INSERT INTO messages (body, sent_at, visible_at) VALUES (?, ?, ?)')
      .run('{"jobs":[{"kind":"explode"}]}', Date.now(), Date.now());
    raw.close();

    const [message] = await queue.receive(10, 1000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const afterwards = await queue.receive(10, 200);

    expect(message?.jobs).toEqual([]);
    expect(message?.malformed).toMatch(/not a job list/);
    expect(afterwards).toEqual([]);
    expect(queue.deadLetters()).toEqual([
      {
        jobs: '{"jobs":[{"kind":"explode"}]}',
        receiveCount: 1,
        reason: message?.malformed,
        deadAt: expect.any(Date),
      },
    ]);
  });

  it('records why a message that was never acked went to the dead letters', async () => {
    const queue = open({ visibilityTimeoutSeconds: 0.05, maxReceiveCount: 2 });
    await queue.send([{ kind: 'upsert', key: 'poison.jpg' }]);

    for (let i = 0; i < 3; i++) {
      await queue.receive(10, 500);
      await new Promise((resolve) => setTimeout(resolve, 80));
    }

    expect(queue.deadLetters()).toEqual([
      {
        jobs: [{ kind: 'upsert', key: 'poison.jpg' }],
        receiveCount: 2,
        reason: 'not acknowledged after 2 deliveries',
        deadAt: expect.any(Date),
      },
    ]);
  });

  it('takes back a delivery handed back uncounted (an outage), so outages never dead-letter', async () => {
    // Prepare
    const queue = open({ maxReceiveCount: 2 });
    await queue.send([{ kind: 'upsert', key: 'outage.jpg', force: true }]);

    // Act: ten outages, each catching the message in hand.
    const deliveries: number[] = [];
    for (let outage = 0; outage < 10; outage++) {
      const [message] = await queue.receive(1, 0);
      deliveries.push(message?.receiveCount ?? 0);
      await queue.release([message?.receipt ?? ''], 'uncounted');
    }
    const [last] = await queue.receive(1, 0);

    // Assess
    expect(deliveries).toEqual(Array(10).fill(1));
    expect(last?.jobs).toEqual([{ kind: 'upsert', key: 'outage.jpg', force: true }]);
    expect(queue.deadLetters()).toEqual([]);
  });

  it('waits without spinning the CPU when the queue is empty', async () => {
    const queue = open({ pollIntervalMs: 100 });
    const before = process.cpuUsage();

    await queue.receive(10, 1500);

    const used = process.cpuUsage(before);
    expect((used.user + used.system) / 1000).toBeLessThan(150);
  });

  it('wakes a waiting receive as soon as another process sends', async () => {
    const queue = open({ pollIntervalMs: 100 });
    const other = open();

    const waiting = queue.receive(10, 5000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sentAt = Date.now();
    await other.send([{ kind: 'upsert', key: 'from elsewhere.jpg' }]);
    const messages = await waiting;

    expect(messages.flatMap((m) => m.jobs)).toEqual([{ kind: 'upsert', key: 'from elsewhere.jpg' }]);
    expect(Date.now() - sentAt).toBeLessThan(500);
  });
});
