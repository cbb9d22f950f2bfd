import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { NotFoundError } from '../domain/errors.ts';
import { ownsItsId, vectorIdOf } from '../domain/ids.ts';
import type { Embedder, ObjectWithBody, ReceivedMessage } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import { claimAll, forgetImages, type IdOf, isIndexed, type Stores } from './indexing.ts';
import { THUMBNAIL_CONTENT_TYPE, thumbnailKeyOf } from './keys.ts';

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
  /** Test seam for hash collisions. @default vectorIdOf */
  idOf?: IdOf;
  logger?: Logger;
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
  /** Messages left for redelivery after an infrastructure error. */
  retried: number;
  /** Messages that could not be understood. */
  malformed: number;
}

type KeyOutcome = 'done' | { retry: Error };

interface Claimed {
  key: string;
  id: string;
  object: ObjectWithBody;
}

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
 * Policies:
 * - a bad image is recorded as failed with its reason and acked (retrying cannot fix it);
 * - an infrastructure error (index, catalogue or store unreachable) leaves the message unacked, hidden
 *   for a back-off, to be delivered again; on its last allowed delivery the reason is recorded in the
 *   catalogue first, then the queue dead-letters it;
 * - a malformed message is logged and released at once, so its deliveries run out quickly and the queue
 *   dead-letters it with the parse error as its reason (it names no key, so the catalogue cannot hold it);
 * - a message with no jobs (S3's s3:TestEvent) is acked.
 */
export class Worker {
  readonly stats: WorkerStats = { indexed: 0, failed: 0, removed: 0, unchanged: 0, retried: 0, malformed: 0 };
  readonly #stores: Stores;
  readonly #embedder: Embedder;
  readonly #options: Required<Omit<WorkerOptions, 'logger'>>;
  readonly #log: Logger | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stopSignal = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(stores: Stores, embedder: Embedder, options: WorkerOptions) {
    this.#stores = stores;
    this.#embedder = embedder;
    this.#log = options.logger;
    this.#options = {
      waitMs: 1000,
      visibilitySeconds: 60,
      batchesInFlight: 2,
      idOf: vectorIdOf,
      ...options,
    };
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
  }

  /** Stops receiving, finishes the batches in hand, and resolves (SIGTERM, Ctrl-C). */
  async stop(): Promise<void> {
    this.#stopSignal.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { batchesInFlight } = this.#options;
    let failures = 0;
    while (!this.#stopSignal.signal.aborted) {
      if (this.#inFlight.size >= batchesInFlight) {
        await Promise.race(this.#inFlight);
        continue;
      }
      let messages: ReceivedMessage[];
      try {
        messages = await this.#receive();
        failures = 0;
      } catch (error) {
        failures++;
        this.#log?.error({ err: error }, 'receiving from the queue failed; retrying');
        await this.#pause(backoffSeconds(failures) * 1000);
        continue;
      }
      if (messages.length === 0) continue;
      this.#log?.debug({ deliveries: messages.map((m) => m.receiveCount) }, 'batch received');
      if (this.#stopSignal.signal.aborted) {
        await this.#stores.queue.release(messages.map((m) => m.receipt));
        break;
      }
      const batch: Promise<void> = this.#handle(messages)
        .catch((error: unknown) => this.#log?.error({ err: error }, 'batch failed unexpectedly'))
        .finally(() => this.#inFlight.delete(batch));
      this.#inFlight.add(batch);
    }
    await Promise.all(this.#inFlight);
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
        this.#log?.warn(
          { reason: m.malformed, receiveCount: m.receiveCount },
          'malformed message released for dead-lettering',
        );
      }
      if (malformed.length > 0) await queue.release(malformed.map((m) => m.receipt));
      const wellFormed = messages.filter((m) => m.malformed === undefined);
      const keys = [...new Set(wellFormed.flatMap((m) => m.jobs.map((job) => job.key)))];
      // Only image file names are images, as in backfill and folder ingest; other objects are left alone.
      const outcomes = await this.#reconcile(keys.filter(isImageKey));
      for (const key of keys) if (!isImageKey(key)) outcomes.set(key, 'done');
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

  /** Leaves failed messages for redelivery after a back-off; on the last delivery, records why first. */
  async #retryLater(messages: ReceivedMessage[], outcomes: Map<string, KeyOutcome>): Promise<void> {
    const { catalogue, queue } = this.#stores;
    for (const m of messages) {
      this.stats.retried++;
      const errors = m.jobs.flatMap((job) => {
        const outcome = outcomes.get(job.key);
        return outcome && outcome !== 'done' ? [{ key: job.key, error: outcome.retry }] : [];
      });
      this.#log?.warn(
        { keys: errors.map((e) => e.key), err: errors[0]?.error, receiveCount: m.receiveCount },
        'job failed on an infrastructure error; it will be delivered again',
      );
      if (m.receiveCount >= this.#options.maxReceiveCount) {
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
  async #reconcile(keys: string[]): Promise<Map<string, KeyOutcome>> {
    const outcomes = new Map<string, KeyOutcome>();
    const retryAll = (list: string[], error: unknown) => {
      for (const key of list) outcomes.set(key, { retry: asError(error) });
    };
    const { claimed, gone } = await this.#downloadAndClaim(keys, retryAll).catch((error: unknown) => {
      retryAll(keys, error);
      return { claimed: [] as Claimed[], gone: [] as string[] };
    });
    try {
      await forgetImages(this.#stores, this.#options.idOf, gone);
      this.stats.removed += gone.length;
    } catch (error) {
      retryAll(gone, error);
    }
    if (claimed.length > 0) {
      await this.#index(claimed).catch((error: unknown) =>
        retryAll(
          claimed.map((item) => item.key),
          error,
        ),
      );
    }
    for (const key of keys) if (!outcomes.has(key)) outcomes.set(key, 'done');
    return outcomes;
  }

  /**
   * Downloads the objects and claims the ids of those to (re)index: `gone` are keys whose object no longer
   * exists; a failed download sets its key to retry; keys already indexed with this content, or whose id
   * belongs to another key, are in neither list (nothing to do). One GET an object, not a HEAD and then a
   * GET: the etag recorded is that of the very bytes embedded, and a re-delivery (rare) pays a download it
   * did not need. The catalogue is read once for the whole batch. Only ids not yet owned are claimed (a
   * pending or indexed record owns its id), and no pending state is written: the next record is the
   * outcome, and the queue's in-flight count shows the batch meanwhile: one DynamoDB write fewer for a
   * photo dropped into the bucket, four requests fewer for one queued by ingest (docs/cloud.md, DynamoDB table).
   */
  async #downloadAndClaim(
    keys: string[],
    retry: (keys: string[], error: unknown) => void,
  ): Promise<{ claimed: Claimed[]; gone: string[] }> {
    const { images, catalogue } = this.#stores;
    const found: ObjectWithBody[] = [];
    const gone: string[] = [];
    await Promise.all(
      keys.map(async (key) => {
        try {
          found.push(await images.get(key));
        } catch (error) {
          if (error instanceof NotFoundError) gone.push(key);
          else retry([key], error);
        }
      }),
    );
    const records = await catalogue.getMany(found.map((object) => object.key));
    const changed = found.filter((object) => {
      if (!isIndexed(records.get(object.key), object.etag, this.#embedder.info)) return true;
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
    return { claimed: entries.filter((entry) => !lost.has(entry)), gone };
  }

  /** Embeds the batch, writes vectors, thumbnails and catalogue entries; bad images are recorded failed. */
  async #index(batch: Claimed[]): Promise<void> {
    const { index, catalogue, thumbnails } = this.#stores;
    const { model, profile } = this.#embedder.info;
    // Each image is decoded once, for its vector and its thumbnail together.
    const outcomes = await this.#embedder.embed(
      batch.map((item) => item.object.body),
      { thumbnails: true },
    );
    const good: { item: Claimed; vector: Float32Array; thumbnail: Uint8Array | undefined }[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const item = batch[i] as Claimed;
      if (outcome.ok) {
        good.push({ item, vector: outcome.vector, thumbnail: outcome.thumbnail });
        continue;
      }
      await catalogue.markFailed({ key: item.key, id: item.id, reason: outcome.reason });
      this.stats.failed++;
      this.#log?.info({ key: item.key, code: outcome.code, reason: outcome.reason }, 'image failed');
    }
    if (good.length === 0) return;
    await index.upsert(good.map(({ item, vector }) => ({ id: item.id, key: item.key, vector })));
    await Promise.all(
      good.map(({ item, thumbnail }) =>
        thumbnail
          ? thumbnails.put(thumbnailKeyOf(item.key), thumbnail, THUMBNAIL_CONTENT_TYPE)
          : this.#log?.warn({ key: item.key }, 'no thumbnail could be made'),
      ),
    );
    await catalogue.markIndexed(
      good.map(({ item }) => ({ key: item.key, id: item.id, etag: item.object.etag, model, profile })),
    );
    this.stats.indexed += good.length;
    this.#log?.debug({ keys: good.map(({ item }) => item.key) }, 'indexed');
  }
}

/** 1, 2, 4 … 60 seconds. */
function backoffSeconds(attempt: number): number {
  return Math.min(60, 2 ** Math.max(0, attempt - 1));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
