import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageError, StoreBusyError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import type { Embedder, ObjectStore } from '../domain/ports.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import type { Stores } from './indexing.ts';
import { thumbnailKeyOf } from './keys.ts';
import { createOperations } from './pic-search.ts';
import { waitUntilSettled } from './settle.ts';
import { FIXTURES, switchableIndex, type TempSystem, tempSystem } from './test-system.ts';
import { Worker, type WorkerOptions } from './worker.ts';

// The index agrees with the bucket whatever the order of events (docs/consistency.md). Each case here was
// reproduced against the service before the worker re-checked its writes; faults come from thin wrappers
// around the real adapters (a slow embedder, an index that is switched off), never from stand-ins.

const SETTLE = { timeoutMs: 90_000 };
const photo = (name: string) => readFile(join(FIXTURES, name));

/** The real embedder, made to take `ms` longer for batches holding one of `slow`'s byte strings. */
function slowFor(embedder: Embedder, slow: Set<Buffer>, ms: number): Embedder {
  const isSlow = (bytes: Uint8Array) => [...slow].some((s) => Buffer.compare(s, bytes) === 0);
  return {
    info: embedder.info,
    embedOne: (image) => embedder.embedOne(image),
    embedOrientations: (image) => embedder.embedOrientations(image),
    close: async () => undefined,
    async embed(images, options) {
      if (images.some(isSlow)) await sleep(ms);
      return embedder.embed(images, options);
    },
  };
}

/** The real object store, refusing writes (or reads) of the keys `refuses` picks as a full disk would. */
function refusingStore(store: ObjectStore, refuses: { put?: RegExp; get?: RegExp }): ObjectStore {
  return {
    get: async (key) => {
      if (refuses.get?.test(key)) throw new Error(`EACCES: permission denied, open '${key}'`);
      return store.get(key);
    },
    put: async (key, body, type) => {
      if (refuses.put?.test(key)) throw new Error(`ENOSPC: no space left on device, write '${key}'`);
      return store.put(key, body, type);
    },
    head: (key) => store.head(key),
    list: (prefix) => store.list(prefix),
    delete: (key) => store.delete(key),
    downloadUrl: (key) => store.downloadUrl(key),
  };
}

describe('worker: the index agrees with the bucket', () => {
  let system: TempSystem;
  const options: WorkerOptions = { batchSize: 2, maxReceiveCount: 2, visibilitySeconds: 30, waitMs: 100 };
  const workers: Worker[] = [];
  const startWorker = (overrides: Partial<Stores> = {}, embedder?: Embedder) => {
    const worker = new Worker({ ...system.stores, ...overrides }, embedder ?? system.embedder, {
      ...options,
      outageBackoff: { firstMs: 20, longestMs: 200 },
    });
    workers.push(worker);
    worker.start();
    return worker;
  };
  const stopWorkers = async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()));
  };
  /** Puts sample photos straight into the bucket under the keys given and queues them, as S3 events would. */
  const dropAndQueue = async (files: Record<string, string>) => {
    for (const [key, name] of Object.entries(files)) await system.stores.images.put(key, await photo(name));
    await system.stores.queue.send(Object.keys(files).map((key) => ({ kind: 'upsert' as const, key })));
  };
  const topHit = async (bytes: Buffer) =>
    (await system.operations.searchByImage(bytes, { topK: 1 })).results[0];

  beforeAll(async () => {
    system = await tempSystem({ PIC_MAX_RECEIVE_COUNT: '2' }, { visibilitySeconds: 30 });
  });

  afterAll(async () => {
    await stopWorkers();
    await system?.dispose();
  });

  it('forgets the old vector when a photo is overwritten by a corrupt file', async () => {
    const pizza = await photo('pizza.jpg');
    await system.operations.upload([{ name: 'corrupt/pizza.jpg', body: pizza }]);
    startWorker();
    await waitUntilSettled(system.operations, SETTLE);
    expect((await topHit(pizza))?.key).toBe('corrupt/pizza.jpg');

    await system.stores.images.put('corrupt/pizza.jpg', pizza.subarray(0, 2000));
    await system.stores.queue.send([{ kind: 'upsert', key: 'corrupt/pizza.jpg' }]);
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect((await system.stores.catalogue.get('corrupt/pizza.jpg'))?.state).toBe('failed');
    expect(await system.stores.index.get(vectorIdOf('corrupt/pizza.jpg'))).toBeUndefined();
    expect((await topHit(pizza))?.key).not.toBe('corrupt/pizza.jpg');
    expect(await system.stores.thumbnails.head(thumbnailKeyOf('corrupt/pizza.jpg'))).toBeUndefined();
    expect(await system.operations.count()).toBe(0);
  });

  it('forgets the old vector when a photo is overwritten by a file the store refuses as too large', async () => {
    const lighthouse = await photo('brick-lighthouse.jpg');
    await system.operations.upload([{ name: 'large/lighthouse.jpg', body: lighthouse }]);
    startWorker();
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();
    expect((await topHit(lighthouse))?.key).toBe('large/lighthouse.jpg');

    await system.stores.images.put('large/lighthouse.jpg', Buffer.concat([lighthouse, lighthouse]));
    await system.stores.queue.send([{ kind: 'upsert', key: 'large/lighthouse.jpg' }]);
    // The real store, refusing this object from its size as the S3 store does (ImageError too_large).
    const refusing: ObjectStore = {
      ...refusingStore(system.stores.images, {}),
      get: async (key) => {
        throw new ImageError(`'${key}' is larger than the upload limit`, 'too_large');
      },
    };
    startWorker({ images: refusing });
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect(await system.stores.catalogue.get('large/lighthouse.jpg')).toMatchObject({
      state: 'failed',
      reason: expect.stringMatching(/larger than the upload limit/),
    });
    expect(await system.stores.index.get(vectorIdOf('large/lighthouse.jpg'))).toBeUndefined();
    expect(await system.stores.thumbnails.head(thumbnailKeyOf('large/lighthouse.jpg'))).toBeUndefined();
    await system.operations.deleteImage('large/lighthouse.jpg');
  });

  it('leaves nothing searchable when a photo is deleted 300 ms after it was put', async () => {
    const chimp = await photo('chimpanzee.jpg');
    startWorker({}, slowFor(system.embedder, new Set([chimp]), 1500));
    await system.operations.upload([{ name: 'gone/chimp.jpg', body: chimp }]);
    await sleep(300);
    await system.operations.deleteImage('gone/chimp.jpg');
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect(await system.stores.images.head('gone/chimp.jpg')).toBeUndefined();
    expect(await system.stores.catalogue.get('gone/chimp.jpg')).toBeUndefined();
    expect((await topHit(chimp))?.key).not.toBe('gone/chimp.jpg');
    expect(await system.operations.count()).toBe(0);
  });

  it('ends with the last version when a slow first version is overtaken by a fast second', async () => {
    const [v1, v2] = await Promise.all([photo('orange-rose.jpg'), photo('red-vintage-car.jpg')]);
    const worker = startWorker({}, slowFor(system.embedder, new Set([v1]), 1500));
    await system.operations.upload([{ name: 'twice/photo.jpg', body: v1 }]);
    while ((await system.stores.queue.depth()).inFlight === 0) await sleep(20);
    await system.operations.upload([{ name: 'twice/photo.jpg', body: v2 }]);
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    const hit = await topHit(v2);
    expect(hit?.key).toBe('twice/photo.jpg');
    expect(hit?.score).toBeGreaterThanOrEqual(0.999);
    const record = await system.stores.catalogue.get('twice/photo.jpg');
    expect(record).toMatchObject({
      state: 'indexed',
      etag: (await system.stores.images.head('twice/photo.jpg'))?.etag,
    });
    expect(worker.stats.requeued).toBeGreaterThan(0);
    expect(await system.operations.count()).toBe(1);
  });

  it('writes nothing for a slow first version once another worker recorded a newer one, and redoes nothing', async () => {
    const [v1, v2] = await Promise.all([photo('billiards-game.jpg'), photo('snowy-airport.jpg')]);
    const countBefore = await system.operations.count();
    // The real embedder, holding the first version's batch until the second worker has indexed the second.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holding: Embedder = {
      ...slowFor(system.embedder, new Set(), 0),
      async embed(images, embedOptions) {
        if (images.some((bytes) => Buffer.compare(v1, bytes) === 0)) await held;
        return system.embedder.embed(images, embedOptions);
      },
    };
    // One batch at a time, so the second version's job goes to the second worker.
    const slow = new Worker(system.stores, holding, { ...options, batchesInFlight: 1 });
    workers.push(slow);
    slow.start();
    await system.operations.upload([{ name: 'superseded/photo.jpg', body: v1 }]);
    while ((await system.stores.queue.depth()).inFlight === 0) await sleep(20);
    const fast = startWorker();
    await system.operations.upload([{ name: 'superseded/photo.jpg', body: v2 }]);
    while (fast.stats.indexed === 0) await sleep(20);
    release();
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    const hit = await topHit(v2);
    expect(hit?.key).toBe('superseded/photo.jpg');
    expect(hit?.score).toBeGreaterThanOrEqual(0.999);
    expect(await system.stores.catalogue.get('superseded/photo.jpg')).toMatchObject({
      state: 'indexed',
      etag: (await system.stores.images.head('superseded/photo.jpg'))?.etag,
    });
    expect(fast.stats.indexed).toBe(1);
    expect(slow.stats).toMatchObject({ indexed: 0, superseded: 1, requeued: 0 });
    expect(await system.operations.count()).toBe(countBefore + 1);
  });

  it('queues again a key put back while a backfill forgot it, so it ends indexed', async () => {
    const rose = await photo('orange-rose.jpg');
    await system.operations.upload([{ name: 'back/rose.jpg', body: rose }]);
    startWorker();
    await waitUntilSettled(system.operations, SETTLE);
    // The backfill's listing was taken while the file was briefly gone: the real store, its first listing
    // without that key.
    const images = system.stores.images;
    let listings = 0;
    const listedWhileGone: ObjectStore = {
      ...refusingStore(images, {}),
      async *list(prefix) {
        const first = listings++ === 0;
        for await (const object of images.list(prefix))
          if (!first || object.key !== 'back/rose.jpg') yield object;
      },
    };
    const backfill = createOperations({
      ...system.stores,
      images: listedWhileGone,
      embedder: system.embedder,
      mode: 'embedded',
      queueUploads: true,
      imageInspector: imageInspector(DEFAULT_DECODE_LIMITS),
    });

    const report = await backfill.backfill('back/');
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect(report.removed).toBe(1);
    expect((await system.stores.catalogue.get('back/rose.jpg'))?.state).toBe('indexed');
    expect((await topHit(rose))?.key).toBe('back/rose.jpg');
  });

  it('gives a key too long for a thumbnail name a hashed one, and its batch-mate is indexed too', async () => {
    const long = `long/${'x'.repeat(227)}.jpg`;
    await dropAndQueue({ [long]: 'sheep-on-pasture.jpg', 'long/rabbit.jpg': 'lop-eared-rabbit.jpg' });
    startWorker();
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect((await system.stores.catalogue.get(long))?.state).toBe('indexed');
    expect((await system.stores.catalogue.get('long/rabbit.jpg'))?.state).toBe('indexed');
    expect(thumbnailKeyOf(long)).toMatch(/^long\/[0-9a-f]{64}\.webp$/);
    expect(await system.stores.thumbnails.head(thumbnailKeyOf(long))).toBeDefined();
    expect((await topHit(await photo('sheep-on-pasture.jpg')))?.key).toBe(long);
  });

  it('fails only the image whose thumbnail cannot be stored, with the reason', async () => {
    await dropAndQueue({
      'thumb/cheetah.jpg': 'cheetah-in-grass.jpg',
      'thumb/daisies.jpg': 'chamomile-daisies.jpg',
    });
    startWorker({ thumbnails: refusingStore(system.stores.thumbnails, { put: /cheetah/ }) });
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    const failed = await system.stores.catalogue.get('thumb/cheetah.jpg');
    expect(failed).toMatchObject({ state: 'failed' });
    expect(failed?.reason).toMatch(/^Its thumbnail could not be stored: ENOSPC/);
    expect(await system.stores.index.get(vectorIdOf('thumb/cheetah.jpg'))).toBeUndefined();
    expect((await system.stores.catalogue.get('thumb/daisies.jpg'))?.state).toBe('indexed');
    expect(system.stores.queue.deadLetters()).toEqual([]);
  });

  it('dead-letters a job that fails on its own with every store reachable, and indexes its batch-mate', async () => {
    await dropAndQueue({
      'poison/guards.jpg': 'ceremonial-guards.jpg',
      'poison/cyclist.jpg': 'cyclist-with-bike.jpg',
    });
    const worker = startWorker({ images: refusingStore(system.stores.images, { get: /guards/ }) });
    while (system.stores.queue.deadLetters().length === 0) await sleep(100);
    await stopWorkers();

    expect((await system.stores.catalogue.get('poison/guards.jpg'))?.reason).toMatch(
      /^Gave up after 2 attempts: EACCES/,
    );
    expect((await system.stores.catalogue.get('poison/cyclist.jpg'))?.state).toBe('indexed');
    expect(worker.outage).toBeUndefined();
    expect(worker.stats.handedBack).toBe(0);
    expect(worker.stats.deadLettered).toBe(1);
  });

  it('waits out an index outage mid-ingest: nothing dead-lettered, every image indexed once after', async () => {
    const index = switchableIndex(system.stores.index);
    const names = [
      'backlit-leaves.jpg',
      'billiards-game.jpg',
      'brick-lighthouse.jpg',
      'pizza.jpg',
      'chimpanzee.jpg',
      'orange-rose.jpg',
      'red-vintage-car.jpg',
      'lop-eared-rabbit.jpg',
    ];
    const before = await system.operations.count();
    const deadBefore = system.stores.queue.deadLetters().length;
    await dropAndQueue(Object.fromEntries(names.map((name) => [`outage/${name}`, name])));
    const worker = startWorker({ index });
    // What the embedded wiring builds, with this worker's outage: /progress and /health read it.
    const operations = createOperations({
      ...system.stores,
      index,
      embedder: system.embedder,
      mode: 'embedded',
      queueUploads: true,
      imageInspector: imageInspector(DEFAULT_DECODE_LIMITS),
      outage: () => worker.outage,
    });
    while (worker.stats.indexed === 0) await sleep(20);
    index.down = true;
    while (!worker.outage) await sleep(20);
    const [during, health] = await Promise.all([operations.progress(), operations.health()]);
    // The breaker's clock is shortened (20 ms doubling to 200 ms): 3 s is about 15 closed-circuit checks.
    await sleep(3000);
    const handedBack = worker.stats.handedBack;
    index.down = false;
    await waitUntilSettled(operations, SETTLE);
    await stopWorkers();

    expect(worker.outage).toBeUndefined();
    expect(handedBack).toBeGreaterThan(0);
    expect(system.stores.queue.deadLetters()).toHaveLength(deadBefore);
    expect(worker.stats).toMatchObject({ indexed: names.length, failed: 0, retried: 0 });
    expect(await system.operations.count()).toBe(before + names.length);
    for (const name of names) {
      expect((await system.stores.catalogue.get(`outage/${name}`))?.state).toBe('indexed');
    }
    expect(during.outage?.message).toMatch(/^index unavailable since \d{4}-/);
    expect(during.outage?.reason).toMatch(/ECONNREFUSED/);
    expect(health).toMatchObject({ status: 'degraded', outage: { store: 'index' } });
    expect((await operations.health()).status).toBe('ok');
  });

  it('waits out a catalogue too busy to record an image, instead of recording the image failed', async () => {
    // The real catalogue, refusing its first two markIndexed calls as a DynamoDB table whose transactions
    // keep conflicting does (StoreBusyError), while every probe of the stores answers.
    let busy = 2;
    const catalogue = new Proxy(system.stores.catalogue, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property !== 'markIndexed') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: Parameters<typeof target.markIndexed>) => {
          if (busy-- > 0) throw new StoreBusyError('the catalogue table is busy (test)');
          return target.markIndexed(...args);
        };
      },
    });
    const deadBefore = system.stores.queue.deadLetters().length;
    await dropAndQueue({ 'busy/daisies.jpg': 'chamomile-daisies.jpg', 'busy/pizza.jpg': 'pizza.jpg' });
    const worker = startWorker({ catalogue });
    await waitUntilSettled(system.operations, SETTLE);
    await stopWorkers();

    expect(busy).toBeLessThan(0);
    expect(worker.stats).toMatchObject({ failed: 0, retried: 0 });
    expect(worker.stats.handedBack).toBeGreaterThan(0);
    expect(system.stores.queue.deadLetters()).toHaveLength(deadBefore);
    for (const key of ['busy/daisies.jpg', 'busy/pizza.jpg']) {
      expect((await system.stores.catalogue.get(key))?.state).toBe('indexed');
    }
  });
});
