import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * How hard a commit waits for the disk. FULL: a commit is on the disk before it returns, so a power loss
 * cannot take back an "indexed" record or an acked message (NORMAL under WAL survives a process crash but
 * may lose the last commits on power loss: https://www.sqlite.org/pragma.html#pragma_synchronous).
 * Its cost is measured by `npm run bench:durability` (docs/operations.md). Mutable only so that the
 * benchmark can open the same adapters with NORMAL beside FULL.
 */
export const sqliteDurability: { synchronous: 'FULL' | 'NORMAL' } = { synchronous: 'FULL' };

/**
 * Opens a SQLite file the way every embedded adapter wants it: WAL so readers never block the writer
 * (API and worker share the files), a busy timeout instead of SQLITE_BUSY when another process (the CLI)
 * holds the write lock, and FULL sync (sqliteDurability).
 * https://www.sqlite.org/wal.html
 */
export function openSqlite(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sqliteDurability.synchronous}`);
  db.pragma('busy_timeout = 5000');
  return db;
}
