import type Database from 'better-sqlite3';
import { pairKey } from '../../domain/ids.ts';
import type { DismissedPairs } from '../../domain/ports.ts';
import { openSqlite } from './sqlite.ts';

/** "Not duplicates" answers, kept in SQLite as pairs of vector ids so they outlive the process. */
export class SqliteDismissedPairs implements DismissedPairs {
  readonly #db: Database.Database;
  readonly #insert;
  readonly #all;

  constructor(path: string) {
    this.#db = openSqlite(path);
    this.#db.exec('CREATE TABLE IF NOT EXISTS dismissed_pairs (pair TEXT PRIMARY KEY) WITHOUT ROWID');
    this.#insert = this.#db.prepare('INSERT OR IGNORE INTO dismissed_pairs (pair) VALUES (?)');
    this.#all = this.#db.prepare<[], string>('SELECT pair FROM dismissed_pairs').pluck();
  }

  async add(pairs: [string, string][]): Promise<void> {
    this.#db.transaction(() => {
      for (const [a, b] of pairs) this.#insert.run(pairKey(a, b));
    })();
  }

  async all(): Promise<Set<string>> {
    return new Set(this.#all.all());
  }

  close(): void {
    this.#db.close();
  }
}
