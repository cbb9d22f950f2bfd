import type Database from 'better-sqlite3';
import { ConflictError } from '../../domain/errors.ts';
import type {
  Catalogue,
  ClaimResult,
  FailedEntry,
  ImageRecord,
  ImageState,
  IndexedEntry,
  PendingEntry,
  ProgressCounts,
} from '../../domain/ports.ts';
import { TOMBSTONE_RETENTION_MS, type Version } from '../../domain/versions.ts';
import { openSqlite } from './sqlite.ts';

export interface SqliteCatalogueOptions {
  /** Window for "recently indexed" (throughput and ETA). @default 60 */
  windowSeconds?: number;
  /** Records a page of list() reads. @default 500 */
  pageSize?: number;
}

interface ImageRow {
  key: string;
  id: string;
  state: ImageState;
  etag: string | null;
  size: number | null;
  reason: string | null;
  model: string | null;
  profile: string | null;
  updated_at: number;
  indexed_at: number | null;
  version: number | null;
}

/**
 * The catalogue in SQLite. `ids` is the id → key mapping (one owner per id, so a hash collision is seen,
 * not merged); `images` is the per-key state, and a key that lost a collision still gets its failed row.
 * Progress must stay cheap at a million rows while the page polls it every second: per-state counts
 * live in `state_counts`, kept by triggers in the same transaction as the rows they count, so they
 * cannot drift; recent work and failures are read through indexes.
 *
 * Versions: `images.version` is the version of a key's last versioned write and `tombstones` the
 * version of its last removal (a table apart, so a tombstone is never a record, a count or a failure).
 * A versioned write checks both and writes in one IMMEDIATE transaction, so nothing slips in between.
 */
export class SqliteCatalogue implements Catalogue {
  readonly #db: Database.Database;
  readonly #windowSeconds: number;
  readonly #pageSize: number;
  readonly #stmt;

  constructor(dbPath: string, options: SqliteCatalogueOptions = {}) {
    this.#windowSeconds = options.windowSeconds ?? 60;
    this.#pageSize = options.pageSize ?? 500;
    this.#db = openSqlite(dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS images (
        key TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'indexed', 'failed')),
        etag TEXT,
        size INTEGER,
        reason TEXT,
        model TEXT,
        profile TEXT,
        updated_at INTEGER NOT NULL,
        indexed_at INTEGER
      );
      CREATE TABLE IF NOT EXISTS tombstones (
        key TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        deleted_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS tombstones_by_time ON tombstones (deleted_at);
      CREATE INDEX IF NOT EXISTS images_by_indexed_at ON images (indexed_at) WHERE indexed_at IS NOT NULL;
      CREATE INDEX IF NOT EXISTS failures_by_time ON images (updated_at) WHERE state = 'failed';
      CREATE TABLE IF NOT EXISTS state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
      INSERT OR IGNORE INTO state_counts VALUES ('pending', 0), ('indexed', 0), ('failed', 0);
      CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON images BEGIN
        UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
      END;
      CREATE TRIGGER IF NOT EXISTS count_delete AFTER DELETE ON images BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
      END;
      CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE OF state ON images
        WHEN OLD.state <> NEW.state BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
        UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
      END;`);
    // Catalogues written before versions existed gain the column; their records keep no version.
    const columns = this.#db.prepare<[], { name: string }>('PRAGMA table_info(images)').all();
    if (!columns.some((column) => column.name === 'version')) {
      this.#db.exec('ALTER TABLE images ADD COLUMN version INTEGER');
    }
    this.#stmt = {
      owner: this.#db.prepare<[string], { key: string }>('SELECT key FROM ids WHERE id = ?'),
      claim: this.#db.prepare('INSERT OR IGNORE INTO ids (id, key) VALUES (?, ?)'),
      pending: this.#db.prepare(
        `INSERT INTO images (key, id, state, etag, size, updated_at) VALUES (@key, @id, 'pending', @etag, @size, @now)
         ON CONFLICT (key) DO UPDATE SET id = excluded.id, state = 'pending', etag = excluded.etag,
           size = excluded.size, reason = NULL, updated_at = excluded.updated_at`,
      ),
      indexed: this.#db.prepare(
        `INSERT INTO images (key, id, state, etag, model, profile, updated_at, indexed_at, version)
         VALUES (@key, @id, 'indexed', @etag, @model, @profile, @now, @now, @version)
         ON CONFLICT (key) DO UPDATE SET id = excluded.id, state = 'indexed',
           etag = coalesce(excluded.etag, etag), reason = NULL, model = excluded.model,
           profile = excluded.profile, updated_at = excluded.updated_at, indexed_at = excluded.indexed_at,
           version = coalesce(excluded.version, version)`,
      ),
      failed: this.#db.prepare(
        `INSERT INTO images (key, id, state, reason, updated_at, version)
         VALUES (@key, @id, 'failed', @reason, @now, @version)
         ON CONFLICT (key) DO UPDATE SET state = 'failed', reason = excluded.reason,
           updated_at = excluded.updated_at, version = coalesce(excluded.version, version)`,
      ),
      kept: this.#db.prepare<[{ key: string }], { version: number | null }>(
        `SELECT max(coalesce((SELECT version FROM images WHERE key = @key), 0),
                    coalesce((SELECT version FROM tombstones WHERE key = @key), 0)) AS version`,
      ),
      bury: this.#db.prepare(
        `INSERT INTO tombstones (key, version, deleted_at) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET version = excluded.version, deleted_at = excluded.deleted_at`,
      ),
      pruneTombstones: this.#db.prepare('DELETE FROM tombstones WHERE deleted_at < ?'),
      get: this.#db.prepare<[string], ImageRow>('SELECT * FROM images WHERE key = ?'),
      byIds: this.#db.prepare<[string], ImageRow>(
        `SELECT images.* FROM json_each(?) AS wanted
         JOIN ids ON ids.id = wanted.value JOIN images ON images.key = ids.key`,
      ),
      page: this.#db.prepare<[string, number], ImageRow>(
        'SELECT * FROM images WHERE key > ? ORDER BY key LIMIT ?',
      ),
      pageFrom: this.#db.prepare<[string, number], ImageRow>(
        'SELECT * FROM images WHERE key >= ? ORDER BY key LIMIT ?',
      ),
      removeImage: this.#db.prepare('DELETE FROM images WHERE key = ?'),
      removeLeftover: this.#db.prepare('DELETE FROM images WHERE key = ? AND updated_at = ?'),
      removeId: this.#db.prepare('DELETE FROM ids WHERE key = ?'),
      counts: this.#db.prepare<[], { state: ImageState; n: number }>('SELECT state, n FROM state_counts'),
      recent: this.#db.prepare<[number], { n: number }>(
        'SELECT count(*) AS n FROM images WHERE indexed_at >= ?',
      ),
      failures: this.#db.prepare<[number], { key: string; reason: string | null; updated_at: number }>(
        `SELECT key, reason, updated_at FROM images WHERE state = 'failed' ORDER BY updated_at DESC LIMIT ?`,
      ),
    };
  }

  /** Check-then-write transactions are IMMEDIATE: another process (the CLI) cannot slip in between. */
  async markPending(entries: PendingEntry[]): Promise<ClaimResult[]> {
    return this.#claimEach(entries, (entry) =>
      this.#stmt.pending.run({
        key: entry.key,
        id: entry.id,
        etag: entry.etag ?? null,
        size: entry.size ?? null,
        now: Date.now(),
      }),
    );
  }

  async claimIds(entries: { key: string; id: string }[]): Promise<ClaimResult[]> {
    return this.#claimEach(entries, () => undefined);
  }

  /** All or nothing: a conflict on one entry rolls the batch back. */
  async markIndexed(entries: IndexedEntry[]): Promise<string[]> {
    return this.#db
      .transaction(() => {
        const stale: string[] = [];
        for (const entry of entries) {
          if (this.#keepsNewer(entry.key, entry.version)) {
            stale.push(entry.key);
            continue;
          }
          const owner = this.#stmt.owner.get(entry.id)?.key;
          if (owner !== undefined && owner !== entry.key) {
            throw new ConflictError(`vector id ${entry.id} of '${entry.key}' already belongs to '${owner}'`);
          }
          if (owner === undefined) this.#claimId(entry.key, entry.id);
          this.#stmt.indexed.run({
            ...entry,
            etag: entry.etag ?? null,
            version: entry.version ?? null,
            now: Date.now(),
          });
        }
        return stale;
      })
      .immediate();
  }

  async markFailed(entry: FailedEntry): Promise<boolean> {
    return this.#db
      .transaction(() => {
        if (this.#keepsNewer(entry.key, entry.version)) return false;
        this.#stmt.failed.run({ ...entry, version: entry.version ?? null, now: Date.now() });
        return true;
      })
      .immediate();
  }

  async versions(keys: string[]): Promise<Map<string, Version>> {
    const out = new Map<string, Version>();
    for (const key of keys) {
      const version = this.#stmt.kept.get({ key })?.version;
      if (version) out.set(key, version);
    }
    return out;
  }

  async get(key: string): Promise<ImageRecord | undefined> {
    return (await this.getMany([key])).get(key);
  }

  async getMany(keys: string[]): Promise<Map<string, ImageRecord>> {
    const out = new Map<string, ImageRecord>();
    for (const key of keys) {
      const row = this.#stmt.get.get(key);
      if (row) out.set(key, toRecord(row));
    }
    return out;
  }

  async getByIds(ids: string[]): Promise<Map<string, ImageRecord>> {
    const out = new Map<string, ImageRecord>();
    if (ids.length === 0) return out;
    for (const row of this.#stmt.byIds.all(JSON.stringify(ids))) out.set(row.id, toRecord(row));
    return out;
  }

  /**
   * Pages by key instead of holding one cursor open: the caller (re-ingest) writes to this catalogue
   * while it iterates, and better-sqlite3 refuses other statements while an iterator is open.
   */
  async *list(prefix = ''): AsyncIterable<ImageRecord> {
    let rows = this.#stmt.pageFrom.all(prefix, this.#pageSize);
    while (rows.length > 0) {
      for (const row of rows) {
        // Keys sort by their UTF-8 bytes, so the keys with a prefix are one run starting at the prefix.
        if (!row.key.startsWith(prefix)) return;
        yield toRecord(row);
      }
      if (rows.length < this.#pageSize) return;
      rows = this.#stmt.page.all((rows[rows.length - 1] as ImageRow).key, this.#pageSize);
    }
  }

  /** Tombstones older than TOMBSTONE_RETENTION_MS go with the next removal. */
  async remove(keys: string[], version: Version): Promise<string[]> {
    return this.#db
      .transaction(() => {
        const now = Date.now();
        const stale: string[] = [];
        for (const key of keys) {
          if (this.#keepsNewer(key, version)) {
            stale.push(key);
            continue;
          }
          this.#stmt.removeImage.run(key);
          this.#stmt.removeId.run(key);
          this.#stmt.bury.run(key, version, now);
        }
        this.#stmt.pruneTombstones.run(now - TOMBSTONE_RETENTION_MS);
        return stale;
      })
      .immediate();
  }

  /** The triggers on `images` move the counters with each row removed. */
  async removeLeftovers(records: ImageRecord[]): Promise<string[]> {
    return this.#db
      .transaction(() =>
        records.flatMap(({ key, updatedAt }) => {
          if (this.#stmt.removeLeftover.run(key, updatedAt.getTime()).changes === 0) return [];
          this.#stmt.removeId.run(key);
          return [key];
        }),
      )
      .immediate();
  }

  async clear(): Promise<void> {
    this.#db.transaction(() => {
      this.#db.exec('DELETE FROM images; DELETE FROM ids;');
    })();
  }

  async progress(recentFailures: number): Promise<ProgressCounts> {
    return this.#db.transaction((): ProgressCounts => {
      const counts = { pending: 0, indexed: 0, failed: 0 };
      for (const { state, n } of this.#stmt.counts.all()) counts[state] = n;
      const since = Date.now() - this.#windowSeconds * 1000;
      return {
        total: counts.pending + counts.indexed + counts.failed,
        ...counts,
        recentlyIndexed: this.#stmt.recent.get(since)?.n ?? 0,
        windowSeconds: this.#windowSeconds,
        recentFailures: this.#stmt.failures.all(Math.max(0, recentFailures)).map((row) => ({
          key: row.key,
          reason: row.reason ?? 'unknown',
          at: new Date(row.updated_at),
        })),
      };
    })();
  }

  /** In one transaction with the count, so no write can fall between the two. */
  async recount(): Promise<Record<ImageState, number>> {
    return this.#db
      .transaction(() => {
        this.#db.exec(
          'UPDATE state_counts SET n = (SELECT count(*) FROM images WHERE images.state = state_counts.state)',
        );
        const counts = { pending: 0, indexed: 0, failed: 0 };
        for (const { state, n } of this.#stmt.counts.all()) counts[state] = n;
        return counts;
      })
      .immediate();
  }

  close(): void {
    this.#db.close();
  }

  /** True when a versioned write of `key` at `version` is older than what the key keeps. */
  #keepsNewer(key: string, version: Version | undefined): boolean {
    return version !== undefined && (this.#stmt.kept.get({ key })?.version ?? 0) > version;
  }

  /** Claims each entry's id in one transaction and runs `then` for those claimed; a collision names the owner. */
  #claimEach<E extends { key: string; id: string }>(entries: E[], then: (entry: E) => void): ClaimResult[] {
    return this.#db
      .transaction(() =>
        entries.map((entry): ClaimResult => {
          const owner = this.#stmt.owner.get(entry.id)?.key;
          if (owner !== undefined && owner !== entry.key) return { ok: false, ownerKey: owner };
          if (owner === undefined) this.#claimId(entry.key, entry.id);
          then(entry);
          return { ok: true };
        }),
      )
      .immediate();
  }

  /** A key re-claimed under a new id (never for the same key, ids derive from keys) drops its old id. */
  #claimId(key: string, id: string): void {
    this.#stmt.removeId.run(key);
    this.#stmt.claim.run(id, key);
  }
}

function toRecord(row: ImageRow): ImageRecord {
  const record: ImageRecord = {
    key: row.key,
    id: row.id,
    state: row.state,
    updatedAt: new Date(row.updated_at),
  };
  if (row.etag !== null) record.etag = row.etag;
  if (row.size !== null) record.size = row.size;
  if (row.reason !== null) record.reason = row.reason;
  if (row.model !== null) record.model = row.model;
  if (row.profile !== null) record.profile = row.profile;
  if (row.indexed_at !== null) record.indexedAt = new Date(row.indexed_at);
  if (row.version !== null) record.version = row.version;
  return record;
}
