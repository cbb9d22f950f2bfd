import { TooBusyError } from '../domain/errors.ts';
import type { Embedder, EmbedderInfo, EmbedOptions, EmbedOutcome, EmbedTimings } from '../domain/ports.ts';

export interface AdmissionLimits {
  /** Query images decoded and embedded at once. */
  running: number;
  /** Query images that may wait for a turn; one more is refused with TooBusyError (429). */
  queued: number;
  /** What Retry-After tells a refused caller. @default 1 */
  retryAfterSeconds?: number;
}

/**
 * Admission control for searches: a bounded queue in front of the search embedder. Without it a burst
 * of large query images piles up decodes without limit (memory, and every caller slowed alike); with it
 * the excess is told at once to come back later. Batches (embed) are the worker's and pass unbounded;
 * a search by every orientation (one batch of 8) takes one turn.
 */
export class AdmittingEmbedder implements Embedder {
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    private readonly inner: Embedder,
    private readonly limits: AdmissionLimits,
  ) {}

  get info(): EmbedderInfo {
    return this.inner.info;
  }

  embed(images: Uint8Array[], options?: EmbedOptions): Promise<EmbedOutcome[]> {
    return this.inner.embed(images, options);
  }

  embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }> {
    return this.#admit(() => this.inner.embedOne(image));
  }

  embedOrientations(image: Uint8Array): Promise<{ vectors: Float32Array[]; timings: EmbedTimings }> {
    return this.#admit(() => this.inner.embedOrientations(image));
  }

  async #admit<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limits.running) {
      if (this.#waiting.length >= this.limits.queued) {
        throw new TooBusyError(
          `The service is busy with ${this.#running + this.#waiting.length} searches; try again shortly.`,
          this.limits.retryAfterSeconds ?? 1,
        );
      }
      await new Promise<void>((turn) => this.#waiting.push(turn));
    } else this.#running++;
    try {
      return await task();
    } finally {
      // The turn passes straight to the next waiter, so #running never dips and lets a newcomer jump ahead.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
