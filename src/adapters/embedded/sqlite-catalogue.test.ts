import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteCatalogue } from './sqlite-catalogue.ts';

describe('SqliteCatalogue', () => {
  let dir: string;
  let path: string;
  let catalogue: SqliteCatalogue;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'catalogue-'));
    path = join(dir, 'catalogue.db');
    catalogue = new SqliteCatalogue(path);
  });

  afterEach(async () => {
    catalogue.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers progress in milliseconds with 300k images, and its counters match a full count', async () => {
    // Prepare: rows written straight into the file, as a big earlier ingest would have left them.
    const raw = new Database(path);
    const insert = raw.prepare(
      'INSERT INTO images (key, id, state, reason, updated_at, indexed_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const now = Date.now();
    raw.transaction(() => {
      for (let i = 0; i < 300_000; i++) {
        const state = i % 10 === 0 ? 'failed' : i % 3 === 0 ? 'pending' : 'indexed';
        // The last thousand rows were written just now, the rest an hour or more ago.
        const at = i >= 299_000 ? now - (300_000 - i) : now - 3_600_000 - (300_000 - i);
        insert.run(
          `k/${i}`,
          String(i),
          state,
          state === 'failed' ? `bad ${i}` : null,
          at,
          state === 'indexed' ? at : null,
        );
      }
    })();
    const truth = raw.prepare("SELECT count(*) AS n FROM images WHERE state = 'failed'").get() as {
      n: number;
    };
    raw.close();

    // Act
    await catalogue.progress(10);
    const started = performance.now();
    for (let i = 0; i < 10; i++) await catalogue.progress(10);
    const perCallMs = (performance.now() - started) / 10;
    const progress = await catalogue.progress(10);

    // Assess
    expect(progress.total).toBe(300_000);
    expect(progress.failed).toBe(truth.n);
    expect(progress.pending + progress.indexed + progress.failed).toBe(300_000);
    expect(progress.recentFailures[0]).toMatchObject({ key: 'k/299990', reason: 'bad 299990' });
    const recentIndexed = Array.from({ length: 1000 }, (_, j) => 299_000 + j).filter((i) => i % 10 && i % 3);
    expect(progress.recentlyIndexed).toBe(recentIndexed.length);
    expect(perCallMs).toBeLessThan(25);
  });

  it('lists records in the UTF-8 byte order of their keys', async () => {
    for (const key of ['\u{1F408}.jpg', '\uFF5E.jpg', 'z.jpg'])
      await catalogue.markPending([{ key, id: key.length + key }]);

    const keys: string[] = [];
    for await (const record of catalogue.list()) keys.push(record.key);

    expect(keys).toEqual(['z.jpg', '\uFF5E.jpg', '\u{1F408}.jpg']);
  });

  it('keeps its data across a reopen', async () => {
    await catalogue.markPending([{ key: 'a.jpg', id: '1', etag: 'e' }]);
    await catalogue.markIndexed([{ key: 'a.jpg', id: '1', etag: 'e', model: 'm', profile: 'p' }]);
    catalogue.close();

    catalogue = new SqliteCatalogue(path);

    expect(await catalogue.get('a.jpg')).toMatchObject({ state: 'indexed', etag: 'e', model: 'm' });
    expect((await catalogue.progress(0)).indexed).toBe(1);
  });
});
