import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExactVectorIndex } from '../adapters/embedded/exact-vector-index.ts';
import { ImageError, IndexMismatchError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import { thumbnailKeyOf } from './keys.ts';
import { createOperations } from './pic-search.ts';
import { waitUntilSettled } from './settle.ts';
import { FIXTURES, photoFolder, type TempSystem, taskDone, tempSystem } from './test-system.ts';

const PHOTOS = {
  'a/pizza.jpg': 'pizza.jpg',
  'a/chimpanzee.jpg': 'chimpanzee.jpg',
  'a/orange-rose.jpg': 'orange-rose.jpg',
  'a/red vintage car.jpg': 'red-vintage-car.jpg',
  'b/sheep-on-pasture.jpg': 'sheep-on-pasture.jpg',
  'b/balloons-exif-6.jpg': 'hot-air-balloons-exif-orientation-6.jpg',
};
const KEYS = Object.keys(PHOTOS).map((name) => `set/${name}`);

describe('operations over the embedded adapters and the seeded model', () => {
  let system: TempSystem;
  let folder: string;

  beforeAll(async () => {
    system = await tempSystem();
    folder = await photoFolder(PHOTOS);
    await system.ingestFolder(folder, 'set');
    system.startWorker();
    await waitUntilSettled(system.operations, { timeoutMs: 120_000 });
  });

  afterAll(async () => {
    await system?.dispose();
    await rm(folder, { recursive: true, force: true });
  });

  it('indexes every photo of the folder under the prefix', async () => {
    expect(await system.operations.count()).toBe(KEYS.length);
    const progress = await system.operations.progress();
    expect(progress).toMatchObject({ total: KEYS.length, indexed: KEYS.length, pending: 0, failed: 0 });
  });

  it('honours topK', async () => {
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));
    for (const topK of [1, 3, 100]) {
      const response = await system.operations.searchByImage(query, { topK });
      expect(response.topK).toBe(topK);
      expect(response.results).toHaveLength(Math.min(topK, KEYS.length));
    }
  });

  it('ranks the original first for a resized, recompressed copy, with scores best first', async () => {
    const copy = await sharp(join(FIXTURES, 'pizza.jpg'))
      .resize({ width: 300 })
      .jpeg({ quality: 70 })
      .toBuffer();
    const { results, timings } = await system.operations.searchByImage(copy, { topK: 6 });
    expect(results[0]?.key).toBe('set/a/pizza.jpg');
    const scores = results.map((r) => r.score);
    expect(scores).toEqual([...scores].sort((x, y) => y - x));
    expect(scores.every((s) => s >= -1 && s <= 1)).toBe(true);
    expect(timings.totalMs).toBeGreaterThanOrEqual(timings.embedMs + timings.searchMs);
  });

  it('with orientation=any finds the original of a rotated or mirrored copy first, labelling every hit', async () => {
    const original = join(FIXTURES, 'chimpanzee.jpg');
    for (const copy of [
      await sharp(original).rotate(90).toBuffer(),
      await sharp(original).flop().toBuffer(),
    ]) {
      const { results } = await system.operations.searchByImage(copy, { topK: 3, orientation: 'any' });
      expect(results[0]?.key).toBe('set/a/chimpanzee.jpg');
      expect(results.map((r) => r.key)).toEqual([...new Set(results.map((r) => r.key))]);
      for (const result of results) expect(['duplicate', 'similar', 'weak']).toContain(result.match);
    }
  });

  it('links each result to its image and thumbnail routes, keys URL-encoded per segment', async () => {
    const query = await readFile(join(FIXTURES, 'red-vintage-car.jpg'));
    const { results } = await system.operations.searchByImage(query, { topK: 1 });
    expect(results[0]).toMatchObject({
      key: 'set/a/red vintage car.jpg',
      imageUrl: '/images/set/a/red%20vintage%20car.jpg',
      thumbnailUrl: '/thumbnails/set/a/red%20vintage%20car.jpg',
    });
  });

  it('applies minScore and the key prefix', async () => {
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));
    const exact = await system.operations.searchByImage(query, { topK: 10, minScore: 0.9999 });
    expect(exact.results.map((r) => r.key)).toEqual(['set/a/pizza.jpg']);
    const onlyB = await system.operations.searchByImage(query, { topK: 10, prefix: 'set/b/' });
    expect(onlyB.results.map((r) => r.key).sort()).toEqual([
      'set/b/balloons-exif-6.jpg',
      'set/b/sheep-on-pasture.jpg',
    ]);
  });

  it('refuses topK outside 1..100 and minScore outside [-1, 1]', async () => {
    const query = await readFile(join(FIXTURES, 'pizza.jpg'));
    for (const request of [{ topK: 0 }, { topK: 101 }, { topK: 2.5 }, { topK: 5, minScore: 1.5 }]) {
      await expect(system.operations.searchByImage(query, request)).rejects.toBeInstanceOf(ValidationError);
    }
  });

  it('refuses a query that is not an image with the reason', async () => {
    const search = system.operations.searchByImage(Buffer.from('plain text'), { topK: 5 });
    await expect(search).rejects.toBeInstanceOf(ImageError);
  });

  it('finds more like an indexed key from its stored vector, and 404s an unknown key', async () => {
    const { results, timings } = await system.operations.searchByKey('set/a/chimpanzee.jpg', { topK: 2 });
    expect(results[0]).toMatchObject({ key: 'set/a/chimpanzee.jpg' });
    expect(results[0]?.score).toBeCloseTo(1, 5);
    expect(timings.embedMs).toBe(0);
    await expect(system.operations.searchByKey('set/nope.jpg', { topK: 2 })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('serves the image and an upright WebP thumbnail made at ingest', async () => {
    const image = await system.operations.getImage('set/b/balloons-exif-6.jpg');
    expect(image.contentType).toBe('image/jpeg');
    expect(image.body.equals(await readFile(join(FIXTURES, 'hot-air-balloons-exif-orientation-6.jpg')))).toBe(
      true,
    );
    const thumbnail = await system.operations.getThumbnail('set/b/balloons-exif-6.jpg');
    const meta = await sharp(thumbnail.body).metadata();
    // Stored 435×678 with EXIF orientation 6: displayed (and thumbnailed) landscape.
    expect({ type: thumbnail.contentType, format: meta.format, width: meta.width }).toEqual({
      type: 'image/webp',
      format: 'webp',
      width: 256,
    });
    expect(meta.height).toBeLessThan(256);
    await expect(system.operations.getThumbnail('set/none.jpg')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('re-ingests an unchanged folder without queueing anything', async () => {
    const report = await system.ingestFolder(folder, 'set');
    expect(report).toMatchObject({ queued: 0, unchanged: KEYS.length, removed: 0, prefix: 'set/' });
    expect(report.files).toMatchObject({
      images: KEYS.length,
      copied: 0,
      unchanged: KEYS.length,
      deleted: 0,
    });
  });

  it('refuses to search an index built by another model, naming both models', async () => {
    const otherIndex = new ExactVectorIndex(join(system.dataDir, 'other-index.db'));
    await otherIndex.ensure({ model: 'vgg16-keras-imagenet', profile: 'keras-compat', dimension: 512 });
    const operations = createOperations({
      ...system.stores,
      index: otherIndex,
      embedder: system.embedder,
      mode: 'embedded',
      queueUploads: false,
      imageInspector: imageInspector(DEFAULT_DECODE_LIMITS),
    });
    const search = operations.searchByImage(await readFile(join(FIXTURES, 'pizza.jpg')), { topK: 3 });
    await expect(search).rejects.toBeInstanceOf(IndexMismatchError);
    const error = (await search.catch((caught: Error) => caught)) as Error;
    expect(error.message).toContain("'vgg16-keras-imagenet'");
    expect(error.message).toContain(`'${system.embedder.info.model}'`);
    await otherIndex.close();
  });

  it('refuses an upload that is not an image, and stores and queues the good files of a mixed one', async () => {
    const upload = system.operations.upload(
      [{ name: 'notes.jpg', body: Buffer.from('not a picture') }],
      'up/',
    );
    await expect(upload).rejects.toBeInstanceOf(ImageError);
    const body = await readFile(join(FIXTURES, 'pizza.jpg'));
    const report = await system.operations.upload(
      [
        { name: 'pizza copy.jpg', body },
        { name: 'truncated.jpg', body: body.subarray(0, 200) },
      ],
      'up/',
    );
    expect(report.keys).toEqual(['up/pizza copy.jpg']);
    expect(report.rejected).toEqual([
      {
        name: 'truncated.jpg',
        error: expect.any(String),
        message: expect.stringMatching(/^'truncated.jpg': /),
      },
    ]);
    expect(await system.stores.images.head('up/truncated.jpg')).toBeUndefined();
    await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
    expect(await system.operations.count()).toBe(KEYS.length + 1);
  });

  it('forgets images whose objects are gone on backfill, and files gone from the folder on re-ingest', async () => {
    await rm(join(system.dataDir, 'bucket', 'up', 'pizza copy.jpg'));
    const backfill = await system.operations.backfill('up/');
    expect(backfill).toMatchObject({ removed: 1, queued: 0 });
    expect(await system.stores.catalogue.get('up/pizza copy.jpg')).toBeUndefined();
    expect(await system.stores.thumbnails.head(thumbnailKeyOf('up/pizza copy.jpg'))).toBeUndefined();

    await rm(join(folder, 'a', 'orange-rose.jpg'));
    await writeFile(join(folder, 'a', 'readme.txt'), 'not an image');
    const report = await system.ingestFolder(folder, 'set');
    expect(report).toMatchObject({ removed: 1, queued: 0, unchanged: KEYS.length - 1 });
    expect(report.files).toMatchObject({ deleted: 1, skipped: 1 });
    expect(await system.operations.count()).toBe(KEYS.length - 1);
  });

  it('deletes one image with its vector, thumbnail and entry; 404s an unknown key', async () => {
    await system.operations.deleteImage('set/a/chimpanzee.jpg');
    expect(await system.operations.count()).toBe(KEYS.length - 2);
    await expect(system.operations.getImage('set/a/chimpanzee.jpg')).rejects.toBeInstanceOf(NotFoundError);
    await expect(system.operations.getThumbnail('set/a/chimpanzee.jpg')).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(system.operations.searchByKey('set/a/chimpanzee.jpg', { topK: 1 })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(system.operations.deleteImage('set/a/chimpanzee.jpg')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('deletes everything but the image files unless asked', async () => {
    const { deleted } = await system.operations.deleteAll({ deleteObjects: false });
    expect(deleted).toBe(KEYS.length - 2);
    expect(await system.operations.count()).toBe(0);
    expect(await taskDone(system.operations, 'deleteAll')).toMatchObject({
      state: 'done',
      progress: { recordsRemoved: KEYS.length - 2, objectsRemoved: 0 },
    });
    expect((await system.operations.progress()).total).toBe(0);
    await expect(system.operations.getThumbnail('set/a/pizza.jpg')).rejects.toBeInstanceOf(NotFoundError);
    expect((await system.operations.getImage('set/a/pizza.jpg')).body.length).toBeGreaterThan(0);

    await system.operations.deleteAll({ deleteObjects: true });
    expect(await taskDone(system.operations, 'deleteAll')).toMatchObject({
      progress: { objectsRemoved: KEYS.length - 2 },
    });
    await expect(system.operations.getImage('set/a/pizza.jpg')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('progress while photos dropped into the bucket wait in the queue', () => {
  it('counts their messages as work left, though they have no record yet', async () => {
    const system = await tempSystem();
    const folder = await photoFolder({ 'pizza.jpg': 'pizza.jpg', 'rose.jpg': 'orange-rose.jpg' });
    try {
      await system.ingestFolder(folder, 'first');
      await system.startWorker();
      await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
      await system.worker.stop();
      // What S3 notifications bring: jobs for objects the catalogue has never seen.
      await system.stores.queue.send(
        ['x/1.jpg', 'x/2.jpg', 'x/3.jpg'].map((key) => ({ kind: 'upsert', key })),
      );

      const progress = await system.operations.progress();

      expect(progress).toMatchObject({ pending: 0, indexed: 2, queue: { visible: 3, inFlight: 0 } });
      expect(progress.throughput).toBeGreaterThan(0);
      expect(progress.etaSeconds).toBeGreaterThan(0);
    } finally {
      await system.dispose();
      await rm(folder, { recursive: true, force: true });
    }
  });
});
