import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import type { Job } from '../domain/ports.ts';
import { thumbnailKeyOf } from './keys.ts';
import { waitUntilSettled } from './settle.ts';
import { FIXTURES, photoFolder, type TempSystem, tempSystem } from './test-system.ts';
import { Worker } from './worker.ts';

const SETTLE = { timeoutMs: 120_000 };

async function indexedKeys(system: TempSystem): Promise<string[]> {
  const query = await readFile(join(FIXTURES, 'pizza.jpg'));
  const { results } = await system.operations.searchByImage(query, { topK: 100 });
  return results.map((r) => r.key).sort();
}

describe('worker: bad files and hash collisions', () => {
  const TWINS = new Set(['mixed/twin-a.jpg', 'mixed/twin-b.jpg']);
  let system: TempSystem;
  let folder: string;

  beforeAll(async () => {
    // Both twins get the same vector id, as a 63-bit hash collision would give them.
    const idOf = (key: string) => (TWINS.has(key) ? '4242' : vectorIdOf(key));
    system = await tempSystem({ PIC_MAX_PIXELS: '4000000' }, { idOf });
    folder = await photoFolder({
      'pizza.jpg': 'pizza.jpg',
      'sheep.jpg': 'sheep-on-pasture.jpg',
      'twin-a.jpg': 'chimpanzee.jpg',
      'twin-b.jpg': 'orange-rose.jpg',
    });
    const pizza = await readFile(join(FIXTURES, 'pizza.jpg'));
    await writeFile(join(folder, 'empty.jpg'), '');
    await writeFile(join(folder, 'text.jpg'), 'this is a shopping list, not a photo');
    await writeFile(join(folder, 'truncated.jpg'), pizza.subarray(0, pizza.length / 3));
    await writeFile(join(folder, 'document.png'), '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n');
    const grey = { width: 1000, height: 10, channels: 3 as const, background: '#808080' };
    await sharp({ create: grey }).png().toFile(join(folder, 'strip.png'));
    await sharp({ create: { ...grey, width: 2500, height: 2000 } })
      .png()
      .toFile(join(folder, 'huge.png'));
    await system.ingestFolder(folder, 'mixed');
    system.startWorker();
    await waitUntilSettled(system.operations, SETTLE);
  });

  afterAll(async () => {
    await system?.dispose();
    await rm(folder, { recursive: true, force: true });
  });

  it('records each bad file as failed with its reason while the good ones are indexed', async () => {
    const reasons = Object.fromEntries(
      await Promise.all(
        ['empty', 'text', 'truncated', 'document', 'strip', 'huge'].map(async (name) => {
          const ext = name === 'document' || name === 'strip' || name === 'huge' ? 'png' : 'jpg';
          const record = await system.stores.catalogue.get(`mixed/${name}.${ext}`);
          expect(record?.state).toBe('failed');
          return [name, record?.reason ?? ''];
        }),
      ),
    );
    expect(reasons.empty).toMatch(/empty/i);
    expect(reasons.text).toMatch(/not an image/i);
    expect(reasons.truncated).not.toBe('');
    expect(reasons.document).toMatch(/PDF/);
    expect(reasons.strip).toMatch(/aspect ratio/i);
    expect(reasons.huge).toMatch(/limit/i);
    expect(await indexedKeys(system)).toEqual(['mixed/pizza.jpg', 'mixed/sheep.jpg', 'mixed/twin-a.jpg']);
    const progress = await system.operations.progress(20);
    expect(progress).toMatchObject({ indexed: 3, failed: 7, pending: 0 });
    expect(progress.recentFailures.map((f) => f.key)).toContain('mixed/text.jpg');
  });

  it('records a hash collision against the key owning the id instead of merging the two', async () => {
    const loser = await system.stores.catalogue.get('mixed/twin-b.jpg');
    expect(loser).toMatchObject({ state: 'failed' });
    expect(loser?.reason).toMatch(/4242.*'mixed\/twin-a\.jpg'.*collision/);
    const moreLikeLoser = system.operations.searchByKey('mixed/twin-b.jpg', { topK: 1 });
    await expect(moreLikeLoser).rejects.toBeInstanceOf(NotFoundError);
    const { results } = await system.operations.searchByKey('mixed/twin-a.jpg', { topK: 1 });
    expect(results[0]).toMatchObject({ key: 'mixed/twin-a.jpg' });
    expect(results[0]?.score).toBeCloseTo(1, 5);
  });

  it('keeps the owner of a shared id when the colliding key is deleted', async () => {
    await system.operations.deleteImage('mixed/twin-b.jpg');
    const { results } = await system.operations.searchByKey('mixed/twin-a.jpg', { topK: 1 });
    expect(results[0]?.key).toBe('mixed/twin-a.jpg');
  });

  it('removes the vector, thumbnail and entry when a remove job follows the object deletion', async () => {
    await rm(join(system.dataDir, 'bucket', 'mixed', 'sheep.jpg'));
    await system.stores.queue.send([{ kind: 'remove', key: 'mixed/sheep.jpg' }]);
    await waitUntilSettled(system.operations, SETTLE);
    expect(await indexedKeys(system)).toEqual(['mixed/pizza.jpg', 'mixed/twin-a.jpg']);
    expect(await system.stores.catalogue.get('mixed/sheep.jpg')).toBeUndefined();
    expect(await system.stores.thumbnails.head(thumbnailKeyOf('mixed/sheep.jpg'))).toBeUndefined();
  });
});

describe('worker: crashes, stops and malformed messages', () => {
  let system: TempSystem;
  // A receive hides a batch long enough to outlast the model blocking the event loop (these workers use
  // the search embedder, on this thread), and the workers' heartbeats agree with the queue. Outages and
  // per-image failures: worker-consistency.test.ts.
  const options = { batchSize: 2, maxReceiveCount: 3, visibilitySeconds: 30, waitMs: 200 };

  beforeAll(async () => {
    system = await tempSystem(
      { PIC_MAX_RECEIVE_COUNT: '3' },
      { visibilitySeconds: options.visibilitySeconds },
    );
  });

  afterAll(async () => {
    await system?.dispose();
  });

  it('indexes every image exactly once after a worker died mid-batch without acking', async () => {
    const folder = await photoFolder({
      'a.jpg': 'pizza.jpg',
      'b.jpg': 'chimpanzee.jpg',
      'c.jpg': 'orange-rose.jpg',
      'd.jpg': 'red-vintage-car.jpg',
      'e.jpg': 'songbird-on-leaves.jpg',
    });
    await system.ingestFolder(folder, 'crash');
    // The dead worker took every message; it wrote a and b completely, c's vector only, then died.
    const { stores, embedder } = system;
    const taken = await stores.queue.receive(5, 0);
    const jobs = taken.flatMap((m) => m.jobs as Extract<Job, { kind: 'upsert' }>[]);
    expect(jobs).toHaveLength(5);
    const done = jobs.filter((job) => /crash\/[abc]\.jpg/.test(job.key));
    const objects = await Promise.all(done.map((job) => stores.images.get(job.key)));
    const outcomes = await embedder.embed(objects.map((object) => object.body));
    await stores.index.upsert(
      done.map((job, i) => {
        const outcome = outcomes[i];
        if (!outcome?.ok) throw new Error('a fixture photo failed to embed');
        return { id: vectorIdOf(job.key), key: job.key, vector: outcome.vector };
      }),
    );
    for (const job of done.filter((j) => j.key !== 'crash/c.jpg')) {
      await stores.catalogue.markIndexed([
        {
          key: job.key,
          id: vectorIdOf(job.key),
          etag: job.etag,
          model: embedder.info.model,
          profile: embedder.info.profile,
        },
      ]);
    }
    // Its messages come back after the visibility timeout: handed back now rather than waited for.
    await stores.queue.release(taken.map((m) => m.receipt));

    const worker = new Worker(stores, embedder, options);
    worker.start();
    await waitUntilSettled(system.operations, SETTLE);
    await worker.stop();

    expect(await system.operations.count()).toBe(5);
    expect(await indexedKeys(system)).toEqual(['a', 'b', 'c', 'd', 'e'].map((n) => `crash/${n}.jpg`));
    expect(await system.operations.progress()).toMatchObject({ total: 5, indexed: 5, failed: 0, pending: 0 });
    expect(worker.stats).toMatchObject({ indexed: 3, unchanged: 2, failed: 0 });
    await rm(folder, { recursive: true, force: true });
  });

  it('finishes the batches in hand on stop, leaves nothing hidden, and a new worker completes the rest', async () => {
    const folder = await photoFolder({
      'f.jpg': 'sheep-on-pasture.jpg',
      'g.jpg': 'cheetah-in-grass.jpg',
      'h.jpg': 'billiards-game.jpg',
      'i.jpg': 'brick-lighthouse.jpg',
      'j.jpg': 'snowy-airport.jpg',
      'k.jpg': 'pizza.jpg',
    });
    await system.ingestFolder(folder, 'stop');
    const first = new Worker(system.stores, system.embedder, { ...options, batchesInFlight: 1 });
    first.start();
    while (first.stats.indexed === 0) await sleep(20);
    await first.stop();
    const afterStop = await system.operations.progress();
    expect(afterStop.queue.inFlight).toBe(0);
    expect(afterStop.indexed + afterStop.pending).toBe(11);
    expect(afterStop.pending).toBeGreaterThan(0);

    const second = new Worker(system.stores, system.embedder, options);
    second.start();
    await waitUntilSettled(system.operations, SETTLE);
    await second.stop();
    expect(first.stats.indexed + second.stats.indexed).toBe(6);
    expect(await system.operations.count()).toBe(11);
    await rm(folder, { recursive: true, force: true });
  });

  it('releases a malformed message until the queue dead-letters it with the parse error', async () => {
    const before = system.stores.queue.deadLetters().length;
    await system.stores.queue.send([{ kind: 'resize', key: 'x.jpg' } as unknown as Job]);
    const worker = new Worker(system.stores, system.embedder, options);
    worker.start();
    while (system.stores.queue.deadLetters().length === before) await sleep(50);
    await worker.stop();
    expect(worker.stats.malformed).toBe(3);
    expect(worker.stats.deadLettered).toBe(1);
    expect(system.stores.queue.deadLetters()[0]?.reason).toMatch(/not a job list/);
  });
  it('says it holds messages while a batch is in hand and holds none once idle (task scale-in protection)', async () => {
    const folder = await photoFolder({ 'p.jpg': 'pizza.jpg', 'q.jpg': 'brick-lighthouse.jpg' });
    await system.ingestFolder(folder, 'holding');
    const told: boolean[] = [];
    const worker = new Worker(system.stores, system.embedder, {
      ...options,
      onHolding: async (holding) => {
        told.push(holding);
      },
    });
    worker.start();
    await waitUntilSettled(system.operations, SETTLE);
    while (told.at(-1) !== false) await sleep(20);
    await worker.stop();

    expect(told[0]).toBe(true);
    expect(told.filter((holding) => !holding).length).toBeGreaterThan(0);
    expect(worker.stats.indexed).toBe(2);
    await rm(folder, { recursive: true, force: true });
  });
});
