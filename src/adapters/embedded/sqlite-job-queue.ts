import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import type { Job, JobQueue, QueueDepth, ReceivedMessage } from '../../domain/ports.ts';
import { openSqlite } from './sqlite.ts';

export interface SqliteJobQueueOptions {
  /** Seconds a received message stays hidden before it is delivered again. @default 60 */
  visibilityTimeoutSeconds?: number;
  /** Deliveries without ack after which a message moves to the dead letters (like SQS redrive). @default 5 */
  maxReceiveCount?: number;
  /** How often a waiting receive looks for messages sent by another process. @default 200 */
  pollIntervalMs?: number;
}

export interface DeadLetter {
  jobs: unknown;
  receiveCount: number;
  reason: string;
  deadAt: Date;
}

const jobSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('upsert'),
    key: z.string().min(1),
    etag: z.string().optional(),
    size: z.number().optional(),
    force: z.boolean().optional(),
  }),
  z.object({ kind: z.literal('remove'), key: z.string().min(1) }),
]);
const bodySchema = z.union([z.object({ jobs: z.array(jobSchema) }), z.object({ task: z.string().min(1) })]);

interface MessageRow {
  id: number;
  body: string;
  receive_count: number;
}

/**
 * A durable job queue in a SQLite file with SQS's semantics: a received message is hidden for the
 * visibility timeout and comes back unless acked, so a crashed worker loses nothing; every delivery
 * counts, and a message delivered `maxReceiveCount` times is moved to `dead_letters` with its reason.
 * Each job is its own message so a batch can ack, release or fail jobs one by one.
 */
export class SqliteJobQueue implements JobQueue {
  readonly #db: Database.Database;
  readonly #visibilityMs: number;
  readonly #maxReceiveCount: number;
  readonly #pollMs: number;
  /** Receives waiting in this process, woken at once by a send or release from this process. */
  readonly #waiters = new Set<() => void>();
  #closed = false;
  readonly #stmt;

  constructor(dbPath: string, options: SqliteJobQueueOptions = {}) {
    this.#visibilityMs = (options.visibilityTimeoutSeconds ?? 60) * 1000;
    this.#maxReceiveCount = options.maxReceiveCount ?? 5;
    this.#pollMs = options.pollIntervalMs ?? 200;
    this.#db = openSqlite(dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT
      );
      CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at, id);
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        receive_count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        dead_at INTEGER NOT NULL
      );`);
    this.#stmt = {
      insert: this.#db.prepare('INSERT INTO messages (body, sent_at, visible_at) VALUES (?, ?, ?)'),
      due: this.#db.prepare<[number, number], MessageRow>(
        'SELECT id, body, receive_count FROM messages WHERE visible_at <= ? ORDER BY visible_at, id LIMIT ?',
      ),
      claim: this.#db.prepare(
        'UPDATE messages SET receive_count = receive_count + 1, visible_at = ?, receipt = ? WHERE id = ?',
      ),
      bury: this.#db.prepare(
        `INSERT OR REPLACE INTO dead_letters (id, body, sent_at, receive_count, reason, dead_at)
         SELECT id, body, sent_at, receive_count, ?, ? FROM messages WHERE id = ?`,
      ),
      remove: this.#db.prepare('DELETE FROM messages WHERE id = ?'),
      ack: this.#db.prepare('DELETE FROM messages WHERE id = ? AND receipt = ?'),
      setVisibleAt: this.#db.prepare('UPDATE messages SET visible_at = ? WHERE id = ? AND receipt = ?'),
      uncount: this.#db.prepare(
        'UPDATE messages SET receive_count = max(0, receive_count - 1) WHERE id = ? AND receipt = ?',
      ),
      nextVisibleAt: this.#db.prepare<[number], { at: number | null }>(
        'SELECT min(visible_at) AS at FROM messages WHERE visible_at > ?',
      ),
      visible: this.#db.prepare<[number], { n: number }>(
        'SELECT count(*) AS n FROM messages WHERE visible_at <= ?',
      ),
      inFlight: this.#db.prepare<[number], { n: number }>(
        'SELECT count(*) AS n FROM messages WHERE visible_at > ?',
      ),
      deadLetters: this.#db.prepare<
        [],
        { body: string; receive_count: number; reason: string; dead_at: number }
      >('SELECT body, receive_count, reason, dead_at FROM dead_letters ORDER BY dead_at DESC, id DESC'),
    };
  }

  async send(jobs: Job[]): Promise<void> {
    const now = Date.now();
    this.#db.transaction(() => {
      for (const job of jobs) this.#stmt.insert.run(JSON.stringify({ jobs: [job] }), now, now);
    })();
    this.#wake();
  }

  async sendTask(taskId: string): Promise<void> {
    const now = Date.now();
    this.#stmt.insert.run(JSON.stringify({ task: taskId }), now, now);
    this.#wake();
  }

  async receive(max: number, waitMs: number): Promise<ReceivedMessage[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (this.#closed) return [];
      const messages = this.#claim(max);
      const now = Date.now();
      if (messages.length > 0 || now >= deadline) return messages;
      // Sleep until a local send, the next hidden message reappearing, the poll tick or the deadline.
      const next = this.#stmt.nextVisibleAt.get(now)?.at ?? Number.POSITIVE_INFINITY;
      await this.#sleep(Math.max(1, Math.min(deadline - now, this.#pollMs, next - now)));
    }
  }

  async ack(receipts: string[]): Promise<void> {
    this.#db.transaction(() => {
      for (const receipt of receipts) this.#stmt.ack.run(messageIdOf(receipt), receipt);
    })();
  }

  async release(receipts: string[], delivery: 'counted' | 'uncounted' = 'counted'): Promise<void> {
    this.#db.transaction(() => {
      for (const receipt of receipts) {
        const id = messageIdOf(receipt);
        this.#stmt.setVisibleAt.run(Date.now(), id, receipt);
        if (delivery === 'uncounted') this.#stmt.uncount.run(id, receipt);
      }
    })();
    this.#wake();
  }

  async extend(receipts: string[], seconds: number): Promise<void> {
    this.#setVisibleAt(receipts, Date.now() + seconds * 1000);
  }

  async depth(): Promise<QueueDepth> {
    const now = Date.now();
    return {
      visible: this.#stmt.visible.get(now)?.n ?? 0,
      inFlight: this.#stmt.inFlight.get(now)?.n ?? 0,
    };
  }

  /** Messages given up on, newest first, with why. */
  deadLetters(): DeadLetter[] {
    return this.#stmt.deadLetters.all().map((row) => ({
      jobs: parseBody(row.body).jobs ?? row.body,
      receiveCount: row.receive_count,
      reason: row.reason,
      deadAt: new Date(row.dead_at),
    }));
  }

  close(): void {
    this.#closed = true;
    this.#wake();
    this.#db.close();
  }

  /** IMMEDIATE: takes the write lock before reading, so two processes can never claim the same row. */
  #claim(max: number): ReceivedMessage[] {
    return this.#db
      .transaction(() => {
        const now = Date.now();
        const out: ReceivedMessage[] = [];
        // Loops because buried messages free their places in the batch.
        while (out.length < max) {
          const rows = this.#stmt.due.all(now, max - out.length);
          if (rows.length === 0) break;
          for (const row of rows) {
            const parsed = parseBody(row.body);
            if (row.receive_count >= this.#maxReceiveCount) {
              const reason = parsed.error ?? `not acknowledged after ${row.receive_count} deliveries`;
              this.#stmt.bury.run(reason, now, row.id);
              this.#stmt.remove.run(row.id);
              continue;
            }
            const receipt = `${row.id}.${randomUUID()}`;
            this.#stmt.claim.run(now + this.#visibilityMs, receipt, row.id);
            out.push({
              receipt,
              jobs: parsed.jobs ?? [],
              receiveCount: row.receive_count + 1,
              ...(parsed.error === undefined ? {} : { malformed: parsed.error }),
              ...(parsed.taskId === undefined ? {} : { taskId: parsed.taskId }),
            });
          }
        }
        return out;
      })
      .immediate();
  }

  #setVisibleAt(receipts: string[], at: number): void {
    this.#db.transaction(() => {
      for (const receipt of receipts) this.#stmt.setVisibleAt.run(at, messageIdOf(receipt), receipt);
    })();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

function parseBody(body: string): { jobs?: Job[]; taskId?: string; error?: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { error: 'message body is not JSON' };
  }
  const parsed = bodySchema.safeParse(json);
  if (!parsed.success) return { error: `message body is not a job list: ${parsed.error.issues[0]?.message}` };
  return 'task' in parsed.data ? { taskId: parsed.data.task } : { jobs: parsed.data.jobs };
}

function messageIdOf(receipt: string): number {
  const id = Number.parseInt(receipt.split('.', 1)[0] ?? '', 10);
  return Number.isSafeInteger(id) ? id : -1;
}
