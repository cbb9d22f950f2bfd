import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats, Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/errors.ts';
import type { ListOptions, ObjectStore, ObjectWithBody, StoredObject } from '../../domain/ports.ts';

export interface FolderObjectStoreOptions {
  /** Route (or absolute URL) under which the HTTP server serves this folder. @default '/images' */
  urlBase?: string;
}

/** Our own half-written files: `.<name>.<random>.tmp`, never listed, renamed over the key when complete. */
const TEMP_FILE = /^\..+\.[0-9a-f]{16}\.tmp$/;
const MAX_KEY_BYTES = 1024;

/**
 * A folder as the bucket. Keys are '/'-separated paths relative to the root; a key can never reach
 * outside it (no `..`, absolute paths, backslashes, NUL, encoded traversal, or symlinks out of the root).
 *
 * The etag is derived from the file's inode, size and modification time (nanoseconds), not from its
 * content: files dropped into the folder by hand then cost one stat, not a full read, on every
 * re-ingest, and the value survives restarts. put() writes a temporary file and renames it over the
 * key, so every put yields a new inode and therefore a new etag, and readers never see half a file.
 * The file and then its folder are fsynced before put() returns: the worker records a thumbnail and an
 * upload is queued only once its bytes would survive a power loss (cost: docs/operations.md).
 */
export class FolderObjectStore implements ObjectStore {
  readonly root: string;
  readonly #urlBase: string;
  #realRoot: string | undefined;

  constructor(root: string, options: FolderObjectStoreOptions = {}) {
    this.root = root;
    this.#urlBase = (options.urlBase ?? '/images').replace(/\/+$/, '');
  }

  async get(key: string): Promise<ObjectWithBody> {
    const path = await this.#existingPath(key);
    if (path === undefined) throw new NotFoundError(`no object '${key}'`);
    // One open file: the etag and the bytes are of the same inode even if a put renames over the key meanwhile.
    const file = await open(path).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new NotFoundError(`no object '${key}'`) : error;
    });
    try {
      const [info, body] = await Promise.all([file.stat({ bigint: true }), file.readFile()]);
      return { ...toStoredObject(key, info), body };
    } finally {
      await file.close();
    }
  }

  async put(key: string, body: Uint8Array, _contentType?: string): Promise<StoredObject> {
    const path = this.#pathOf(key);
    const dir = path.slice(0, path.lastIndexOf(sep));
    await mkdir(dir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST' && error.code !== 'ENOTDIR') throw error;
      throw new ConflictError(`an object already exists where '${key}' needs a folder`);
    });
    await this.#assertInside(await realpath(dir), key);
    const name = path.slice(dir.length + 1);
    const temp = join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      await writeDurably(temp, body);
      await rename(temp, path);
      await syncDirectory(dir);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return toStoredObject(key, await stat(path, { bigint: true }));
  }

  async head(key: string): Promise<StoredObject | undefined> {
    const path = await this.#existingPath(key);
    return path === undefined ? undefined : toStoredObject(key, await stat(path, { bigint: true }));
  }

  /** Sorted by the keys' UTF-8 bytes, as S3 lists. */
  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<StoredObject> {
    await this.#root();
    yield* this.#walk(this.root, '', prefix, options.startAfter ?? '');
  }

  async delete(key: string): Promise<void> {
    const path = this.#pathOf(key);
    const dir = path.slice(0, path.lastIndexOf(sep));
    let realDir: string;
    try {
      realDir = await realpath(dir);
    } catch {
      return;
    }
    await this.#assertInside(realDir, key);
    await rm(path, { force: true });
    await this.#pruneEmptyDirs(key);
  }

  async downloadUrl(key: string): Promise<string> {
    validateKey(key);
    return `${this.#urlBase}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async #root(): Promise<string> {
    if (this.#realRoot === undefined) {
      await mkdir(this.root, { recursive: true });
      this.#realRoot = await realpath(this.root);
    }
    return this.#realRoot;
  }

  #pathOf(key: string): string {
    validateKey(key);
    return join(this.root, ...key.split('/'));
  }

  /** The file behind `key` when it exists, is a file, and resolves (symlinks included) inside the root. */
  async #existingPath(key: string): Promise<string | undefined> {
    const path = this.#pathOf(key);
    let real: string;
    try {
      real = await realpath(path);
    } catch {
      return undefined;
    }
    await this.#assertInside(real, key);
    const info = await stat(real);
    return info.isFile() ? real : undefined;
  }

  async #assertInside(real: string, key: string): Promise<void> {
    const root = await this.#root();
    if (real !== root && !real.startsWith(root + sep)) {
      throw new ValidationError(`key '${key}' resolves outside the bucket folder`);
    }
  }

  async *#walk(dir: string, keyPrefix: string, prefix: string, after: string): AsyncGenerator<StoredObject> {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch {
      return;
    }
    const root = await this.#root();
    // A directory's name sorts as "name/", which is how its keys continue.
    const items = await Promise.all(
      entries
        .filter((name) => !TEMP_FILE.test(name))
        .map(async (name) => {
          const path = join(dir, name);
          const info = await lstat(path).catch(() => undefined);
          return { name, path, info, isDir: info?.isDirectory() ?? false };
        }),
    );
    items.sort((a, b) => compareKeys(a.isDir ? `${a.name}/` : a.name, b.isDir ? `${b.name}/` : b.name));
    for (const { name, path, info, isDir } of items) {
      if (info === undefined) continue;
      const key = keyPrefix + name;
      if (isDir) {
        const dirKey = `${key}/`;
        // Every key of a folder that sorts before `after` without leading to it sorts before it too.
        if (compareKeys(dirKey, after) < 0 && !after.startsWith(dirKey)) continue;
        if (dirKey.startsWith(prefix) || prefix.startsWith(dirKey))
          yield* this.#walk(path, dirKey, prefix, after);
        continue;
      }
      if (!key.startsWith(prefix) || compareKeys(key, after) <= 0 || !isValidKey(key)) continue;
      const target = await this.#fileInside(path, info, root);
      if (target) yield toStoredObject(key, target);
    }
  }

  /** Plain files, and symlinks to files inside the root; never follows links to directories (loops). */
  async #fileInside(path: string, info: Stats, root: string): Promise<BigIntStats | undefined> {
    if (!info.isFile() && !info.isSymbolicLink()) return undefined;
    try {
      if (info.isSymbolicLink()) {
        const real = await realpath(path);
        if (!real.startsWith(root + sep)) return undefined;
      }
      const target = await stat(path, { bigint: true });
      return target.isFile() ? target : undefined;
    } catch {
      return undefined;
    }
  }

  async #pruneEmptyDirs(key: string): Promise<void> {
    const segments = key.split('/').slice(0, -1);
    while (segments.length > 0) {
      try {
        await rmdir(join(this.root, ...segments));
      } catch {
        return;
      }
      segments.pop();
    }
  }
}

async function writeDurably(path: string, body: Uint8Array): Promise<void> {
  const file = await open(path, 'w');
  try {
    await file.writeFile(body);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** A rename is durable once the folder holding the new name is synced (POSIX: fsync on the directory). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Orders keys by their UTF-8 bytes (S3's list order), which differs from JS's UTF-16 order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

/** Throws ValidationError for any key that could name something outside the root. */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new ValidationError('object key is empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new ValidationError(`object key is longer than ${MAX_KEY_BYTES} bytes`);
  }
  // The key as given, and as it would read after one or more rounds of URL decoding.
  let form = key;
  for (let round = 0; round < 3; round++) {
    checkKeyForm(form, key);
    let decoded: string;
    try {
      decoded = decodeURIComponent(form);
    } catch {
      return;
    }
    if (decoded === form) return;
    form = decoded;
  }
  checkKeyForm(form, key);
}

function checkKeyForm(form: string, key: string): void {
  if (form.includes('\0')) throw new ValidationError(`object key '${key}' contains NUL`);
  if (form.includes('\\')) throw new ValidationError(`object key '${key}' contains a backslash`);
  if (form.startsWith('/')) throw new ValidationError(`object key '${key}' is an absolute path`);
  for (const segment of form.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new ValidationError(`object key '${key}' has an empty, '.' or '..' segment`);
    }
  }
}

function toStoredObject(key: string, info: BigIntStats): StoredObject {
  const etag = createHash('md5').update(`${info.ino}:${info.size}:${info.mtimeNs}`).digest('hex');
  return { key, size: Number(info.size), etag, lastModified: new Date(Number(info.mtimeMs)) };
}
