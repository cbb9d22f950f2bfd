import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirLockedError, LOCK_FILE, lockDataDir } from './data-lock.ts';

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pic-lock-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('the data folder lock', () => {
  it('refuses a second holder while the first runs, naming its PID, and frees the folder on release', async () => {
    const first = lockDataDir(dataDir);
    // The parent of this process stands in for another live service.
    expect(() => lockDataDir(dataDir, process.ppid)).toThrow(DataDirLockedError);
    expect(() => lockDataDir(dataDir, process.ppid)).toThrow(`(PID ${process.pid})`);
    first.release();
    lockDataDir(dataDir, process.ppid);
    expect((await readFile(join(dataDir, LOCK_FILE), 'utf8')).trim()).toBe(String(process.ppid));
  });

  it('takes over a lock whose process is gone', async () => {
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']));
    await writeFile(join(dataDir, LOCK_FILE), `${dead}\n`);
    lockDataDir(dataDir);
    expect((await readFile(join(dataDir, LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
  });
});
