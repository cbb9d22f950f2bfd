import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { vectorIdOf } from '../domain/ids.ts';
import type { IndexGeneration } from '../domain/ports.ts';
import { writeSeededModel } from '../model/seeded.ts';
import type { EmbeddedSystem } from '../wiring/embedded.ts';
import { waitUntilSettled } from './settle.ts';
import {
  FIXTURES,
  openWithModel,
  photoFolder,
  SEEDED_MANIFEST,
  type TempSystem,
  taskDone,
  tempSystem,
} from './test-system.ts';
import { type VerifyReport, verifyLibrary, verifyReportLines } from './verify.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const fixture = (name: string) => readFile(join(FIXTURES, name));
const driftCounts = (report: VerifyReport) =>
  Object.fromEntries(Object.entries(report.drift).map(([kind, { count }]) => [kind, count]));

async function verified(system: EmbeddedSystem, repair: boolean): Promise<VerifyReport> {
  await system.operations.verify({ repair });
  return (await taskDone(system.operations, 'verify')).report as VerifyReport;
}

describe('verify: stale versions (embedded: SQLite and the local index)', () => {
  it('reports an object overwritten with no job queued and an older look’s vector written after its record; --repair re-queues both, and a second verify finds none', async () => {
    // Arrange: three photos indexed; the watcher is off, so a change to the bucket queues nothing.
    const system: TempSystem = await tempSystem();
    cleanups.push(() => system.dispose());
    const folder = await photoFolder({
      'pizza.jpg': 'pizza.jpg',
      'rose.jpg': 'orange-rose.jpg',
      'sheep.jpg': 'sheep-on-pasture.jpg',
    });
    cleanups.push(() => rm(folder, { recursive: true, force: true }));
    await system.ingestFolder(folder, 'lib');
    await system.startWorker();
    await waitUntilSettled(system.operations, { timeoutMs: 120_000 });
    const { images, index, queue, catalogue } = system.stores;
    const [car, chimpanzee, rose] = await Promise.all(
      ['red-vintage-car.jpg', 'chimpanzee.jpg', 'orange-rose.jpg'].map(fixture),
    );
    // A look at the rose taken before it was overwritten: the etag and the vector it made.
    const roseId = vectorIdOf('lib/rose.jpg');
    const older = { etag: (await catalogue.get('lib/rose.jpg'))?.etag, vector: await index.get(roseId) };

    // Act 1: the pizza overwritten with no job; the rose overwritten and indexed, then the older look's
    // vector written late through the real index (vector writes are not conditional).
    await images.put('lib/pizza.jpg', chimpanzee as Buffer);
    await images.put('lib/rose.jpg', car as Buffer);
    await queue.send([{ kind: 'upsert', key: 'lib/rose.jpg' }]);
    await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
    await index.upsert([
      { id: roseId, key: 'lib/rose.jpg', etag: older.etag, vector: older.vector as Float32Array },
    ]);
    const found = await verified(system, false);

    // Assess 1: both are stale versions, nothing else drifted.
    expect(driftCounts(found)).toMatchObject({ staleVersions: 2, missingVectors: 0, ghostVectors: 0 });
    expect(found.driftCount).toBe(2);
    expect(found.drift.staleVersions.examples.sort()).toEqual(['lib/pizza.jpg', 'lib/rose.jpg']);
    const servedBefore = await system.operations.searchByImage(rose as Buffer, { topK: 1 });
    expect(servedBefore.results[0]).toMatchObject({ key: 'lib/rose.jpg' });

    // Act 2: repair, let the worker settle, verify again.
    expect((await verified(system, true)).repaired).toBe(true);
    await waitUntilSettled(system.operations, { timeoutMs: 120_000 });
    const after = await verified(system, false);

    // Assess 2: no drift, and the index serves what the bucket holds.
    expect(after.driftCount).toBe(0);
    for (const [bytes, key] of [
      [chimpanzee, 'lib/pizza.jpg'],
      [car, 'lib/rose.jpg'],
    ] as const) {
      const hits = (await system.operations.searchByImage(bytes as Buffer, { topK: 2 })).results;
      expect(hits.find((hit) => hit.key === key)?.score).toBeGreaterThanOrEqual(0.999);
    }
    const roseHits = (await system.operations.searchByImage(rose as Buffer, { topK: 3 })).results;
    expect(roseHits.find((hit) => hit.key === 'lib/rose.jpg')?.score ?? 0).toBeLessThan(0.999);
  });
});

describe('verify during a re-index (embedded)', () => {
  it('reports no false drift while the next generation is built, checks the rest, and verifies the new one after the switch', async () => {
    // Arrange: a library indexed by the classic MAC model, then the default model configured.
    const dataDir = await mkdtemp(join(tmpdir(), 'pic-verify-reindex-'));
    const modelDir = await mkdtemp(join(tmpdir(), 'pic-verify-model-'));
    const folder = await photoFolder({
      'pizza.jpg': 'pizza.jpg',
      'rose.jpg': 'orange-rose.jpg',
      'sheep.jpg': 'sheep-on-pasture.jpg',
    });
    cleanups.push(() =>
      Promise.all([dataDir, modelDir, folder].map((dir) => rm(dir, { recursive: true, force: true }))),
    );
    const open = (manifest: string) => openWithModel(dataDir, manifest, 500);
    const mac = await writeSeededModel({ modelDir, descriptor: 'mac', whitening: 0 });
    const classic = await open(mac.manifestPath);
    await classic.ingestFolder(folder, 'lib');
    await classic.startWorker();
    await waitUntilSettled(classic.operations, { timeoutMs: 120_000 });
    await classic.close();
    const system = await open(SEEDED_MANIFEST);
    cleanups.push(() => system.close());
    const { catalogue, images, queue } = system.stores;
    const model = system.ingestEmbedder.info.model;
    const indexedByNewModel = async (key: string) => {
      const record = await catalogue.get(key);
      return record?.state === 'indexed' && record.model === model;
    };
    // Real drift, and what holds the build open (it waits for every pending record): a pending record whose
    // object and job are gone, as a crash between marking and queueing, then a delete, leaves it.
    await catalogue.markPending([{ key: 'lib/held.jpg', id: vectorIdOf('lib/held.jpg') }]);

    // Act 1: re-index; a photo uploaded during the build is indexed into the new generation only; verify.
    await system.operations.reindex();
    await system.operations.upload([{ name: 'car.jpg', body: await fixture('red-vintage-car.jpg') }], 'lib');
    await until(async () =>
      (
        await Promise.all(
          ['pizza', 'rose', 'sheep', 'car'].map((name) => indexedByNewModel(`lib/${name}.jpg`)),
        )
      ).every(Boolean),
    );
    const during = await verified(system, false);

    // Assess 1: the kinds that compare with the index are skipped, saying why; the others are checked.
    expect((await system.operations.progress(0)).tasks.reindex).toMatchObject({
      state: 'running',
      report: { step: 'build' },
    });
    expect(driftCounts(during)).toMatchObject({ recordsWithoutObjects: 1, missingVectors: 0, counters: 0 });
    expect(during.skipped).toMatchObject({
      kinds: ['missingVectors', 'ghostVectors', 'staleVersions', 'notIndexed'],
      reason: expect.stringMatching(/re-index is building .* Verify again after the switch/),
    });
    expect(verifyReportLines(during)).toContainEqual(
      expect.stringMatching(
        /^skipped {3}missingVectors, ghostVectors, staleVersions, notIndexed: a re-index/,
      ),
    );
    expect(during.drift.recordsWithoutObjects.examples).toEqual(['lib/held.jpg']);
    expect(during).toMatchObject({ driftCount: 1, records: 5 });

    // Act 2: the held photo arrives with its job; the build finishes and switches; verify.
    await images.put('lib/held.jpg', await fixture('orange-rose.jpg'));
    await queue.send([{ kind: 'upsert', key: 'lib/held.jpg' }]);
    await until(async () => (await system.operations.progress(0)).tasks.reindex?.state === 'done');
    const after = await verified(system, false);

    // Assess 2: verified in full against the new generation.
    expect(after.skipped).toBeUndefined();
    expect(after).toMatchObject({ driftCount: 0, records: 5, vectors: 5 });
  });
});

describe('verify while a re-index starts', () => {
  it('skips the checks against the index when a build starts while it lists the stores', async () => {
    // Arrange: one photo indexed; the real catalogue, wrapped so that a re-index's start (its one write of
    // the generations record) lands while verify lists the records.
    const system: TempSystem = await tempSystem();
    cleanups.push(() => system.dispose());
    await system.operations.upload([{ name: 'pizza.jpg', body: await fixture('pizza.jpg') }]);
    await system.startWorker();
    await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
    const { catalogue, tasks, index } = system.stores;
    const generations = await tasks.indexGenerations();
    const live = generations?.live as IndexGeneration;
    const building: IndexGeneration = { name: 'gnext', identity: { ...live.identity, model: 'next-model' } };
    const startsMidway = new Proxy(catalogue, {
      get(target, property) {
        if (property !== 'list') return Reflect.get(target, property, target).bind(target);
        return async function* (prefix?: string) {
          yield* target.list(prefix);
          await tasks.saveIndexGenerations({ live, building });
        };
      },
    });
    const deps = {
      ...system.stores,
      catalogue: startsMidway,
      idOf: vectorIdOf,
      imagePrefix: '',
      model: system.ingestEmbedder.info,
    };

    // Act
    const during = await verifyLibrary(deps, { repair: false });
    await tasks.saveIndexGenerations({ live });
    const after = await verifyLibrary({ ...deps, catalogue }, { repair: false });

    // Assess
    expect(during.skipped?.reason).toMatch(/'gnext'/);
    expect(after.skipped).toBeUndefined();
    expect(after).toMatchObject({ driftCount: 0, records: 1, vectors: 1 });
    expect(await index.count()).toBe(1);
  });
});

async function until(condition: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms`);
    await new Promise((resume) => setTimeout(resume, 200));
  }
}
