import type { Dirent } from 'node:fs';
import { opendir, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { ValidationError } from '../domain/errors.ts';
import type { Catalogue, ObjectStore, StoredObject } from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import type { IdOf } from './indexing.ts';
import { contentTypeOf } from './keys.ts';
import type { FolderSyncReport, IngestReport, Operations } from './operations.ts';

const COPY_CONCURRENCY = 4;

export interface FolderSyncResult extends FolderSyncReport {
  /** Image files that could not be read or stored, with why: they are recorded as failed. */
  unreadable: { key: string; reason: string }[];
}

/**
 * Makes the bucket's `prefix` mirror the image files of a local folder (recursively): new and changed
 * files are copied, unchanged ones skipped, and bucket copies whose file is gone are deleted, so that
 * the backfill that follows indexes the new and forgets the gone. A file counts as unchanged when its
 * bucket copy has the same size and was written at or after the file's modification time (cheap: one
 * stat per file, no hashing of a large folder on every re-ingest).
 */
export async function syncFolder(
  source: string,
  images: ObjectStore,
  prefix: string,
): Promise<FolderSyncResult> {
  await assertReadableFolder(source);
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
  for await (const path of walk(source)) {
    const key = prefix + relative(source, path).split(sep).join('/');
    if (isImageKey(key)) files.push({ path, key });
    else result.skipped++;
  }
  result.images = files.length;
  const wanted = new Set(files.map((file) => file.key));
  await inParallel(files, COPY_CONCURRENCY, async ({ path, key }) => {
    try {
      const info = await stat(path);
      const copy = inBucket.get(key);
      if (copy && copy.size === info.size && copy.lastModified.getTime() >= Math.floor(info.mtimeMs)) {
        result.unchanged++;
        return;
      }
      await images.put(key, await readFile(path), contentTypeOf(key));
      result.copied++;
    } catch (error) {
      result.unreadable.push({ key, reason: `The file could not be copied: ${(error as Error).message}` });
    }
  });
  const gone = [...inBucket.keys()].filter((key) => isImageKey(key) && !wanted.has(key));
  await inParallel(gone, COPY_CONCURRENCY, (key) => images.delete(key));
  result.deleted = gone.length;
  return result;
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

/** Files under `dir`, recursively; symlinks to files are followed, symlinks to folders are not (loops). */
async function* walk(dir: string): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
    else if (entry.isSymbolicLink() && (await stat(path).catch(() => undefined))?.isFile()) yield path;
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
  idOf: IdOf;
}

/**
 * Embedded POST /ingest {path}: mirrors the folder into the bucket under `prefix` (default: the folder's
 * name), then backfills that prefix. Files that could not be copied are recorded as failed with why.
 */
export async function ingestFolder(
  deps: FolderIngestDeps,
  path: string,
  prefix?: string,
): Promise<IngestReport> {
  const source = resolve(path);
  const target = folderPrefix(prefix ?? basename(source));
  const { unreadable, ...files } = await syncFolder(source, deps.images, target);
  const report = await deps.operations.backfill(target);
  for (const { key, reason } of unreadable)
    await deps.catalogue.markFailed({ key, id: deps.idOf(key), reason });
  return { ...report, files };
}

/** A folder mirrors to "name/": without the slash, "a" would also sweep up "ab/…" when syncing. */
function folderPrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  if (trimmed === '') {
    throw new ValidationError(
      'A folder is ingested under a key prefix such as "holiday/"; give a non-empty prefix.',
    );
  }
  return trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}
