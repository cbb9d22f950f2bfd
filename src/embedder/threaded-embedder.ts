import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ImageError, type ImageErrorKind } from '../domain/errors.ts';
import type { Embedder, EmbedderInfo, EmbedOptions, EmbedOutcome, EmbedTimings } from '../domain/ports.ts';
import { type LoadedManifest, loadManifest } from '../model/manifest.ts';
import type { ExecutionProvider, OnnxEmbedderOptions } from './onnx-embedder.ts';

/** The OnnxEmbedder options that cross the thread boundary (a pino logger cannot). */
export type ThreadedEmbedderOptions = Pick<
  OnnxEmbedderOptions,
  'batchSize' | 'intraOpNumThreads' | 'limits' | 'executionProviders' | 'requireGpu' | 'profile' | 'fallback'
> & {
  /** The threads log through their own loggers (src/logger.ts) with these settings; silent when absent. */
  log?: { level?: string; name?: string; pretty?: boolean };
  /** Model sessions, each on its own thread with `intraOpNumThreads` threads. @default 1 */
  sessions?: number;
  /**
   * Linux: each session's thread (and the inference threads it starts) runs this much nicer than the
   * process, so the thread that answers HTTP gets a core first while models run. @default 0
   */
  niceIncrement?: number;
  /** A crashed session's thread is started again at most `count` times within `windowMs`. @default 3 in 10 minutes */
  restarts?: { count: number; windowMs: number };
  /** Told of each restart (the service logs it). */
  onRestart?: (error: Error, restartsInWindow: number) => void;
  /**
   * Called once when a session crashed more often than `restarts` allows (or could not be started
   * again); every later call is rejected. The services log it and exit so their supervisor restarts them.
   */
  onGiveUp?: (error: Error) => void;
};

type ThreadCallbacks = 'log' | 'sessions' | 'restarts' | 'onRestart' | 'onGiveUp';

export interface ThreadStart {
  loaded: LoadedManifest;
  options: Omit<ThreadedEmbedderOptions, ThreadCallbacks>;
  log?: ThreadedEmbedderOptions['log'];
}

export type ThreadRequest = { id: number } & (
  | { op: 'embed'; images: Uint8Array[]; options: EmbedOptions }
  | { op: 'embedOne'; image: Uint8Array }
  | { op: 'embedOrientations'; image: Uint8Array }
  | { op: 'close' }
  | { op: 'crash' }
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
  // Resolved here: a worker's eval code resolves bare names from the process's cwd, which need not be the
  // checkout (`npx pic-search` run from another folder).
  const tsx = import.meta.resolve('tsx/esm/api');
  return {
    source: `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`,
    eval: true,
  };
}

const DEFAULT_RESTARTS = { count: 3, windowMs: 10 * 60_000 };

/** Exit status of a service whose embedder gave up (EX_SOFTWARE): its supervisor starts it again. */
export const EMBEDDER_GAVE_UP_EXIT_CODE = 70;

/**
 * The services' policy for crashed sessions: each restart is logged as an error; past the bound, one
 * fatal line says why and the process exits, so systemd, Docker or ECS start a fresh one rather than
 * the service answering every later request with the same error.
 */
export function restartOrExit(
  log: Logger | undefined,
): Required<Pick<ThreadedEmbedderOptions, 'onRestart' | 'onGiveUp'>> {
  return {
    onRestart: (error, restarts) =>
      log?.error({ err: error, restarts }, 'an embedder thread crashed; it was started again'),
    onGiveUp: (error) => {
      log?.fatal(
        { err: error },
        `the embedder gave up; exiting (${EMBEDDER_GAVE_UP_EXIT_CODE}) to be restarted`,
      );
      process.exit(EMBEDDER_GAVE_UP_EXIT_CODE);
    },
  };
}

/** Sessions a CPU ingest embedder opens by default: one per thread up to this (each holds the model, ≈ 270 MB RSS). */
const DEFAULT_CPU_SESSIONS = 4;

/**
 * How the ingest embedder spreads `threads` cores over sessions: on the CPU, one single-threaded session
 * per core (up to DEFAULT_CPU_SESSIONS, the threads shared among them); with CUDA, one session that takes
 * whole batches. `sessions` overrides the count (PIC_INGEST_SESSIONS).
 */
export function ingestSessions(
  threads: number,
  providers: readonly ExecutionProvider[],
  sessions?: number,
): { sessions: number; intraOpNumThreads: number } {
  const count = sessions ?? (providers.includes('cuda') ? 1 : Math.min(threads, DEFAULT_CPU_SESSIONS));
  return { sessions: count, intraOpNumThreads: Math.max(1, Math.floor(threads / count)) };
}

type Call =
  | { op: 'embed'; images: Uint8Array[]; options: EmbedOptions }
  | { op: 'embedOne' | 'embedOrientations'; image: Uint8Array }
  | { op: 'close' }
  | { op: 'crash' };

/** One OnnxEmbedder on its own worker thread, with its calls in flight. */
class ModelThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #failure: Error | undefined;
  #closing = false;
  readonly #gone: Promise<Error>;

  private constructor(
    worker: Worker,
    readonly info: EmbedderInfo,
  ) {
    this.#worker = worker;
    let gone: (error: Error) => void = () => undefined;
    this.#gone = new Promise<Error>((resolve) => {
      gone = resolve;
    });
    const fail = (error: Error) => {
      this.#failure ??= error;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
      if (!this.#closing) gone(this.#failure);
    };
    worker.on('message', (reply: ThreadReply) => this.#settle(reply));
    worker.on('error', (error) => fail(new Error(`The embedder thread crashed: ${error.message}`)));
    worker.on('exit', (code) => fail(new Error(`The embedder thread exited (code ${code}).`)));
  }

  static async start(start: ThreadStart): Promise<ModelThread> {
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
    return new ModelThread(worker, info);
  }

  /** Why the thread is gone (crashed, exited); every call after it is rejected with it. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Settles with the reason when the thread dies other than by close(). */
  get crashed(): Promise<Error> {
    return this.#gone;
  }

  call(request: Call): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...request } satisfies ThreadRequest);
    });
  }

  async close(): Promise<void> {
    if (this.#failure) return;
    this.#closing = true;
    await this.call({ op: 'close' });
    await this.#worker.terminate();
  }

  #settle(reply: ThreadReply): void {
    if (reply.type === 'ready') return;
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    if (reply.type === 'result') pending.resolve(reply.value);
    else pending.reject(reply.kind ? new ImageError(reply.message, reply.kind) : new Error(reply.message));
  }
}

interface Task extends Pending {
  request: Exclude<Call, { op: 'close' }>;
}

/**
 * The Embedder port over OnnxEmbedder sessions on worker threads: inference (synchronous inside
 * onnxruntime-node) no longer blocks this thread's event loop. Images are copied to the threads (the
 * caller still uses them, e.g. for thumbnails); vectors are transferred back.
 *
 * With one session a batch goes to it whole (a GPU wants batches). With several, each image is a task
 * that whichever session is free takes next, so a session whose core is taken by a neighbour (the
 * worker's own I/O, the thumbnails) holds up no other: one session's threads wait for each other at
 * every operator, and on a shared core that wait is CPU lost (docs/models.md, ingest sessions).
 */
export class ThreadedEmbedder implements Embedder {
  readonly #threads: ModelThread[];
  readonly #idle: ModelThread[];
  readonly #tasks: Task[] = [];
  readonly #startOf: (i: number) => ThreadStart;
  readonly #options: ThreadedEmbedderOptions;
  /** When each restart happened, for the bound. */
  readonly #restarts: number[] = [];
  #fatal: Error | undefined;
  #closed = false;

  private constructor(
    threads: ModelThread[],
    startOf: (i: number) => ThreadStart,
    options: ThreadedEmbedderOptions,
  ) {
    this.#threads = threads;
    this.#idle = [...threads];
    this.#startOf = startOf;
    this.#options = options;
    for (const [i, thread] of threads.entries()) this.#watch(thread, i);
  }

  get info(): EmbedderInfo {
    return (this.#threads[0] as ModelThread).info;
  }

  static async create(
    manifest: string | LoadedManifest,
    options: ThreadedEmbedderOptions = {},
  ): Promise<ThreadedEmbedder> {
    const loaded = typeof manifest === 'string' ? await loadManifest(manifest) : manifest;
    const { log, sessions = 1, restarts: _r, onRestart: _s, onGiveUp: _g, ...rest } = options;
    // With several sessions each logs under its own name (ingest-embedder-1, -2 …).
    const logOf = (i: number) => (sessions > 1 && log?.name ? { ...log, name: `${log.name}-${i + 1}` } : log);
    const startOf = (i: number): ThreadStart => ({
      loaded,
      options: rest,
      ...(log ? { log: logOf(i) } : {}),
    });
    const started = await Promise.allSettled(
      Array.from({ length: sessions }, (_, i) => ModelThread.start(startOf(i))),
    );
    const threads = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) {
      await Promise.all(threads.map((thread) => thread.close().catch(() => undefined)));
      throw failed.reason;
    }
    return new ThreadedEmbedder(threads, startOf, options);
  }

  /**
   * Test seam: makes session `i`'s thread throw an uncaught error, as a native fault or a bug would, so
   * tests see the restart (and the give-up) happen for real.
   */
  crashSessionForTest(i = 0): void {
    (this.#threads[i] as ModelThread).call({ op: 'crash' }).catch(() => undefined);
  }

  async embed(images: Uint8Array[], options: EmbedOptions = {}): Promise<EmbedOutcome[]> {
    if (this.#threads.length === 1)
      return (await this.#run({ op: 'embed', images, options })) as EmbedOutcome[];
    const each = images.map((image) => this.#run({ op: 'embed', images: [image], options }));
    return ((await Promise.all(each)) as EmbedOutcome[][]).flat();
  }

  embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }> {
    return this.#run({ op: 'embedOne', image }) as Promise<{ vector: Float32Array; timings: EmbedTimings }>;
  }

  embedOrientations(image: Uint8Array): Promise<{ vectors: Float32Array[]; timings: EmbedTimings }> {
    return this.#run({ op: 'embedOrientations', image }) as Promise<{
      vectors: Float32Array[];
      timings: EmbedTimings;
    }>;
  }

  /** Closes every session; after a crash, the ones still running. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.map((thread) => thread.close()));
  }

  /**
   * A session whose thread dies is started again, so one crash costs only the calls it had in hand
   * (rejected: the worker retries them) instead of every call after it. Past `restarts` in its window
   * the embedder gives up: onGiveUp, and every later call is rejected with the reason.
   */
  #watch(thread: ModelThread, i: number): void {
    thread.crashed.then(async (error) => {
      if (this.#closed || this.#fatal) return;
      const { count, windowMs } = this.#options.restarts ?? DEFAULT_RESTARTS;
      const now = Date.now();
      while (this.#restarts.length > 0 && (this.#restarts[0] as number) <= now - windowMs)
        this.#restarts.shift();
      if (this.#restarts.length >= count) {
        this.#giveUp(
          new Error(
            `${error.message}; it crashed ${count + 1} time${count === 0 ? '' : 's'} within ${Math.round(windowMs / 1000)} s, so the embedder gives up.`,
          ),
        );
        return;
      }
      this.#restarts.push(now);
      this.#options.onRestart?.(error, this.#restarts.length);
      try {
        const restarted = await ModelThread.start(this.#startOf(i));
        if (this.#closed) return void (await restarted.close());
        this.#threads[i] = restarted;
        this.#idle.push(restarted);
        this.#watch(restarted, i);
        this.#dispatch();
      } catch (startError) {
        this.#giveUp(new Error(`${error.message}; restarting it failed: ${(startError as Error).message}`));
      }
    });
  }

  #giveUp(error: Error): void {
    this.#fatal = error;
    for (const task of this.#tasks.splice(0)) task.reject(error);
    this.#options.onGiveUp?.(error);
  }

  /**
   * Queues a task for the next free session; rejected at once after the embedder gave up. A session
   * that crashed takes no more tasks; they wait for the others or for its restart.
   */
  #run(request: Task['request']): Promise<unknown> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise<unknown>((resolve, reject) => {
      this.#tasks.push({ request, resolve, reject });
      this.#dispatch();
    });
  }

  /** Hands queued tasks to idle sessions, in arrival order. */
  #dispatch(): void {
    while (this.#idle.length > 0 && this.#tasks.length > 0) {
      const thread = this.#idle.pop() as ModelThread;
      if (thread.failure) continue; // crashed while idle: its restart joins the idle list
      const task = this.#tasks.shift() as Task;
      thread
        .call(task.request)
        .then(task.resolve, task.reject)
        .finally(() => {
          if (thread.failure) return;
          this.#idle.push(thread);
          this.#dispatch();
        });
    }
  }
}
