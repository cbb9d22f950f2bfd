import { type FSWatcher, watch } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
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
 *
 * One plain (inotify) watcher a folder, not `fs.watch(root, { recursive: true })`: on Linux, Node 20's
 * recursive watcher missed 260 of 297 renames and writes made 30 ms apart in one folder, where the plain
 * watcher missed none (measured on this project's machine), and a missed deletion is a photo searchable
 * after its file is gone. A folder that appears is watched at once and then reconciled as a whole, so
 * files written into it before its watcher started are not missed either.
 */
export class BucketWatcher {
  readonly #options: Required<Omit<BucketWatcherOptions, 'logger'>>;
  readonly #log: Logger | undefined;
  readonly #keys = new Set<string>();
  readonly #prefixes = new Set<string>();
  /** Folder prefix ('' for the root, else 'a/b/') → its watcher. */
  readonly #watchers = new Map<string, FSWatcher>();
  #started = false;
  #timer: NodeJS.Timeout | undefined;
  #firstEventAt: number | undefined;
  #flushing: Promise<void> = Promise.resolve();
  /** Watchers being set up for folders that appeared; a burst is handled only after them. */
  #watching: Promise<void> = Promise.resolve();

  constructor(options: BucketWatcherOptions) {
    this.#options = { debounceMs: 300, maxWaitMs: 2000, ...options };
    this.#log = options.logger;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await mkdir(this.#options.root, { recursive: true });
    await this.#watchFolder('');
  }

  /** Stops watching and handles what was already noticed. */
  async close(): Promise<void> {
    this.#started = false;
    this.#unwatch('');
    clearTimeout(this.#timer);
    await this.#flush();
  }

  /** Watches the folder at `prefix` and every folder under it (hidden ones aside). */
  async #watchFolder(prefix: string): Promise<void> {
    if (!this.#started || this.#watchers.has(prefix)) return;
    const dir = join(this.#options.root, ...prefix.split('/').filter(Boolean));
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, (_event, name) => this.#noticed(prefix, name === null ? undefined : String(name)));
    } catch {
      return; // gone again, or not a folder: its parent's event has queued a reconcile of it
    }
    // A watched folder that is removed ends its watcher; its parent's event re-watches it if it comes back.
    watcher.on('error', () => this.#unwatch(prefix));
    this.#watchers.set(prefix, watcher);
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.isDirectory() && !entry.name.startsWith('.'))
        await this.#watchFolder(`${prefix}${entry.name}/`);
    }
  }

  /** Stops watching the folder at `prefix` and every folder under it. */
  #unwatch(prefix: string): void {
    for (const [watched, watcher] of this.#watchers) {
      if (!watched.startsWith(prefix)) continue;
      watcher.close();
      this.#watchers.delete(watched);
    }
  }

  #noticed(folder: string, name: string | undefined): void {
    const key = name === undefined ? undefined : folder + name;
    // No name: the kernel's event queue overflowed and only a reconcile of the folder is safe.
    if (key === undefined) this.#prefixes.add(folder);
    else if (name?.startsWith('.')) return;
    else if (isImageKey(key)) this.#keys.add(key);
    else {
      // A folder came, went or was replaced: watch it afresh and reconcile what it holds.
      this.#prefixes.add(`${key}/`);
      this.#unwatch(`${key}/`);
      this.#watching = this.#watching.then(() => this.#watchFolder(`${key}/`));
    }
    const now = Date.now();
    this.#firstEventAt ??= now;
    clearTimeout(this.#timer);
    const wait = Math.min(this.#options.debounceMs, this.#firstEventAt + this.#options.maxWaitMs - now);
    this.#timer = setTimeout(() => void this.#flush(), Math.max(0, wait));
  }

  /** Handles collected events one burst at a time; a failure is logged, never thrown at fs.watch. */
  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      await this.#watching;
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
