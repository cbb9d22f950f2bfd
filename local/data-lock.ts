import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The lock file's name inside the data folder; it holds the PID of the service that holds the folder. */
export const LOCK_FILE = 'service.lock';

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `The data folder ${dataDir} is in use by another pic-search service (PID ${pid}). ` +
        `Stop it, or start with another --data-dir. (If PID ${pid} is not pic-search, delete ${join(dataDir, LOCK_FILE)}.)`,
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): void;
}

/**
 * Takes the data folder for this process: two services on one folder would each run a worker and a
 * watcher over the same bucket and databases. The lock is a file holding the PID, put in place whole
 * with link() (atomic, and EEXIST when another holds it); a lock whose PID is no longer running (a
 * crash, SIGKILL) is stale and taken over.
 */
export function lockDataDir(dataDir: string, pid = process.pid): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const mine = `${path}.${pid}`;
  writeFileSync(mine, `${pid}\n`);
  try {
    return takeLock(dataDir, path, mine, pid);
  } finally {
    rmSync(mine, { force: true });
  }
}

function takeLock(dataDir: string, path: string, mine: string, pid: number): DataDirLock {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      linkSync(mine, path);
      return {
        release() {
          if (holderOf(path) === pid) rmSync(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = holderOf(path);
    if (holder !== undefined && holder !== pid && isRunning(holder))
      throw new DataDirLockedError(dataDir, holder);
    // Stale: remove it and try again; link() settles a race between two starters.
    rmSync(path, { force: true });
  }
  throw new Error(`Could not take the lock ${path}; delete it if no pic-search service uses ${dataDir}.`);
}

function holderOf(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 checks that the process exists; EPERM means it exists under another user. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
