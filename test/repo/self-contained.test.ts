import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/app/test-system.ts';

const run = promisify(execFile);

/** The repository's files as a clone has them: tracked, plus new ones git does not ignore. */
async function repositoryFiles(): Promise<string[]> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO_ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.split('\0').filter(Boolean);
}

const TEXT = /\.(ts|mts|mjs|js|json|ya?ml|py|sh|toml|txt)$|(^|\/)(Dockerfile|\.[a-z]+rc)$/;
/** Spelled in pieces so that this file does not match itself. */
const OUTSIDE = [['..', 'shared'].join('/'), ['', 'work', ''].join('/')];

describe('the repository is self-contained (nothing outside it is read)', () => {
  let files: string[];
  beforeAll(async () => {
    files = await repositoryFiles();
  });

  it('names no folder outside it in code, configuration or scripts', async () => {
    const code = files.filter((file) => TEXT.test(file));
    expect(code.length).toBeGreaterThan(100);
    const offending: string[] = [];
    for (const file of code) {
      const text = await readFile(join(REPO_ROOT, file), 'utf8');
      for (const needle of OUTSIDE) if (text.includes(needle)) offending.push(`${file}: ${needle}`);
    }
    expect(offending).toEqual([]);
  });

  describe('a copy in an empty folder', () => {
    let copy: string;
    beforeAll(async () => {
      copy = await mkdtemp(join(tmpdir(), 'pic-clone-'));
      for (const file of files) {
        await mkdir(dirname(join(copy, file)), { recursive: true });
        await copyFile(join(REPO_ROOT, file), join(copy, file));
      }
      // What `npm ci` and the first test run would make: the installed packages and the seeded model.
      await symlink(join(REPO_ROOT, 'node_modules'), join(copy, 'node_modules'));
      await symlink(join(REPO_ROOT, 'models'), join(copy, 'models'));
    });
    afterAll(() => rm(copy, { recursive: true, force: true }));

    it('passes the photo-dependent decoding tests with only its own files', async () => {
      const { stdout } = await run(
        process.execPath,
        [
          join(copy, 'node_modules/vitest/vitest.mjs'),
          'run',
          '--project',
          'unit',
          'src/imaging/decode.test.ts',
        ],
        { cwd: copy, env: { ...process.env, NO_COLOR: '1', INIT_CWD: copy } },
      );
      expect(stdout).toMatch(/Tests\s+\d+ passed/);
      expect(stdout).not.toMatch(/failed|skipped/);
    });
  });
});
