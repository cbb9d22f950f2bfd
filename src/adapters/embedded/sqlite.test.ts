import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openSqlite } from './sqlite.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sqlite-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

it('opens every embedded database in WAL mode with FULL sync, so a commit is on the disk when it returns', () => {
  const db = openSqlite(join(dir, 'any.db'));
  expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
  // 2 = FULL (https://www.sqlite.org/pragma.html#pragma_synchronous)
  expect(db.pragma('synchronous', { simple: true })).toBe(2);
  db.close();
});
