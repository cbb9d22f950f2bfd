import type Database from 'better-sqlite3';
import type { IngestLedger } from '../../domain/ports.ts';
import { openSqlite } from './sqlite.ts';

/** The IngestLedger in its own SQLite file: one row per bucket key a folder ingest copied. */
export class SqliteIngestLedger implements IngestLedger {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = openSqlite(path);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS copies (key TEXT PRIMARY KEY, source TEXT NOT NULL, etag TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS copies_by_source ON copies (source);
    `);
  }

  async copiedFrom(source: string, prefix: string): Promise<Map<string, string>> {
    // The prefix is matched here rather than with LIKE, where "%" and "_" in a prefix are wildcards.
    const rows = this.#db.prepare('SELECT key, etag FROM copies WHERE source = ?').all(source) as {
      key: string;
      etag: string;
    }[];
    return new Map(rows.filter((row) => row.key.startsWith(prefix)).map((row) => [row.key, row.etag]));
  }

  async record(source: string, copies: { key: string; etag: string }[]): Promise<void> {
    const upsert = this.#db.prepare(
      'INSERT INTO copies (key, source, etag) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET source = excluded.source, etag = excluded.etag',
    );
    this.#db.transaction(() => {
      for (const { key, etag } of copies) upsert.run(key, source, etag);
    })();
  }

  async forget(keys: string[]): Promise<void> {
    const remove = this.#db.prepare('DELETE FROM copies WHERE key = ?');
    this.#db.transaction(() => {
      for (const key of keys) remove.run(key);
    })();
  }

  close(): void {
    this.#db.close();
  }
}
