import { Worker } from 'node:worker_threads';
import { ImageError, type ImageErrorKind } from '../domain/errors.ts';
import type { Embedder, EmbedderInfo, EmbedOutcome, EmbedTimings } from '../domain/ports.ts';
import { type LoadedManifest, loadManifest } from '../model/manifest.ts';
import type { OnnxEmbedderOptions } from './onnx-embedder.ts';

/** The OnnxEmbedder options that cross the thread boundary (a pino logger cannot). */
export type ThreadedEmbedderOptions = Pick<
  OnnxEmbedderOptions,
  'batchSize' | 'intraOpNumThreads' | 'limits' | 'executionProviders' | 'requireGpu' | 'profile'
> & {
  /** The thread logs through its own logger (src/logger.ts) with these settings; silent when absent. */
  log?: { level?: string; name?: string; pretty?: boolean };
};

export interface ThreadStart {
  loaded: LoadedManifest;
  options: Omit<ThreadedEmbedderOptions, 'log'>;
  log?: ThreadedEmbedderOptions['log'];
}

export type ThreadRequest = { id: number } & (
  | { op: 'embed'; images: Uint8Array[] }
  | { op: 'embedOne'; image: Uint8Array }
  | { op: 'close' }
);

export type ThreadReply =
  | { type: 'ready'; info: EmbedderInfo }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; message: string; kind?: ImageErrorKind };

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * The thread's entry module. From source (tsx) it is embedder-thread.ts, started through a bootstrap that
 * registers tsx, because Node 20 does not apply the parent's `--import tsx` hooks to a worker's entry.
 * From a bundle (the worker container's dist/worker.mjs) it is the sibling bundle dist/embedder-thread.mjs.
 */
function threadEntry(): { source: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith('.ts'))
    return { source: new URL('./embedder-thread.mjs', import.meta.url), eval: false };
  const entry = new URL('./embedder-thread.ts', import.meta.url);
  return {
    source: `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`,
    eval: true,
  };
}

/**
 * The Embedder port over an OnnxEmbedder on a worker thread: inference (synchronous inside
 * onnxruntime-node) no longer blocks this thread's event loop. Images are copied to the thread (the
 * caller still uses them, e.g. for thumbnails); vectors are transferred back.
 */
export class ThreadedEmbedder implements Embedder {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #failure: Error | undefined;

  private constructor(
    worker: Worker,
    readonly info: EmbedderInfo,
  ) {
    this.#worker = worker;
    worker.on('message', (reply: ThreadReply) => this.#settle(reply));
    worker.on('error', (error) => this.#fail(new Error(`The embedder thread crashed: ${error.message}`)));
    worker.on('exit', (code) => this.#fail(new Error(`The embedder thread exited (code ${code}).`)));
  }

  static async create(
    manifest: string | LoadedManifest,
    options: ThreadedEmbedderOptions = {},
  ): Promise<ThreadedEmbedder> {
    const loaded = typeof manifest === 'string' ? await loadManifest(manifest) : manifest;
    const { log, ...rest } = options;
    const start: ThreadStart = { loaded, options: rest, ...(log ? { log } : {}) };
    const entry = threadEntry();
    const worker = new Worker(entry.source, { eval: entry.eval, workerData: start });
    const info = await new Promise<EmbedderInfo>((resolve, reject) => {
      const onExit = (code: number) =>
        reject(new Error(`The embedder thread exited (code ${code}) before it was ready.`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (reply: ThreadReply) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (reply.type === 'ready') resolve(reply.info);
        else reject(new Error(`The embedder thread sent ${reply.type} before it was ready.`));
      });
    });
    return new ThreadedEmbedder(worker, info);
  }

  embed(images: Uint8Array[]): Promise<EmbedOutcome[]> {
    return this.#call({ op: 'embed', images }) as Promise<EmbedOutcome[]>;
  }

  embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }> {
    return this.#call({ op: 'embedOne', image }) as Promise<{ vector: Float32Array; timings: EmbedTimings }>;
  }

  async close(): Promise<void> {
    if (this.#failure) return;
    await this.#call({ op: 'close' });
    await this.#worker.terminate();
  }

  #call(
    request: { op: 'embed'; images: Uint8Array[] } | { op: 'embedOne'; image: Uint8Array } | { op: 'close' },
  ) {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...request } satisfies ThreadRequest);
    });
  }

  #settle(reply: ThreadReply): void {
    if (reply.type === 'ready') return;
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    if (reply.type === 'result') pending.resolve(reply.value);
    else pending.reject(reply.kind ? new ImageError(reply.message, reply.kind) : new Error(reply.message));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
