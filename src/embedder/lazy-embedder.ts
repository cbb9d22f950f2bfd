import type { Embedder, EmbedderInfo, EmbedOptions, EmbedOutcome, EmbedTimings } from '../domain/ports.ts';

/**
 * An embedder whose model is opened on first use. Lambda functions that never embed (count, progress,
 * delete, ingest, uploads, images) still need the model's identity to check and stamp records, but not
 * its ONNX session: this saves them the load at cold start and its memory. `info` is stated up front
 * (from the manifest) and checked against the opened model.
 */
export class LazyEmbedder implements Embedder {
  readonly #open: () => Promise<Embedder>;
  #opened: Promise<Embedder> | undefined;

  constructor(
    readonly info: EmbedderInfo,
    open: () => Promise<Embedder>,
  ) {
    this.#open = open;
  }

  /** True once the model has been asked for. */
  get opened(): boolean {
    return this.#opened !== undefined;
  }

  async embed(images: Uint8Array[], options?: EmbedOptions): Promise<EmbedOutcome[]> {
    return (await this.#embedder()).embed(images, options);
  }

  async embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }> {
    return (await this.#embedder()).embedOne(image);
  }

  async embedOrientations(image: Uint8Array): Promise<{ vectors: Float32Array[]; timings: EmbedTimings }> {
    return (await this.#embedder()).embedOrientations(image);
  }

  async close(): Promise<void> {
    const opened = this.#opened;
    this.#opened = undefined;
    await opened?.then(
      (embedder) => embedder.close(),
      () => undefined,
    );
  }

  /** Opens once; a failed open is not kept, so the next call tries again. */
  #embedder(): Promise<Embedder> {
    if (this.#opened) return this.#opened;
    const opening = this.#open().then((embedder) => this.#checked(embedder));
    this.#opened = opening;
    opening.catch(() => {
      if (this.#opened === opening) this.#opened = undefined;
    });
    return opening;
  }

  async #checked(embedder: Embedder): Promise<Embedder> {
    const { model, profile, dimension, provider } = embedder.info;
    const stated = this.info;
    if (
      model === stated.model &&
      profile === stated.profile &&
      dimension === stated.dimension &&
      provider === stated.provider
    )
      return embedder;
    await embedder.close();
    throw new Error(
      `the opened model is ${model}/${profile}/${dimension}-d on ${provider}, not the stated ${stated.model}/${stated.profile}/${stated.dimension}-d on ${stated.provider}`,
    );
  }
}
