/**
 * kill -9 mid-ingest: nothing is lost and nothing is doubled. The service is killed while the worker is
 * between batches or inside one; after a restart every image ends up indexed exactly once.
 */
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  fixturesDir,
  getJson,
  makeDataDir,
  type ProgressBody,
  removeDir,
  type Service,
  startService,
  waitForSettled,
} from '../../local/service-process.ts';
import { searchResponse } from '../../src/http/schemas.ts';
import { isImageKey } from '../../src/imaging/formats.ts';

let dataDir: string;
let service: Service | undefined;

beforeAll(async () => {
  dataDir = await makeDataDir();
});

afterAll(async () => {
  await service?.stop();
  await removeDir(dataDir);
});

it('indexes every image exactly once after the service is killed with SIGKILL mid-ingest', async () => {
  // Prepare
  const photos = (await readdir(fixturesDir)).filter(isImageKey);
  service = await startService(dataDir);
  await fetch(`${service.url}/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path: fixturesDir, prefix: 'photos/' }),
  });
  let progress: ProgressBody;
  do {
    await new Promise((wait) => setTimeout(wait, 100));
    progress = await getJson<ProgressBody>(`${service.url}/progress`);
  } while (progress.indexed < 3);
  // Act
  const signal = await service.stop('SIGKILL');
  service = await startService(dataDir);
  const settled = await waitForSettled(service, (p) => p.indexed === photos.length);
  // Assess
  expect(signal).toBeNull(); // killed, not exited
  expect(progress.pending, 'the kill came mid-ingest').toBeGreaterThan(0);
  expect(settled).toMatchObject({ total: photos.length, indexed: photos.length, failed: 0, pending: 0 });
  expect(await getJson(`${service.url}/count`)).toEqual({ count: photos.length });
  const response = await fetch(`${service.url}/search?topK=100`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: 'photos/pizza.jpg' }),
  });
  const keys = searchResponse.parse(await response.json()).results.map((r) => r.key);
  expect(keys.sort()).toEqual(photos.map((name) => `photos/${name}`).sort());
});
