/**
 * Test factories for the unit suites of src/app and local/: a real embedded system (folder bucket,
 * SQLite queue and catalogue, exact index, the seeded model) in a temporary data directory.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../config.ts';
import type { VectorIndex } from '../domain/ports.ts';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { createEmbeddedSystem, type EmbeddedOptions, type EmbeddedSystem } from '../wiring/embedded.ts';
import type { Operations } from './operations.ts';
import type { TaskView } from './tasks.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** The sample photos shipped in the repository. */
export const FIXTURES = SAMPLE_PHOTOS_DIR;
/** Tests pin the seeded model (made by the global setup) even where pretrained weights are installed. */
export const SEEDED_MANIFEST = resolve(REPO_ROOT, 'models/vgg16-seeded.manifest.json');

export interface TempSystem extends EmbeddedSystem {
  dataDir: string;
  /** Closes the system and deletes its data directory. */
  dispose(): Promise<void>;
}

export async function tempSystem(
  env: Record<string, string> = {},
  options: EmbeddedOptions = {},
): Promise<TempSystem> {
  const dataDir = await mkdtemp(join(tmpdir(), 'pic-search-'));
  const config = loadConfig({
    PIC_DATA_DIR: dataDir,
    PIC_BATCH_SIZE: '4',
    PIC_WATCH: 'false',
    PIC_MODEL_MANIFEST: SEEDED_MANIFEST,
    ...env,
  });
  const system = await createEmbeddedSystem(config, options);
  return Object.assign(system, {
    dataDir,
    async dispose() {
      await system.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  });
}

/** A fresh folder holding copies of the named fixture photos (optionally under sub-folders: "a/x.jpg"). */
export async function photoFolder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pic-photos-'));
  for (const [target, fixture] of Object.entries(files)) {
    await mkdir(join(dir, target, '..'), { recursive: true });
    await copyFile(join(FIXTURES, fixture), join(dir, target));
  }
  return dir;
}

/** Polls /progress until the newest task of this kind is done (or failed), and returns it. */
export async function taskDone(
  operations: Operations,
  kind: 'deleteAll' | 'verify',
  timeoutMs = 60_000,
): Promise<TaskView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = (await operations.progress(0)).tasks[kind];
    if (task && task.state !== 'running') return task;
    if (Date.now() > deadline) throw new Error(`the ${kind} task did not finish in ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** A seeded pseudo-random unit vector (tests that write vectors straight into an index). */
export function seededUnitVector(seed: number, dimension: number): Float32Array {
  let state = (seed * 2654435761) >>> 0;
  const v = new Float32Array(dimension);
  for (let i = 0; i < dimension; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    v[i] = state / 4294967296 - 0.5;
  }
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** The real index, with a switch that makes every call fail as an unreachable server does. */
export function switchableIndex(index: VectorIndex): VectorIndex & { down: boolean } {
  const guard =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (wrapper.down) throw new Error('connect ECONNREFUSED 127.0.0.1:19530 (index switched off)');
      return call(...args);
    };
  const wrapper = {
    down: false,
    ensure: guard((identity) => index.ensure(identity)),
    identity: guard(() => index.identity()),
    upsert: guard((items) => index.upsert(items)),
    delete: guard((ids) => index.delete(ids)),
    search: guard((vector, options) => index.search(vector, options)),
    searchEach: guard((vectors, options) => index.searchEach(vectors, options)),
    get: guard((id) => index.get(id)),
    getMany: guard((ids) => index.getMany(ids)),
    count: guard(() => index.count()),
    clear: guard(() => index.clear()),
    entries: () => index.entries(),
  } satisfies VectorIndex & { down: boolean };
  return wrapper;
}

/**
 * An embedded system on `dataDir` with the model of `manifest`, its tasks polled every 200 ms and an old
 * generation dropped `dropGraceMs` after a switch: the re-index tests open one library with two models.
 */
export function openWithModel(
  dataDir: string,
  manifest: string,
  dropGraceMs: number,
): Promise<EmbeddedSystem> {
  return createEmbeddedSystem(
    loadConfig({
      PIC_DATA_DIR: dataDir,
      PIC_BATCH_SIZE: '4',
      PIC_WATCH: 'false',
      PIC_MODEL_MANIFEST: manifest,
    }),
    { taskOptions: { pollMs: 200, dropGraceMs } },
  );
}
