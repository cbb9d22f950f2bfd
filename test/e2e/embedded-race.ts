/**
 * The randomized race (test/race/race.ts) against the real embedded service: `npm start`'s code in a child
 * process, watching its bucket folder. Half the writes go through the HTTP API (PUT and DELETE
 * /images/{key}), half straight into the bucket folder as a user's file manager would (a hidden temporary
 * file renamed over the key, rm, rename). Used by test/e2e/race.test.ts and scripts/race.ts.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  getJson,
  keyPath,
  makeDataDir,
  type ProgressBody,
  removeDir,
  type Service,
  startService,
} from '../../local/service-process.ts';
import { FolderObjectStore } from '../../src/adapters/embedded/folder-object-store.ts';
import { SqliteCatalogue } from '../../src/adapters/embedded/sqlite-catalogue.ts';
import { SEEDED_MANIFEST } from '../../src/app/test-system.ts';
import { contentPool, type RaceReport, type RaceTarget, runRace } from '../race/race.ts';

export async function runEmbeddedRace(options: {
  seed: number;
  operations: number;
  keys: number;
}): Promise<RaceReport> {
  const pool = await contentPool();
  const workDir = await makeDataDir();
  const dataDir = join(workDir, 'data');
  const service = await startService(dataDir, {
    PIC_MODEL_MANIFEST: SEEDED_MANIFEST,
    PIC_BATCH_SIZE: '4',
    PIC_LOG_LEVEL: process.env.RACE_LOG_LEVEL ?? 'warn',
  });
  const bucket = new FolderObjectStore(join(dataDir, 'bucket'));
  const catalogue = new SqliteCatalogue(join(dataDir, 'catalogue.db'));
  try {
    const report = await runRace(embeddedTarget(service, bucket, catalogue), pool, {
      ...options,
      prefix: 'race/',
    });
    if (process.env.RACE_LOG_FILE) {
      await writeFile(process.env.RACE_LOG_FILE, `${report.journal.join('\n')}\n\n${service.output()}`);
    }
    return report;
  } finally {
    catalogue.close();
    await service.stop();
    await removeDir(workDir);
  }
}

function embeddedTarget(service: Service, bucket: FolderObjectStore, catalogue: SqliteCatalogue): RaceTarget {
  const fileOf = (key: string) => join(bucket.root, ...key.split('/'));
  const api = async (method: string, key: string, body?: Buffer) => {
    const response = await fetch(`${service.url}/images/${keyPath(key)}`, {
      method,
      ...(body ? { headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(body) } : {}),
    });
    if (!response.ok) throw new Error(`${method} ${key}: ${response.status} ${await response.text()}`);
  };
  let temp = 0;
  return {
    async put(key, body, { valid, via }) {
      // The API refuses what is not an image: corrupt bytes arrive through the folder only.
      if (valid && via < 0.5) return api('PUT', key, body);
      const file = fileOf(key);
      await mkdir(join(file, '..'), { recursive: true });
      const hidden = join(file, '..', `.${key.split('/').pop()}.${temp++}.part`);
      await writeFile(hidden, body);
      await rename(hidden, file);
    },
    delete: (key, via) => (via < 0.5 ? api('DELETE', key) : rm(fileOf(key))),
    rename: (from, to) => rename(fileOf(from), fileOf(to)),
    settle: () => waitForQuiet(service),
    count: async () => (await getJson<{ count: number }>(`${service.url}/count`)).count,
    progress: () => getJson<ProgressBody>(`${service.url}/progress`),
    async search(body, topK) {
      const response = await fetch(`${service.url}/search?topK=${topK}`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: new Uint8Array(body),
      });
      if (!response.ok) throw new Error(`search: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { results: { key: string; score: number }[] }).results;
    },
    records: () => catalogue.list(),
    etagOf: async (key) => (await bucket.head(key))?.etag,
  };
}

/**
 * Settled: nothing pending or queued at every reading for 3 s, longer than the bucket watcher's longest
 * wait (2 s), so changes it has yet to queue are not missed.
 */
async function waitForQuiet(service: Service, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietSince: number | undefined;
  while (Date.now() < deadline) {
    const p = await getJson<ProgressBody>(`${service.url}/progress`);
    const idle = p.pending === 0 && p.queue.visible === 0 && p.queue.inFlight === 0;
    if (!idle) quietSince = undefined;
    else if (quietSince === undefined) quietSince = Date.now();
    else if (Date.now() - quietSince > 3000) return;
    await new Promise((resume) => setTimeout(resume, 250));
  }
  throw new Error('the service did not settle');
}
