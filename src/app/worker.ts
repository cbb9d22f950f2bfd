import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ImageError, NotFoundError, StoreBusyError } from '../domain/errors.ts';
import { ownsItsId, vectorIdOf } from '../domain/ids.ts';
import type { Embedder, ImageRecord, Job, ObjectWithBody, Outage, ReceivedMessage } from '../domain/ports.ts';
import { type Version, versionNow } from '../domain/versions.ts';
import { claimAll, forgetImages, type IdOf, isIndexed, isKeptOut, type Stores } from './indexing.ts';
import { isIndexableKey, THUMBNAIL_CONTENT_TYPE, thumbnailKeyOf } from './keys.ts';

export interface WorkerOptions {
  /** Messages (≈ images) per batch; one embed() call each. */
  batchSize: number;
  /** Deliveries after which a failing job is recorded as failed; the queue then dead-letters it. */
  maxReceiveCount: number;
  /** Long-poll wait of one receive. Also bounds how long stop() waits for a receive in progress. @default 1000 */
  waitMs?: number;
  /**
   * How long a receive hides a batch (the queue adapter's setting): the heartbeat extends the batch to
   * this every third of it. @default 60
   */
  visibilitySeconds?: number;
  /** Batches in flight: 2 lets batch k+1 be received, claimed and downloaded while batch k is inferred. @default 2 */
  batchesInFlight?: number;
  /**
   * The circuit breaker's clock: after an outage is seen the worker receives nothing for `firstMs`,
   * then checks the stores again, doubling the pause (with jitter) up to `longestMs` while they stay
   * unreachable. Tests shorten it; the logic is the same. @default { firstMs: 1000, longestMs: 300000 }
   */
  outageBackoff?: OutageBackoff;
  /**
   * Only keys under this prefix are images to index; the rest (the worker's own thumbnails, should an
   * event ever name one) are left alone. @default '' (everything)
   */
  imagePrefix?: string;
  /**
   * Told whether the worker holds messages: true after each batch received, false once no batch is in
   * hand. The GPU container protects its ECS task from scale-in with it (TaskProtection.set); a failure
   * is logged and never fails a batch. @default nothing
   */
  onHolding?: (holding: boolean) => Promise<void>;
  /**
   * Told of the breaker's state for processes that cannot ask this one (the cloud's API functions): the
   * outage when it opens and again at each check that finds the store still down, undefined when it
   * closes or the worker stops during one. Calls are made one after another; a failure is logged.
   */
  onOutage?: (outage: Outage | undefined) => Promise<void>;
  /** Test seam for hash collisions. @default vectorIdOf */
  idOf?: IdOf;
  /** Runs the next slice of a background task (src/app/tasks.ts); a message naming one is acked once it returns. */
  runTask?: (taskId: string) => Promise<void>;
  logger?: Logger;
}

export interface OutageBackoff {
  firstMs: number;
  longestMs: number;
}

export interface WorkerStats {
  /** Images embedded and indexed. */
  indexed: number;
  /** Images recorded as failed: bad files, hash collisions, jobs given up on. */
  failed: number;
  /** Images forgotten because their object is gone. */
  removed: number;
  /** Jobs for content already indexed (re-deliveries, duplicate events). */
  unchanged: number;
  /** Messages left for redelivery after an error no outage explains (counted towards dead-lettering). */
  retried: number;
  /** Messages handed back, uncounted where the queue can, because a store was unreachable. */
  handedBack: number;
  /** Keys queued again because the bucket changed while the worker worked on them. */
  requeued: number;
  /** Images not written because the catalogue already holds a newer version of the key. */
  superseded: number;
  /** Messages that could not be understood. */
  malformed: number;
  /** Messages left on their last delivery (maxReceiveCount), which the queue then dead-letters. */
  deadLettered: number;
  /** Photos a delete-all kept, left out of the index (isKeptOut). */
  keptOut: number;
}

/** A worker's counters before its first message. */
export function noWorkerStats(): WorkerStats {
  return {
    indexed: 0,
    failed: 0,
    removed: 0,
    unchanged: 0,
    retried: 0,
    handedBack: 0,
    requeued: 0,
    superseded: 0,
    malformed: 0,
    deadLettered: 0,
    keptOut: 0,
  };
}

type KeyOutcome = 'done' | { retry: Error };

interface Claimed {
  key: string;
  id: string;
  object: ObjectWithBody;
}

interface Embedded {
  item: Claimed;
  vector: Float32Array;
  thumbnail: Uint8Array | undefined;
}

/** What the worker left in the index for a key: the content it wrote (etag), or nothing (undefined). */
interface Written {
  key: string;
  etag: string | undefined;
}

/** A key the outage check reads when no batch names one (any key: a missing one answers too). */
const PROBE_KEY = 'pic-search-health-check.jpg';

/**
 * The one ingest loop, for the embedded service and the GPU container alike.
 *
 * Every job is treated as "make the index agree with the bucket for this key": the object is looked up
 * first, so an upsert for a deleted object and a remove for a re-uploaded one both do the right thing
 * whatever order S3 delivered them in. Exactly-once indexing rests on the data model, not on delivery:
 * vector ids derive from keys (upsert overwrites), catalogue writes are idempotent, and a message is
 * acked only after the vector and the catalogue entry are written, so a crash anywhere before the ack
 * only means the same work is done again.
 *
 * Last write wins, by version: the worker takes a version (src/domain/versions.ts) just before it looks
 * at a batch's objects, and every catalogue write carries it, so the catalogue refuses a write older than
 * what the key holds, a deletion's tombstone included. Before committing anything the worker checks that
 * each image it embedded is still current: the catalogue holds no newer version (else nothing is written,
 * the newer write stands) and the object is unchanged (else nothing is written and the key is queued
 * again). Vector writes themselves are not conditional, so after writing a key (its vector, its failure
 * or its removal) the worker still looks at the object once more. When it is no longer the content written (overwritten, deleted or put back while the
 * worker worked, by a user or beside another worker's write), the key is queued again with `force`, so
 * whatever the writes' order, the last word on a key is from a look at the bucket taken after every
 * change to it (docs/consistency.md).
 *
 * Policies:
 * - a bad image is recorded as failed with its reason, its old vector and thumbnail removed, and acked;
 *   one image's failure to decode, thumbnail, claim or write fails that image alone;
 * - an error is checked against the stores: when one is unreachable (an outage) the worker hands its
 *   messages back (uncounted where the queue can) and receives nothing until the stores answer again
 *   (a circuit breaker, jittered back-off up to minutes); `outage` says since when, for /progress and
 *   /health. Outages are waited out, never dead-lettered;
 * - an error with every store reachable leaves the message for redelivery after a back-off; on its last
 *   allowed delivery the reason is recorded in the catalogue first, then the queue dead-letters it;
 * - a malformed message is logged and released at once, so its deliveries run out quickly and the queue
 *   dead-letters it with the parse error as its reason (it names no key, so the catalogue cannot hold it);
 * - a message with no jobs (S3's s3:TestEvent) is acked.
 */
export class Worker {
  readonly stats: WorkerStats = noWorkerStats();
  readonly #stores: Stores;
  readonly #embedder: Embedder;
  readonly #options: Required<Omit<WorkerOptions, 'logger' | 'onHolding' | 'onOutage' | 'runTask'>>;
  readonly #onHolding: WorkerOptions['onHolding'];
  readonly #onOutage: WorkerOptions['onOutage'];
  /** The reports to onOutage, in order: a recovery never lands before the outage it ends. */
  #outageReported: Promise<void> = Promise.resolve();
  readonly #runTask: WorkerOptions['runTask'];
  readonly #log: Logger | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stopSignal = new AbortController();
  #loop: Promise<void> | undefined;
  #outage: (Outage & { key: string | undefined }) | undefined;
  /** The keys of the batches in hand, each with the batch's end: a later batch waits for them (#holdKeys). */
  readonly #keysInHand = new Map<string, Promise<void>>();

  constructor(stores: Stores, embedder: Embedder, options: WorkerOptions) {
    this.#stores = stores;
    this.#embedder = embedder;
    this.#log = options.logger;
    this.#onHolding = options.onHolding;
    this.#onOutage = options.onOutage;
    this.#runTask = options.runTask;
    this.#options = {
      waitMs: 1000,
      visibilitySeconds: 60,
      batchesInFlight: 2,
      outageBackoff: { firstMs: 1000, longestMs: 300_000 },
      imagePrefix: '',
      idOf: vectorIdOf,
      ...options,
    };
  }

  /** The store that could not be reached and since when; undefined while all answer. */
  get outage(): Outage | undefined {
    if (!this.#outage) return undefined;
    const { store, since, reason } = this.#outage;
    return { store, since, reason };
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
  }

  /** Stops receiving, finishes the batches in hand, and resolves (SIGTERM, Ctrl-C). */
  async stop(): Promise<void> {
    this.#stopSignal.abort();
    await this.#loop;
    if (this.#outage) this.#reportOutage(undefined);
    await this.#outageReported;
  }

  async #run(): Promise<void> {
    const { batchesInFlight } = this.#options;
    while (!this.#stopSignal.signal.aborted) {
      if (this.#outage) {
        await this.#waitOutOutage();
        continue;
      }
      if (this.#inFlight.size >= batchesInFlight) {
        await Promise.race(this.#inFlight);
        continue;
      }
      let messages: ReceivedMessage[];
      try {
        messages = await this.#receive();
      } catch (error) {
        this.#outageSeen({
          store: 'queue',
          since: new Date(),
          reason: asError(error).message,
          key: undefined,
        });
        continue;
      }
      if (messages.length === 0) continue;
      this.#log?.debug({ deliveries: messages.map((m) => m.receiveCount) }, 'batch received');
      if (this.#stopSignal.signal.aborted || this.#outage) {
        await this.#stores.queue.release(
          messages.map((m) => m.receipt),
          this.#outage ? 'uncounted' : 'counted',
        );
        continue;
      }
      await this.#holding(true);
      const batch: Promise<void> = this.#handle(messages)
        .catch((error: unknown) => this.#log?.error({ err: error }, 'batch failed unexpectedly'))
        .finally(() => {
          this.#inFlight.delete(batch);
          if (this.#inFlight.size === 0) return this.#holding(false);
        });
      this.#inFlight.add(batch);
    }
    await Promise.all(this.#inFlight);
  }

  async #holding(holding: boolean): Promise<void> {
    await this.#onHolding?.(holding).catch((error: unknown) =>
      this.#log?.warn({ err: error, holding }, 'could not tell that the worker holds messages'),
    );
  }

  /** Fills one batch: a long poll for the first messages, then whatever is ready at once. */
  async #receive(): Promise<ReceivedMessage[]> {
    const { batchSize, waitMs } = this.#options;
    const messages = await this.#stores.queue.receive(batchSize, waitMs);
    while (messages.length > 0 && messages.length < batchSize && !this.#stopSignal.signal.aborted) {
      const more = await this.#stores.queue.receive(batchSize - messages.length, 0);
      if (more.length === 0) break;
      messages.push(...more);
    }
    return messages;
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopSignal.signal }).catch(() => undefined);
  }

  /**
   * The circuit breaker, open: nothing is received (so no delivery is spent) until every store answers.
   * Pauses double from firstMs to longestMs, each drawn at random between half and all of it, so many
   * workers do not knock on a waking server together.
   */
  async #waitOutOutage(): Promise<void> {
    const { firstMs, longestMs } = this.#options.outageBackoff;
    for (let attempt = 0; this.#outage && !this.#stopSignal.signal.aborted; attempt++) {
      const pause = Math.min(longestMs, firstMs * 2 ** attempt);
      await this.#pause(pause * (0.5 + Math.random() / 2));
      if (this.#stopSignal.signal.aborted) return;
      const outage = await this.#checkStores(this.#outage.key);
      if (outage) {
        this.#log?.warn({ ...outage, since: this.#outage.since }, `${outage.store} still unavailable`);
        this.#reportOutage(this.outage);
        continue;
      }
      const seconds = Math.round((Date.now() - this.#outage.since.getTime()) / 1000);
      this.#log?.info(
        { store: this.#outage.store },
        `${this.#outage.store} available again after ${seconds} s`,
      );
      this.#outage = undefined;
      this.#reportOutage(undefined);
    }
  }

  #outageSeen(outage: Outage & { key: string | undefined }): void {
    if (this.#outage) return;
    this.#outage = outage;
    this.#log?.error(
      { store: outage.store, reason: outage.reason },
      `${outage.store} unavailable: receiving nothing until it answers again`,
    );
    this.#reportOutage(this.outage);
  }

  #reportOutage(outage: Outage | undefined): void {
    const report = this.#onOutage;
    if (!report) return;
    this.#outageReported = this.#outageReported.then(() =>
      report(outage).catch((error: unknown) =>
        this.#log?.warn({ err: error }, 'could not report the outage state'),
      ),
    );
  }

  /**
   * Asks each store something cheap, needing no grant the worker lacks; the first that fails is the
   * outage. `key` is one the batch worked on: the bucket is asked about it, so a policy that allows only
   * the image prefix holds. The thumbnails are not asked: the cloud worker may write them, not read them
   * (infra/ingest.ts), and they share the bucket with the images.
   */
  async #checkStores(key: string | undefined): Promise<(Outage & { key: string | undefined }) | undefined> {
    const { index, catalogue, images, queue } = this.#stores;
    const checks: [Outage['store'], () => Promise<unknown>][] = [
      ['index', () => index.count()],
      ['catalogue', () => catalogue.get(key ?? PROBE_KEY)],
      ['queue', () => queue.depth()],
    ];
    if (key !== undefined) checks.push(['object store', () => images.head(key)]);
    for (const [store, check] of checks) {
      try {
        await check();
      } catch (error) {
        return { store, since: new Date(), reason: asError(error).message, key };
      }
    }
    return undefined;
  }

  /**
   * Throws `error` back when a store is down or too busy for now (a StoreBusyError from `store`), so the
   * batch is handed back; returns when it is the image's own.
   */
  async #rethrowIfOutage(error: unknown, key: string, store?: Outage['store']): Promise<void> {
    const unavailable =
      store && error instanceof StoreBusyError
        ? { store, since: new Date(), reason: error.message, key }
        : undefined;
    const outage = this.#outage ?? unavailable ?? (await this.#checkStores(key));
    if (!outage) return;
    this.#outageSeen(outage);
    throw error;
  }

  async #handle(messages: ReceivedMessage[]): Promise<void> {
    const { queue } = this.#stores;
    const { visibilitySeconds } = this.#options;
    const receipts = messages.map((m) => m.receipt);
    const extend = () =>
      queue.extend(receipts, visibilitySeconds).catch((error: unknown) => {
        this.#log?.warn({ err: error }, 'could not extend the visibility of a batch');
      });
    // The receive hid the batch for the full visibility; the heartbeat covers the rest. A model on this
    // thread (embedded mode) blocks timers while it runs, so one batch's inference must fit in one visibility.
    const heartbeat = setInterval(extend, (visibilitySeconds * 1000) / 3);
    try {
      const malformed = messages.filter((m) => m.malformed !== undefined);
      for (const m of malformed) {
        this.stats.malformed++;
        if (m.receiveCount >= this.#options.maxReceiveCount) this.stats.deadLettered++;
        this.#log?.warn(
          { reason: m.malformed, receiveCount: m.receiveCount },
          'malformed message released for dead-lettering',
        );
      }
      if (malformed.length > 0) await queue.release(malformed.map((m) => m.receipt));
      for (const m of messages) if (m.taskId !== undefined) await this.#task(m, m.taskId);
      const wellFormed = messages.filter((m) => m.malformed === undefined && m.taskId === undefined);
      const jobs = wellFormed.flatMap((m) => m.jobs);
      const keys = [...new Set(jobs.map((job) => job.key))];
      const forced = new Set(jobs.filter((job) => job.kind === 'upsert' && job.force).map((job) => job.key));
      // Only image file names are images, as in backfill and folder ingest; other objects are left alone.
      const isInput = (key: string) => key.startsWith(this.#options.imagePrefix) && isIndexableKey(key);
      const held = this.#holdKeys(keys);
      const outcomes = await held.ready
        .then(() => this.#reconcile(keys.filter(isInput), forced))
        .finally(held.release);
      for (const key of keys) if (!isInput(key)) outcomes.set(key, 'done');
      // Work done: from here on a tick must not undo the back-off set for the messages to retry.
      clearInterval(heartbeat);
      const done: string[] = [];
      const retry: ReceivedMessage[] = [];
      for (const m of wellFormed) {
        const errors = m.jobs.map((job) => outcomes.get(job.key)).filter((o) => o !== 'done');
        if (errors.length === 0) done.push(m.receipt);
        else retry.push(m);
      }
      if (done.length > 0) await queue.ack(done);
      await this.#retryLater(retry, outcomes);
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** One slice of a background task; a failed slice is delivered again after a back-off and resumes. */
  async #task(message: ReceivedMessage, taskId: string): Promise<void> {
    const { queue } = this.#stores;
    try {
      if (!this.#runTask) throw new Error('this worker runs no background tasks');
      await this.#runTask(taskId);
      await queue.ack([message.receipt]);
    } catch (error) {
      this.stats.retried++;
      this.#log?.warn(
        { err: error, taskId, receiveCount: message.receiveCount },
        'task slice failed; it will run again',
      );
      await queue
        .extend(
          [message.receipt],
          Math.min(backoffSeconds(message.receiveCount), this.#options.visibilitySeconds),
        )
        .catch(() => undefined);
    }
  }

  /**
   * One batch at a time a key in this worker: a batch holding a key the batch before it also holds waits
   * for that one to finish (the queue may hand out an upsert and a delete of a key together). Writes of
   * one key never overlap here, so the look again (#recheck) only has other processes to catch.
   */
  #holdKeys(keys: string[]): { ready: Promise<unknown>; release: () => void } {
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const earlier = keys.flatMap((key) => this.#keysInHand.get(key) ?? []);
    for (const key of keys) this.#keysInHand.set(key, mine);
    return {
      ready: Promise.all(earlier),
      release: () => {
        for (const key of keys) if (this.#keysInHand.get(key) === mine) this.#keysInHand.delete(key);
        release();
      },
    };
  }

  /**
   * Messages whose work failed: handed back at once, uncounted, when a store is down (the breaker then
   * waits the outage out); otherwise left for redelivery after a back-off, and on the last delivery the
   * reason is recorded first (the queue then dead-letters the message).
   */
  async #retryLater(messages: ReceivedMessage[], outcomes: Map<string, KeyOutcome>): Promise<void> {
    if (messages.length === 0) return;
    const { catalogue, queue } = this.#stores;
    const errorsOf = (m: ReceivedMessage) =>
      m.jobs.flatMap((job) => {
        const outcome = outcomes.get(job.key);
        return outcome && outcome !== 'done' ? [{ key: job.key, error: outcome.retry }] : [];
      });
    const outage =
      this.#outage ?? (await this.#checkStores(errorsOf(messages[0] as ReceivedMessage)[0]?.key));
    if (outage) {
      this.#outageSeen(outage);
      this.stats.handedBack += messages.length;
      await queue.release(
        messages.map((m) => m.receipt),
        'uncounted',
      );
      return;
    }
    for (const m of messages) {
      this.stats.retried++;
      const errors = errorsOf(m);
      this.#log?.warn(
        { keys: errors.map((e) => e.key), err: errors[0]?.error, receiveCount: m.receiveCount },
        'job failed with every store reachable; it will be delivered again',
      );
      if (m.receiveCount >= this.#options.maxReceiveCount) {
        this.stats.deadLettered++;
        for (const { key, error } of errors) {
          const reason = `Gave up after ${m.receiveCount} attempts: ${error.message}`;
          await catalogue
            .markFailed({ key, id: this.#options.idOf(key), reason })
            .then(() => this.stats.failed++)
            .catch((e: unknown) => this.#log?.error({ err: e, key }, 'could not record a given-up job'));
        }
      }
      await queue
        .extend([m.receipt], Math.min(backoffSeconds(m.receiveCount), this.#options.visibilitySeconds))
        .catch(() => undefined);
    }
  }

  /** Brings the index in line with the bucket for each key; a key that nothing set to retry is done. */
  async #reconcile(keys: string[], forced: Set<string>): Promise<Map<string, KeyOutcome>> {
    const outcomes = new Map<string, KeyOutcome>();
    const retryAll = (list: string[], error: unknown) => {
      for (const key of list) outcomes.set(key, { retry: asError(error) });
    };
    // Taken before the objects are read: whatever they are found to be is at least this new.
    const version = versionNow();
    const { claimed, gone, refused } = await this.#downloadAndClaim(keys, forced, retryAll, version).catch(
      (error: unknown) => {
        retryAll(keys, error);
        return { claimed: [] as Claimed[], gone: [] as string[], refused: [] as Written[] };
      },
    );
    const written: Written[] = [...refused];
    try {
      // Keys refused after their vector was deleted: a newer write came in between, and may have lost its vector.
      const redo = await forgetImages(this.#stores, this.#options.idOf, gone, version);
      await this.#requeue(redo, 'a newer write came while these were removed');
      this.stats.removed += gone.length - redo.length;
      written.push(...gone.filter((key) => !redo.includes(key)).map((key) => ({ key, etag: undefined })));
    } catch (error) {
      retryAll(gone, error);
    }
    if (claimed.length > 0) {
      try {
        const current = await this.#index(claimed, version);
        written.push(...current.map((item) => ({ key: item.key, etag: item.object.etag })));
      } catch (error) {
        retryAll(
          claimed.map((item) => item.key),
          error,
        );
      }
    }
    await this.#recheck(written).catch((error: unknown) =>
      retryAll(
        written.map((w) => w.key),
        error,
      ),
    );
    for (const key of keys) if (!outcomes.has(key)) outcomes.set(key, 'done');
    return outcomes;
  }

  /**
   * Looks at each written key's object again: one that changed meanwhile (or came or went) is queued
   * again with `force`. A write of this worker may have landed after a newer one (another batch, another
   * worker, a delete through the API), and the record may then describe a vector that is not in the
   * index; the forced job embeds what the bucket holds at its time and checks again.
   */
  async #recheck(written: Written[]): Promise<void> {
    const { images } = this.#stores;
    const current = await Promise.all(written.map(({ key }) => images.head(key)));
    const moved = written.filter((w, i) => current[i]?.etag !== w.etag).map((w) => w.key);
    await this.#requeue(moved, 'the bucket changed while these were written');
  }

  /** Queues the keys again with `force`: the forced job embeds what the bucket holds at its time. */
  async #requeue(keys: string[], why: string): Promise<void> {
    if (keys.length === 0) return;
    await this.#stores.queue.send(keys.map((key): Job => ({ kind: 'upsert', key, force: true })));
    this.stats.requeued += keys.length;
    this.#log?.info({ keys }, `${why}: queued again`);
  }

  /**
   * The images of the batch that are still current after embedding, checked before anything is
   * committed: an image whose key holds a newer version in the catalogue is left to that write (it
   * looks again after its own write); one whose object changed meanwhile is queued again. Neither is
   * written, so no stale vector replaces a newer one. A delete-all that emptied the library since the
   * look keeps its photos out (isKeptOut), as it would have had it come before the look.
   */
  async #stillCurrent(batch: Claimed[], version: Version): Promise<Claimed[]> {
    const { images, catalogue, tasks } = this.#stores;
    const keys = batch.map((item) => item.key);
    const [versions, objects, clearedAt] = await Promise.all([
      catalogue.versions(keys),
      Promise.all(keys.map((key) => images.head(key))),
      tasks.clearedAt(),
    ]);
    const emptiedSinceLook = clearedAt !== undefined && clearedAt.getTime() * 1000 > version;
    const records = emptiedSinceLook ? await catalogue.getMany(keys) : new Map<string, ImageRecord>();
    const keptOut = emptiedSinceLook
      ? batch.filter((item) => isKeptOut(item.object, records.get(item.key), clearedAt))
      : [];
    this.stats.keptOut += keptOut.length;
    const superseded = batch.filter(
      (item) => !keptOut.includes(item) && (versions.get(item.key) ?? 0) > version,
    );
    const moved = batch.filter(
      (item, i) =>
        !keptOut.includes(item) && !superseded.includes(item) && objects[i]?.etag !== item.object.etag,
    );
    this.stats.superseded += superseded.length;
    await this.#requeue(
      moved.map((item) => item.key),
      'the bucket changed while these were embedded',
    );
    return batch.filter(
      (item) => !keptOut.includes(item) && !superseded.includes(item) && !moved.includes(item),
    );
  }

  /**
   * Downloads the objects and claims the ids of those to (re)index: `gone` are keys whose object no longer
   * exists; a failed download sets its key to retry; keys already indexed with this content (unless
   * `forced`), or whose id belongs to another key, are in neither list (nothing to do). One GET an object,
   * not a HEAD and then a GET: the etag recorded is that of the very bytes embedded. The catalogue is read
   * once for the whole batch. Only ids not yet owned are claimed (a pending or indexed record owns its id),
   * and no pending state is written: the next record is the outcome, and the queue's in-flight count shows
   * the batch meanwhile (docs/cloud.md, DynamoDB table).
   */
  async #downloadAndClaim(
    keys: string[],
    forced: Set<string>,
    retry: (keys: string[], error: unknown) => void,
    version: Version,
  ): Promise<{ claimed: Claimed[]; gone: string[]; refused: Written[] }> {
    const { images, catalogue } = this.#stores;
    const found: ObjectWithBody[] = [];
    const gone: string[] = [];
    const refused: { key: string; reason: string }[] = [];
    await Promise.all(
      keys.map(async (key) => {
        try {
          found.push(await images.get(key));
        } catch (error) {
          if (error instanceof NotFoundError) gone.push(key);
          // Refused by the store before download (too large): no retry can change that.
          else if (error instanceof ImageError) refused.push({ key, reason: error.message });
          else retry([key], error);
        }
      }),
    );
    // Failed like a file that does not decode: its old vector and thumbnail go (claimed first, so only its
    // own). Its version is read at once for the look again (#recheck): a newer one's own job comes after.
    const refusedEntries = refused.map(({ key, reason }) => ({ key, id: this.#options.idOf(key), reason }));
    const refusedWon = await claimAll(catalogue, refusedEntries, 'claim-only');
    const failed = refusedEntries.filter((_, i) => refusedWon[i]);
    const refusedVersions = await Promise.all(
      failed.map(async ({ key }): Promise<Written> => ({ key, etag: (await images.head(key))?.etag })),
    );
    await this.#fail(failed, version);
    const [records, clearedAt] = await Promise.all([
      catalogue.getMany(found.map((object) => object.key)),
      this.#stores.tasks.clearedAt(),
    ]);
    const changed = found.filter((object) => {
      if (forced.has(object.key)) return true;
      const record = records.get(object.key);
      if (isKeptOut(object, record, clearedAt)) {
        this.stats.keptOut++;
        return false;
      }
      if (!isIndexed(record, object.etag, this.#embedder.info, clearedAt)) return true;
      this.stats.unchanged++;
      return false;
    });
    const entries = changed.map((object) => ({
      key: object.key,
      id: this.#options.idOf(object.key),
      object,
    }));
    const owns = (entry: (typeof entries)[number]) => {
      const record = records.get(entry.key);
      return record !== undefined && ownsItsId(record) && record.id === entry.id;
    };
    const toClaim = entries.filter((entry) => !owns(entry));
    const won = await claimAll(catalogue, toClaim, 'claim-only');
    const lost = new Set(toClaim.filter((_, i) => !won[i]));
    for (const entry of lost) {
      this.stats.failed++;
      this.#log?.warn({ key: entry.key, id: entry.id }, 'vector id collision recorded');
    }
    return { claimed: entries.filter((entry) => !lost.has(entry)), gone, refused: refusedVersions };
  }

  /**
   * Embeds the batch and writes vectors, thumbnails and catalogue entries of the images still current
   * (#stillCurrent), which it returns. Each image that fails on its
   * own (decode, thumbnail, vector or record write) is recorded failed with its reason and its old vector
   * and thumbnail removed: the index never serves content the bucket no longer holds. Throws when a store
   * is down (the whole batch is then handed back).
   */
  async #index(batch: Claimed[], version: Version): Promise<Claimed[]> {
    const { index, catalogue, thumbnails } = this.#stores;
    const { model, profile } = this.#embedder.info;
    // Each image is decoded once, for its vector and its thumbnail together.
    const outcomes = await this.#embedder.embed(
      batch.map((item) => item.object.body),
      { thumbnails: true },
    );
    const current = new Set(await this.#stillCurrent(batch, version));
    const failed: { item: Claimed; reason: string }[] = [];
    const embedded: Embedded[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const item = batch[i] as Claimed;
      if (!current.has(item)) continue;
      if (outcome.ok) embedded.push({ item, vector: outcome.vector, thumbnail: outcome.thumbnail });
      else failed.push({ item, reason: outcome.reason });
    }
    const withVector = await this.#writeEachAlone(
      embedded,
      failed,
      ['index', 'Its vector could not be written'],
      (part) =>
        index.upsert(
          part.map(({ item, vector }) => ({ id: item.id, key: item.key, etag: item.object.etag, vector })),
        ),
    );
    const withThumbnail = await this.#writeEachAlone(
      withVector,
      failed,
      ['object store', 'Its thumbnail could not be stored'],
      async ([entry]) => {
        if (!entry?.thumbnail) return this.#log?.warn({ key: entry?.item.key }, 'no thumbnail could be made');
        await thumbnails.put(thumbnailKeyOf(entry.item.key), entry.thumbnail, THUMBNAIL_CONTENT_TYPE);
      },
      1,
    );
    // A record refused as stale is left to the newer write; the look again (#recheck) sees what it did.
    const stale = new Set<string>();
    const recorded = await this.#writeEachAlone(
      withThumbnail,
      failed,
      ['catalogue', 'Its record could not be written'],
      async (part) => {
        const refused = await catalogue.markIndexed(
          part.map(({ item }) => ({
            key: item.key,
            id: item.id,
            etag: item.object.etag,
            model,
            profile,
            version,
          })),
        );
        for (const key of refused) stale.add(key);
      },
    );
    const indexed = recorded.filter(({ item }) => !stale.has(item.key));
    this.stats.indexed += indexed.length;
    this.stats.superseded += stale.size;
    if (indexed.length > 0) this.#log?.debug({ keys: indexed.map(({ item }) => item.key) }, 'indexed');
    await this.#fail(
      failed.map(({ item, reason }) => ({ key: item.key, id: item.id, reason })),
      version,
    );
    return [...current];
  }

  /**
   * Writes the entries `size` at a time (all at once by default) to `store`; a write that fails with every
   * store reachable is tried again for each entry alone, so only the entries that fail on their own are
   * moved to `failed`, with the reason (`what` failed). Returns the entries written.
   */
  async #writeEachAlone<E extends { item: Claimed }>(
    entries: E[],
    failed: { item: Claimed; reason: string }[],
    [store, what]: [Outage['store'], string],
    write: (part: E[]) => Promise<unknown>,
    size = entries.length,
  ): Promise<E[]> {
    const written: E[] = [];
    for (let start = 0; start < entries.length; start += size) {
      const part = entries.slice(start, start + size);
      try {
        await write(part);
        written.push(...part);
        continue;
      } catch (error) {
        await this.#rethrowIfOutage(error, (part[0] as E).item.key, store);
        if (part.length === 1) {
          failed.push({ item: (part[0] as E).item, reason: `${what}: ${asError(error).message}` });
          continue;
        }
      }
      written.push(...(await this.#writeEachAlone(part, failed, [store, what], write, 1)));
    }
    return written;
  }

  /**
   * Records each image failed with its reason, after removing what it had in the index and thumbnails.
   * Each key owns its id (claimed), so no other key's vector is removed. A failure refused as stale
   * (a newer write came in between, whose vector this may have removed) is queued again.
   */
  async #fail(failed: { key: string; id: string; reason: string }[], version: Version): Promise<void> {
    if (failed.length === 0) return;
    const { index, catalogue, thumbnails } = this.#stores;
    await index.delete(failed.map(({ id }) => id));
    await Promise.all(failed.map(({ key }) => thumbnails.delete(thumbnailKeyOf(key))));
    const stale: string[] = [];
    for (const entry of failed) {
      if (!(await catalogue.markFailed({ ...entry, version }))) {
        stale.push(entry.key);
        continue;
      }
      this.stats.failed++;
      this.#log?.info({ key: entry.key, reason: entry.reason }, 'image failed');
    }
    await this.#requeue(stale, 'a newer write came while these were recorded failed');
  }
}

/** 1, 2, 4 … 60 seconds. */
function backoffSeconds(attempt: number): number {
  return Math.min(60, 2 ** Math.max(0, attempt - 1));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
