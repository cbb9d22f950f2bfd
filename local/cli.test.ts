import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
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

/** Runs the CLI as a user would (a separate process); never throws, returns the exit code too. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'local/cli.ts', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, PIC_URL: '', PIC_MODEL_MANIFEST: SEEDED_MANIFEST, NO_COLOR: '1' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

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

  it('ingests a folder with an in-process worker until settled, reporting failures with reasons', async () => {
    const { code, stdout } = await cli('--data-dir', dataDir, 'ingest', folder, '--prefix', 'trip');
    expect(code).toBe(0);
    expect(stdout).toContain('trip/: 4 queued, 0 unchanged, 0 removed');
    expect(stdout).toContain('indexed 3, pending 0, failed 1');
    expect(stdout).toContain('trip/broken.jpg: The data is not an image');
  });

  it('searches with a photo, honouring --top-k', async () => {
    const { code, stdout } = await cli(
      '--data-dir',
      dataDir,
      'search',
      join(FIXTURES, 'pizza.jpg'),
      '-k',
      '2',
      '--json',
    );
    expect(code).toBe(0);
    const response = JSON.parse(stdout) as SearchResponse;
    expect(response.results).toHaveLength(2);
    expect(response.results[0]?.key).toBe('trip/pizza.jpg');
  });

  it('deletes one image, then refuses delete --all without --yes, then deletes everything', async () => {
    expect(await cli('--data-dir', dataDir, 'delete', 'trip/pizza.jpg')).toMatchObject({
      code: 0,
      stdout: 'deleted trip/pizza.jpg\n',
    });
    const refused = await cli('--data-dir', dataDir, 'delete', '--all');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('add --yes to confirm');
    expect(await cli('--data-dir', dataDir, 'delete', '--all', '--yes')).toMatchObject({
      code: 0,
      stdout: 'deleted 2 vectors\n',
    });
    expect(await cli('--data-dir', dataDir, 'count')).toMatchObject({ code: 0, stdout: '0\n' });
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

  it('says how to fix an unreachable service', async () => {
    const { code, stderr } = await cli('--url', 'http://127.0.0.1:9', 'count');
    expect(code).toBe(1);
    expect(stderr).toMatch(/Cannot reach the service at http:\/\/127\.0\.0\.1:9 .*--data-dir/);
  });
});
