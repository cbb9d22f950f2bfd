import { type FSWatcher, watch } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { sep } from 'node:path';
import type { Logger } from 'pino';
import { isImageKey } from '../imaging/formats.ts';

export interface BucketWatcherOptions {
  /** The bucket folder (data/bucket). */
  root: string;
  /** Image keys whose file appeared, changed or disappeared: queue them (present → upsert, gone → remove). */
  onKeys(keys: string[]): Promise<void>;
  /** Something that is not an image file changed (a folder moved in or out): backfill under these prefixes. */
  onPrefixes(prefixes: string[]): Promise<void>;
  /** Quiet time before a burst of events is handled. @default 300 */
  debounceMs?: number;
  /** A steady stream of events is still handled at least this often. @default 2000 */
  maxWaitMs?: number;
  logger?: Logger;
}

/**
 * Embedded mode's S3 event notifications: files dropped into or deleted from the bucket folder are
 * queued like S3 ObjectCreated/ObjectRemoved events. Events are collected and handled in debounced
 * bursts (a copy of a thousand files is a few hundred queue writes, not thousands). Hidden names are
 * ignored: they are the folder store's half-written temporary files.
 */
export class BucketWatcher {
  readonly #options: Required<Omit<BucketWatcherOptions, 'logger'>>;
  readonly #log: Logger | undefined;
  readonly #keys = new Set<string>();
  readonly #prefixes = new Set<string>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #firstEventAt: number | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(options: BucketWatcherOptions) {
    this.#options = { debounceMs: 300, maxWaitMs: 2000, ...options };
    this.#log = options.logger;
  }

  async start(): Promise<void> {
    if (this.#watcher) return;
    await mkdir(this.#options.root, { recursive: true });
    this.#watcher = watch(this.#options.root, { recursive: true }, (_event, filename) =>
      this.#noticed(filename === null ? undefined : String(filename)),
    );
    this.#watcher.on('error', (error) => this.#log?.error({ err: error }, 'bucket folder watcher failed'));
  }

  /** Stops watching and handles what was already noticed. */
  async close(): Promise<void> {
    this.#watcher?.close();
    this.#watcher = undefined;
    clearTimeout(this.#timer);
    await this.#flush();
  }

  #noticed(filename: string | undefined): void {
    // No name: the kernel's event queue overflowed and only a full reconcile is safe.
    const key = filename?.split(sep).join('/');
    if (key === undefined) this.#prefixes.add('');
    else if (key.split('/').some((segment) => segment.startsWith('.'))) return;
    else if (isImageKey(key)) this.#keys.add(key);
    else this.#prefixes.add(`${key}/`);
    const now = Date.now();
    this.#firstEventAt ??= now;
    clearTimeout(this.#timer);
    const wait = Math.min(this.#options.debounceMs, this.#firstEventAt + this.#options.maxWaitMs - now);
    this.#timer = setTimeout(() => void this.#flush(), Math.max(0, wait));
  }

  /** Handles collected events one burst at a time; a failure is logged, never thrown at fs.watch. */
  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      this.#firstEventAt = undefined;
      const keys = [...this.#keys];
      const prefixes = [...this.#prefixes];
      this.#keys.clear();
      this.#prefixes.clear();
      try {
        if (keys.length > 0) await this.#options.onKeys(keys);
        if (prefixes.length > 0) await this.#options.onPrefixes(prefixes);
        if (keys.length + prefixes.length > 0) this.#log?.debug({ keys, prefixes }, 'bucket folder changed');
      } catch (error) {
        this.#log?.error({ err: error, keys, prefixes }, 'could not queue changes in the bucket folder');
      }
    });
    return this.#flushing;
  }
}
