import type { Dirent } from 'node:fs';
import { opendir, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { ValidationError } from '../domain/errors.ts';
import type { Catalogue, IngestLedger, ObjectStore, StoredObject } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import type { IdOf } from './indexing.ts';
import { contentTypeOf, normalisePrefix, validKey } from './keys.ts';
import type { FolderSyncReport, IngestReport, Operations } from './operations.ts';

const COPY_CONCURRENCY = 4;

export interface FolderSyncResult extends FolderSyncReport {
  /** Image files that could not be read or stored, with why: they are recorded as failed. */
  unreadable: { key: string; reason: string }[];
}

/**
 * Makes the bucket's `prefix` mirror the image files of a local folder (recursively): new and changed
 * files are copied, unchanged ones skipped, and copies that an ingest of this same folder made and whose
 * file is gone are deleted, so that the backfill that follows indexes the new and forgets the gone.
 * Objects the ledger does not attribute to this folder (uploads, drops, another folder's copies, or a
 * copy overwritten since) are never deleted. A file counts as unchanged when its bucket copy has the same
 * size and was written at or after the file's modification time (cheap: one stat per file, no hashing of
 * a large folder on every re-ingest). `source` is a real path (no symlinks in it).
 */
export async function syncFolder(
  source: string,
  images: ObjectStore,
  prefix: string,
  ledger: IngestLedger,
): Promise<FolderSyncResult> {
  const result: FolderSyncResult = {
    images: 0,
    copied: 0,
    unchanged: 0,
    deleted: 0,
    skipped: 0,
    unreadable: [],
  };
  const inBucket = new Map<string, StoredObject>();
  for await (const object of images.list(prefix)) inBucket.set(object.key, object);
  const files: { path: string; key: string }[] = [];
  for await (const file of walk(source, source)) {
    const key = prefix + relative(source, file.path).split(sep).join('/');
    if (!isImageKey(key)) result.skipped++;
    else if (file.outside) {
      result.unreadable.push({
        key,
        reason: 'The file is a symlink that leads outside the folder being ingested.',
      });
    } else files.push({ path: file.path, key });
  }
  result.images = files.length;
  const wanted = new Set(files.map((file) => file.key));
  const copies: { key: string; etag: string }[] = [];
  await inParallel(files, COPY_CONCURRENCY, async ({ path, key }) => {
    try {
      validKey(key);
      const info = await stat(path);
      const copy = inBucket.get(key);
      if (copy && copy.size === info.size && copy.lastModified.getTime() >= Math.floor(info.mtimeMs)) {
        result.unchanged++;
        return;
      }
      const stored = await images.put(key, await readFile(path), contentTypeOf(key));
      copies.push({ key, etag: stored.etag });
      result.copied++;
    } catch (error) {
      result.unreadable.push({ key, reason: `The file could not be copied: ${(error as Error).message}` });
    }
  });
  await ledger.record(source, copies);
  const ours = await ledger.copiedFrom(source, prefix);
  const gone = [...inBucket.values()]
    .filter((object) => !wanted.has(object.key) && ours.get(object.key) === object.etag)
    .map((object) => object.key);
  await inParallel(gone, COPY_CONCURRENCY, (key) => images.delete(key));
  await ledger.forget(gone);
  result.deleted = gone.length;
  return result;
}

/**
 * The folder's real path when it lies inside one of `roots` (compared after resolving symlinks on both
 * sides, so a link inside a root cannot lead out of it); otherwise a 400 naming the roots.
 */
export async function folderInsideRoots(path: string, roots: readonly string[]): Promise<string> {
  const real = await realpath(path).catch((error: NodeJS.ErrnoException) => {
    throw new ValidationError(`Cannot ingest '${path}': ${describe(error)}.`);
  });
  const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => undefined)));
  if (realRoots.some((root) => root !== undefined && isInside(real, root))) return real;
  throw new ValidationError(
    `Cannot ingest '${path}': the service reads folders only under ${roots.join(', ')} ` +
      '(PIC_INGEST_ROOTS sets them).',
  );
}

function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** 400 with the reason for a path that is missing, not a folder, or unreadable. */
async function assertReadableFolder(path: string): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ValidationError(`Cannot ingest '${path}': ${describe(error as NodeJS.ErrnoException)}.`);
  }
  if (!info.isDirectory()) throw new ValidationError(`Cannot ingest '${path}': it is not a folder.`);
  try {
    await (await opendir(path)).close();
  } catch (error) {
    throw new ValidationError(`Cannot ingest '${path}': ${describe(error as NodeJS.ErrnoException)}.`);
  }
}

function describe(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no such file or folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied (the folder cannot be read)';
    case 'ENOTDIR':
      return 'a part of the path is not a folder';
    default:
      return error.message;
  }
}

/**
 * Files under `dir`, recursively. Symlinks to folders are not followed (loops); a symlink to a file is
 * taken as the file it leads to when that lies inside `root` (the folder being ingested), and reported
 * as `outside` otherwise: ingesting a folder never reads what lies outside it.
 */
async function* walk(dir: string, root: string): AsyncGenerator<{ path: string; outside?: true }> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path, root);
    else if (entry.isFile()) yield { path };
    else if (entry.isSymbolicLink()) {
      const target = await realpath(path).catch(() => undefined);
      if (target === undefined || !(await stat(target).catch(() => undefined))?.isFile()) continue;
      yield isInside(target, root) ? { path } : { path, outside: true };
    }
  }
}

async function inParallel<T>(items: T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

export interface FolderIngestDeps {
  operations: Pick<Operations, 'backfill'>;
  images: ObjectStore;
  catalogue: Catalogue;
  ledger: IngestLedger;
  idOf: IdOf;
}

export interface FolderIngestOptions {
  /** Folders the path must lie in (POST /ingest: PIC_INGEST_ROOTS); absent: any folder (the CLI's own). */
  roots?: readonly string[];
}

/**
 * Embedded POST /ingest {path}: mirrors the folder into the bucket under `prefix` (default: the folder's
 * name), then backfills that prefix. Files that could not be copied are recorded as failed with why.
 */
export async function ingestFolder(
  deps: FolderIngestDeps,
  path: string,
  prefix?: string,
  options: FolderIngestOptions = {},
): Promise<IngestReport> {
  const source = options.roots
    ? await folderInsideRoots(resolve(path), options.roots)
    : await realpath(resolve(path)).catch((error: NodeJS.ErrnoException) => {
        throw new ValidationError(`Cannot ingest '${path}': ${describe(error)}.`);
      });
  await assertReadableFolder(source);
  const target = normalisePrefix(prefix ?? basename(source));
  if (target === '') {
    throw new ValidationError(
      'A folder is ingested under a key prefix such as "holiday/"; give a non-empty prefix.',
    );
  }
  const { unreadable, ...files } = await syncFolder(source, deps.images, target, deps.ledger);
  const report = await deps.operations.backfill(target);
  for (const { key, reason } of unreadable)
    await deps.catalogue.markFailed({ key, id: deps.idOf(key), reason });
  return { ...report, files };
}
