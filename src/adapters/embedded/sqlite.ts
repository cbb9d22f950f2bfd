import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * Opens a SQLite file the way every embedded adapter wants it: WAL so readers never block the writer
 * (API and worker share the files), a busy timeout instead of SQLITE_BUSY when another process (the CLI)
 * holds the write lock, and NORMAL sync, which WAL makes durable against a process crash.
 * https://www.sqlite.org/wal.html
 */
export function openSqlite(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return db;
}
