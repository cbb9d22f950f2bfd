import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, IndexMismatchError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import type { IndexIdentity } from '../domain/ports.ts';
import { writeSeededModel } from '../model/seeded.ts';
import { dataLayout, type EmbeddedSystem } from '../wiring/embedded.ts';
import { generationName } from './index-generations.ts';
import type { SearchResponse } from './operations.ts';
import { waitUntilSettled } from './settle.ts';
import { runTaskSlice, startReindex, type TaskDeps, type TaskView } from './tasks.ts';
import { FIXTURES, openWithModel, photoFolder, REPO_ROOT, SEEDED_MANIFEST } from './test-system.ts';

const PHOTOS = {
  'pizza.jpg': 'pizza.jpg',
  'chimpanzee.jpg': 'chimpanzee.jpg',
  'orange-rose.jpg': 'orange-rose.jpg',
  'sheep-on-pasture.jpg': 'sheep-on-pasture.jpg',
};
const MAC_MODEL = 'vgg16-seeded-42';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function waitForTask(system: EmbeddedSystem, done: (task: TaskView) => boolean): Promise<TaskView> {
  for (;;) {
    const task = (await system.operations.progress(0)).tasks.reindex;
    if (task && done(task)) return task;
    await new Promise((resume) => setTimeout(resume, 200));
  }
}

describe('re-index on a model change (embedded)', () => {
  let dataDir: string;
  let modelDir: string;
  let folder: string;
  let macManifest: string;
  let system: EmbeddedSystem | undefined;

  const open = (manifest: string) => openWithModel(dataDir, manifest, 2000);

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'pic-reindex-'));
    modelDir = await mkdtemp(join(tmpdir(), 'pic-reindex-model-'));
    folder = await photoFolder(PHOTOS);
    // The classic recipe: a library built before the default became GeM + whitening.
    macManifest = (await writeSeededModel({ modelDir, descriptor: 'mac', whitening: 0 })).manifestPath;
    system = await open(macManifest);
    await system.ingestFolder(folder, 'old');
    await system.startWorker();
    await waitUntilSettled(system.operations, { timeoutMs: 120_000 });
    await system.close();
    system = undefined;
  });

  afterAll(async () => {
    await system?.close();
    await Promise.all([dataDir, modelDir, folder].map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("refuses searches with a 409 naming the re-index when the live index's model is not kept", async () => {
    // Prepare: the default model configured on the classic library, whose kept model is gone.
    await rm(join(dataLayout(dataDir).models, 'original'), { recursive: true });
    system = await open(SEEDED_MANIFEST);
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));

    // Act
    const refused = await system.operations.searchByImage(query, { topK: 3 }).catch((error: Error) => error);
    await system.close();
    system = undefined;

    // Assess
    expect(refused).toBeInstanceOf(IndexMismatchError);
    expect((refused as Error).message).toMatch(/re-index/i);
  });

  it('lists and queues the bucket a page per slice, each slice resuming after the key the task saved', async () => {
    // Prepare: the re-index started and run slice by slice here (no worker), three objects a page.
    system = await open(SEEDED_MANIFEST);
    expect(system.indexMismatch).toBeInstanceOf(IndexMismatchError);
    const deps: TaskDeps = {
      ...system.stores,
      idOf: vectorIdOf,
      imagePrefix: '',
      model: system.embedder.info,
      generations: system.stores.index,
    };
    const task = await startReindex(deps);
    const slice = async () => {
      await runTaskSlice(deps, task.id, { batchSize: 3, sliceMs: 0 });
      const saved = await system?.stores.tasks.get(task.id);
      const states: Record<string, string> = {};
      for await (const record of deps.catalogue.list()) states[record.key] = record.state;
      return { report: saved?.report, progress: saved?.progress, states };
    };

    // Act
    const prepared = await slice();
    const firstPage = await slice();
    const lastPage = await slice();
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));
    const refused = await system.operations.searchByImage(query, { topK: 3 }).catch((error: Error) => error);
    await system.close();
    system = undefined;

    // Assess: the first page claimed three images, the next slice the fourth, after the saved key.
    expect(prepared.report).toMatchObject({ step: 'queue' });
    expect(firstPage).toMatchObject({
      report: { step: 'queue', listedAfter: 'old/pizza.jpg' },
      progress: { queued: 3 },
      states: {
        'old/chimpanzee.jpg': 'pending',
        'old/orange-rose.jpg': 'pending',
        'old/pizza.jpg': 'pending',
        'old/sheep-on-pasture.jpg': 'indexed',
      },
    });
    expect(lastPage).toMatchObject({
      report: { step: 'build', listedAfter: 'old/sheep-on-pasture.jpg' },
      progress: { queued: 4 },
    });
    expect(Object.values(lastPage.states)).toEqual(['pending', 'pending', 'pending', 'pending']);
    expect((refused as Error).message).toMatch(/A re-index for .* is running \(\d+ of \d+ images done\)/);
  });

  it('abandons the re-index after a restart with the old model configured again, keeping the old index', async () => {
    // Act: the service restarted with the classic model while the re-index was under way.
    system = await open(macManifest);
    await system.startWorker();
    const abandoned = await waitForTask(system, (task) => task.state !== 'running');
    const search = await system.operations.searchByImage(await readFile(join(FIXTURES, 'pizza.jpg')), {
      topK: 3,
    });
    await system.close();
    system = undefined;

    // Assess
    expect(abandoned).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/configured model changed/),
    });
    expect(search).toMatchObject({ model: MAC_MODEL, results: [{ key: 'old/pizza.jpg' }, {}, {}] });
    const building = dataLayout(dataDir).index.replace(
      /\.db$/,
      `-${generationName(abandoned.options.target as IndexIdentity)}.db`,
    );
    expect(await exists(building)).toBe(false);
  });

  it('serves the old index with its kept model while the new one is built, switches, and drops the old', async () => {
    // Prepare: the seeded model regenerated in place with the default head (the same file names), so the
    // old model is at hand only as the copy kept with its generation.
    const keptModel = join(dataLayout(dataDir).models, 'original', 'vgg16-seeded.onnx');
    expect((await stat(keptModel)).ino).toBe((await stat(join(modelDir, 'vgg16-seeded.onnx'))).ino);
    const regenerated = await writeSeededModel({ modelDir });
    expect(regenerated.manifestPath).toBe(macManifest);
    system = await open(macManifest);
    const { operations } = system;
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));
    const newModel = system.embedder.info.model;
    expect(newModel).not.toBe(MAC_MODEL);
    expect(system.indexMismatch).toBeInstanceOf(IndexMismatchError);
    const before = await operations.searchByImage(query, { topK: 10 });
    expect(before.model).toBe(MAC_MODEL);
    expect(before.results[0]).toMatchObject({ key: 'old/pizza.jpg' });

    // Act: re-index again; a photo is uploaded and one deleted during the build, and searches run all along.
    const task = await operations.reindex();
    expect(task).toMatchObject({ state: 'running', options: { target: { model: newModel } } });
    expect((await operations.reindex()).id).toBe(task.id);
    await operations.deleteImage('old/orange-rose.jpg');
    await operations.upload(
      [{ name: 'lighthouse.jpg', body: await readFile(join(FIXTURES, 'brick-lighthouse.jpg')) }],
      'new',
    );
    const answers: SearchResponse[] = [];
    for (;;) {
      answers.push(await operations.searchByImage(query, { topK: 10 }));
      const reindex = (await operations.progress(0)).tasks.reindex;
      if (reindex?.state !== 'running') {
        expect(reindex).toMatchObject({ state: 'done', progress: { indexed: 4, failed: 0, total: 4 } });
        break;
      }
      await new Promise((resume) => setTimeout(resume, 200));
    }
    const after = await operations.searchByImage(query, { topK: 10 });

    // Assess: every answer came whole from one generation, the old model's until the switch.
    const models = answers.map((answer) => answer.model);
    const switchedAt = models.indexOf(newModel);
    expect(models.slice(0, Math.max(1, switchedAt)).every((model) => model === MAC_MODEL)).toBe(true);
    expect(models.slice(switchedAt < 0 ? models.length : switchedAt).every((m) => m === newModel)).toBe(true);
    const oldKeys = before.results.map((r) => r.key).filter((key) => key !== 'old/orange-rose.jpg');
    for (const answer of answers.filter((a) => a.model === MAC_MODEL)) {
      expect(answer.results.map((r) => r.key)).toEqual(oldKeys);
    }
    expect(after.model).toBe(newModel);
    expect(after.results[0]).toMatchObject({ key: 'old/pizza.jpg' });
    expect(after.results[0]?.score).toBeGreaterThan(0.99);
    expect(await operations.count()).toBe(4);
    expect(after.results.map((r) => r.key).sort()).toEqual(
      ['new/lighthouse.jpg', 'old/chimpanzee.jpg', 'old/pizza.jpg', 'old/sheep-on-pasture.jpg'].sort(),
    );
    const lighthouse = await operations.searchByImage(
      await readFile(join(FIXTURES, 'brick-lighthouse.jpg')),
      {
        topK: 1,
      },
    );
    expect(lighthouse.results[0]).toMatchObject({ key: 'new/lighthouse.jpg' });
    const paths = dataLayout(dataDir);
    expect(await exists(paths.index)).toBe(false);
    expect(
      await exists(paths.index.replace(/\.db$/, `-${generationName(system.stores.index.writer)}.db`)),
    ).toBe(true);
    expect((await operations.health()).index).toMatchObject({ model: newModel });
    await expect(operations.reindex()).rejects.toThrow(ConflictError);
    const kept = await readdir(paths.models);
    expect(kept).toEqual([generationName(system.stores.index.writer)]);
  });

  it('keeps the switch after a restart, and the CLI says there is nothing more to re-index', async () => {
    await system?.close();
    system = await open(macManifest);
    expect(system.indexMismatch).toBeUndefined();
    expect(await system.operations.count()).toBe(4);
    await system.close();
    system = undefined;

    const refused = await promisify(execFile)(
      process.execPath,
      [join(REPO_ROOT, 'local/pic-search.mjs'), '--data-dir', dataDir, 'reindex'],
      { env: { ...process.env, PIC_URL: '', PIC_MODEL_MANIFEST: macManifest, NO_COLOR: '1' } },
    ).catch((error: { code: number; stdout: string; stderr: string }) => error);
    expect(refused).toMatchObject({ code: 1 });
    expect(`${refused.stdout}${refused.stderr}`).toMatch(/nothing to re-index/);
  });
});
