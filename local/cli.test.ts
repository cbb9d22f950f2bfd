import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DuplicatesPage } from '../src/app/duplicates.ts';
import type { SearchResponse } from '../src/app/operations.ts';
import { waitUntilSettled } from '../src/app/settle.ts';
import {
  FIXTURES,
  photoFolder,
  REPO_ROOT,
  SEEDED_MANIFEST,
  type TempSystem,
  tempSystem,
} from '../src/app/test-system.ts';
import { createRouter } from '../src/http/router.ts';
import { DEFAULT_HTTP_LIMITS } from '../src/http/types.ts';
import { type LocalServer, startLocalServer } from './server.ts';

const run = promisify(execFile);

type Run = { code: number; stdout: string; stderr: string };

/**
 * Runs the CLI as a user would (a separate process, through the `pic-search` bin, from the repository like
 * `npm run cli`); never throws, returns the exit code too. `env` adds variables, e.g. INIT_CWD.
 */
async function cliIn(cwd: string, env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(REPO_ROOT, 'local/pic-search.mjs'), ...args],
      {
        cwd,
        env: { ...process.env, PIC_URL: '', PIC_MODEL_MANIFEST: SEEDED_MANIFEST, NO_COLOR: '1', ...env },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const cli = (...args: string[]) => cliIn(REPO_ROOT, { INIT_CWD: REPO_ROOT }, args);

describe('CLI usage, version and exit codes', () => {
  it.each([
    [[], 'error: give a command (ingest, search, count, …); see pic-search --help'],
    [['count', '--bogus'], "error: unknown option '--bogus'"],
    [['search'], "error: missing required argument 'image'"],
    [
      ['search', 'a.jpg', '--top-k', '500'],
      "error: option '-k, --top-k <n>' argument '500' is invalid. an integer 1..100",
    ],
    [['nosuch'], "error: unknown command 'nosuch'"],
    [['delete'], 'error: give the key of the image to delete, or --all --yes'],
  ])('%j exits 2 with one line on stderr', async (args, line) => {
    const { code, stdout, stderr } = await cli(...args);
    expect(code).toBe(2);
    expect(stderr).toBe(`${line}\n`);
    expect(stdout).toBe('');
  });

  it('prints the package version with --version, from any folder (the bin entry)', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin['pic-search']).toBe('local/pic-search.mjs');
    expect(await cliIn(tmpdir(), {}, ['--version'])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });
});

describe('CLI on a data directory (--data-dir)', () => {
  let folder: string;
  let dataDir: string;

  beforeAll(async () => {
    folder = await photoFolder({
      'pizza.jpg': 'pizza.jpg',
      'rose.jpg': 'orange-rose.jpg',
      'car.jpg': 'red-vintage-car.jpg',
    });
    await writeFile(join(folder, 'broken.jpg'), 'not a photo');
    dataDir = join(folder, '..', `${folder.split('/').pop()}-data`);
  });

  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('ingests a folder with an in-process worker until settled; a failed file is reported and exits 1', async () => {
    const { code, stdout } = await cli('--data-dir', dataDir, 'ingest', folder, '--prefix', 'trip');
    expect(code).toBe(1);
    expect(stdout).toContain('trip/: 4 queued, 0 unchanged, 0 removed');
    expect(stdout).toContain('this job  3 indexed, 1 failed');
    expect(stdout).toMatch(/^ {2}trip\/broken\.jpg: The data is not an image/m);
    expect(stdout).toContain('library   4 images, 3 indexed, 1 failed');
  });

  it('re-ingests with --json: only the failed file is queued again, fails again, and the job exits 1', async () => {
    const { code, stdout } = await cli('--data-dir', dataDir, '--json', 'ingest', folder, '--prefix', 'trip');
    expect(code).toBe(1);
    const { report, job } = JSON.parse(stdout);
    expect(report).toMatchObject({ prefix: 'trip/', queued: 1, unchanged: 3 });
    expect(job).toMatchObject({ queued: 1, indexed: 0, failures: [{ key: 'trip/broken.jpg' }] });
  });

  it('searches with a photo named relative to where the user ran it (INIT_CWD), honouring --top-k', async () => {
    const { code, stdout } = await cliIn(REPO_ROOT, { INIT_CWD: FIXTURES }, [
      '--data-dir',
      dataDir,
      'search',
      'pizza.jpg',
      '-k',
      '2',
      '--json',
    ]);
    expect(code).toBe(0);
    const response = JSON.parse(stdout) as SearchResponse;
    expect(response.results).toHaveLength(2);
    expect(response.results[0]?.key).toBe('trip/pizza.jpg');
  });

  it('reads the image before opening anything, and names the path it tried', async () => {
    const missing = await cliIn(REPO_ROOT, { INIT_CWD: tmpdir() }, [
      '--data-dir',
      dataDir,
      'search',
      'pizza.jpg',
    ]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: `error: Cannot read ${join(tmpdir(), 'pizza.jpg')}: no such file\n`,
    });
  });

  it('demo queues the sample library (samples/photos) in one step', async () => {
    const demoData = `${dataDir}-demo`;
    const { code, stdout } = await cli('--data-dir', demoData, 'demo', '--no-wait', '--json');
    await rm(demoData, { recursive: true, force: true });
    expect(code).toBe(0);
    expect(JSON.parse(stdout).report).toMatchObject({ prefix: 'photos/', queued: 27, files: { images: 27 } });
  });

  it('deletes one image, then refuses delete --all without --yes, then deletes everything', async () => {
    expect(await cli('--data-dir', dataDir, 'delete', 'trip/pizza.jpg')).toMatchObject({
      code: 0,
      stdout: 'deleted trip/pizza.jpg\n',
    });
    const refused = await cli('--data-dir', dataDir, 'delete', '--all');
    expect(refused).toMatchObject({
      code: 2,
      stderr: 'error: delete --all removes every vector and catalogue entry: add --yes to confirm\n',
    });
    const all = await cli('--data-dir', dataDir, 'delete', '--all', '--yes', '--json');
    expect(all.code).toBe(0);
    // On a data directory the CLI runs the cleanup itself, to the end.
    expect(JSON.parse(all.stdout)).toMatchObject({
      deleted: 2,
      // The two indexed images' records and the failed file's.
      task: { kind: 'delete-all', state: 'done', progress: { recordsRemoved: 3 } },
    });
    expect(await cli('--data-dir', dataDir, 'count')).toMatchObject({ code: 0, stdout: '0\n' });
    expect(await cli('--data-dir', dataDir, 'verify')).toMatchObject({ code: 0 });
    const verified = await cli('--data-dir', dataDir, 'verify', '--json');
    // The kept photos stay out of the index, and are not drift.
    const report = JSON.parse(verified.stdout) as { driftCount: number; keptOut: number; repaired: boolean };
    expect(report).toMatchObject({ driftCount: 0, repaired: false });
    expect(report.keptOut).toBeGreaterThan(0);
  });
});

describe('CLI against the running service (--url)', () => {
  let system: TempSystem;
  let server: LocalServer;
  let folder: string;

  beforeAll(async () => {
    system = await tempSystem();
    folder = await photoFolder({
      'pizza.jpg': 'pizza.jpg',
      'sheep.jpg': 'sheep-on-pasture.jpg',
      'sheep-copy.jpg': 'sheep-on-pasture.jpg',
    });
    const router = createRouter(system.operations, {
      mode: 'embedded',
      ingestFolder: system.ingestFolder,
      duplicates: system.duplicates,
    });
    server = await startLocalServer({
      router,
      limits: DEFAULT_HTTP_LIMITS,
      webRoot: folder,
      port: 0,
      host: '127.0.0.1',
    });
    await system.ingestFolder(folder, 'web');
    await system.startWorker();
    await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
  });

  afterAll(async () => {
    await server?.close();
    await system?.dispose();
    await rm(folder, { recursive: true, force: true });
  });

  it('counts and searches over HTTP', async () => {
    expect(await cli('--url', server.url, 'count')).toMatchObject({ code: 0, stdout: '3\n' });
    const count = await cli('--url', server.url, 'count', '--json');
    expect(JSON.parse(count.stdout)).toEqual({ count: 3 });
    const { stdout } = await cli(
      '--url',
      server.url,
      'search',
      join(FIXTURES, 'sheep-on-pasture.jpg'),
      '--json',
    );
    expect((JSON.parse(stdout) as SearchResponse).results[0]?.key).toMatch(/^web\/sheep(-copy)?\.jpg$/);
  });

  it('lists the duplicates over HTTP, as text and as JSON', async () => {
    const text = await cli('--url', server.url, 'duplicates');
    const json = await cli('--url', server.url, 'duplicates', '--json');

    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^keep {4}web\/sheep(-copy)?\.jpg {2}\(\d+×\d+, \d+ bytes\)$/m);
    expect(text.stdout).toContain('1 group at similarity');
    const page = JSON.parse(json.stdout) as DuplicatesPage;
    expect(page.groups.map((g) => g.members.map((m) => m.key))).toEqual([
      ['web/sheep-copy.jpg', 'web/sheep.jpg'],
    ]);
    expect(page.nextCursor).toBeNull();
  });

  it('prints progress as JSON', async () => {
    const { code, stdout } = await cli('--url', server.url, 'progress', '--json', '--failures', '5');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ total: 3, indexed: 3, pending: 0, failed: 0 });
  });

  it('says how to fix an unreachable service', async () => {
    const { code, stderr } = await cli('--url', 'http://127.0.0.1:9', 'count');
    expect(code).toBe(1);
    expect(stderr).toMatch(/Cannot reach the service at http:\/\/127\.0\.0\.1:9 .*--data-dir/);
  });
});
