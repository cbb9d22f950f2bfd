import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExactVectorIndex } from '../adapters/embedded/exact-vector-index.ts';
import { FolderObjectStore } from '../adapters/embedded/folder-object-store.ts';
import { SqliteCatalogue } from '../adapters/embedded/sqlite-catalogue.ts';
import { SqliteDismissedPairs } from '../adapters/embedded/sqlite-dismissed-pairs.ts';
import { ValidationError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import { createDuplicates, type Duplicates } from './duplicates.ts';
import { seededUnitVector } from './test-system.ts';

const D = 64;
const identity = { model: 'm', profile: 'p', dimension: D };

const randomUnit = (seed: number) => seededUnitVector(seed, D);

/** `base` nudged by a little of another random direction: a near copy. */
function nearCopy(base: Float32Array, seed: number, amount = 0.05): Float32Array {
  const noise = randomUnit(seed);
  return base.map((x, i) => x + amount * (noise[i] as number));
}

describe('duplicates finder over the embedded adapters', () => {
  let dir: string;
  let index: ExactVectorIndex;
  let catalogue: SqliteCatalogue;
  let dismissed: SqliteDismissedPairs;
  let images: FolderObjectStore;
  let duplicates: Duplicates;

  /** Stores vectors (and, with `bytes`, the files) as indexed images. */
  async function add(entries: { key: string; vector: Float32Array; bytes?: Buffer }[]): Promise<void> {
    const items = entries.map((e) => ({ key: e.key, id: vectorIdOf(e.key), vector: e.vector }));
    await index.upsert(items);
    await catalogue.markPending(items.map(({ key, id }) => ({ key, id })));
    await catalogue.markIndexed(items.map(({ key, id }) => ({ key, id, model: 'm', profile: 'p' })));
    for (const e of entries) if (e.bytes) await images.put(e.key, e.bytes);
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'duplicates-'));
    index = new ExactVectorIndex(join(dir, 'index.db'), { blockRows: 1000 });
    await index.ensure(identity);
    catalogue = new SqliteCatalogue(join(dir, 'catalogue.db'));
    dismissed = new SqliteDismissedPairs(join(dir, 'duplicates.db'));
    images = new FolderObjectStore(join(dir, 'bucket'));
    duplicates = createDuplicates({
      pairs: index,
      dismissed,
      index,
      catalogue,
      images,
      links: { image: async (k) => `/images/${k}`, thumbnail: async (k) => `/thumbnails/${k}` },
      defaultThreshold: 0.95,
    });
  });

  afterEach(async () => {
    await index.close();
    catalogue.close();
    dismissed.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('pages through two thousand groups, each group once, and ends with a null cursor', async () => {
    // Prepare: 2000 pairs of near copies among 500 loners.
    const entries = [];
    for (let g = 0; g < 2000; g++) {
      const base = randomUnit(g);
      entries.push(
        { key: `g${g}/a.jpg`, vector: base },
        { key: `g${g}/b.jpg`, vector: nearCopy(base, 50_000 + g) },
      );
    }
    for (let l = 0; l < 500; l++) entries.push({ key: `loner/${l}.jpg`, vector: randomUnit(90_000 + l) });
    await add(entries);

    // Act
    const seen = new Set<string>();
    let cursor: string | undefined;
    let pages = 0;
    let total = 0;
    do {
      const page = await duplicates.find({ limit: 100, ...(cursor ? { cursor } : {}) });
      total = page.totalGroups;
      for (const group of page.groups) {
        const folders = new Set(group.members.map((m) => m.key.split('/')[0]));
        expect(folders.size).toBe(1);
        expect(group.members).toHaveLength(2);
        seen.add([...folders][0] as string);
      }
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);

    // Assess
    expect(total).toBe(2000);
    expect(seen.size).toBe(2000);
    expect(pages).toBe(20);
  });

  it('suggests keeping the most pixels, then the largest file, then the oldest', async () => {
    // Prepare: four near copies: a large image, a small one, and two identical small files of another age.
    const base = randomUnit(1);
    const png = (width: number, height: number, noise = false) =>
      sharp({
        create: {
          width,
          height,
          channels: 3,
          background: '#808080',
          ...(noise ? { noise: { type: 'gaussian', mean: 128, sigma: 40 } } : {}),
        },
      })
        .png()
        .toBuffer();
    const [big, smallHeavy, smallLight] = await Promise.all([
      png(400, 300),
      png(200, 150, true),
      png(200, 150),
    ]);
    await add([
      { key: 'copies/small-heavy.png', vector: nearCopy(base, 2, 0.01), bytes: smallHeavy },
      { key: 'copies/new.png', vector: nearCopy(base, 3, 0.01), bytes: smallLight },
      { key: 'copies/old.png', vector: nearCopy(base, 4, 0.01), bytes: smallLight },
      { key: 'copies/big.png', vector: nearCopy(base, 5, 0.01), bytes: big },
    ]);
    const lastYear = new Date(Date.now() - 365 * 86_400_000);
    await utimes(join(dir, 'bucket/copies/old.png'), lastYear, lastYear);

    const { groups } = await duplicates.find({ limit: 10 });

    expect(groups).toHaveLength(1);
    const [group] = groups;
    expect(group?.keep).toBe('copies/big.png');
    expect(group?.members.map((m) => m.key)).toEqual([
      'copies/big.png',
      'copies/small-heavy.png',
      'copies/old.png',
      'copies/new.png',
    ]);
    expect(group?.members[0]).toMatchObject({ width: 400, height: 300, score: 1, bytes: big.length });
    for (const member of group?.members.slice(1) ?? []) expect(member.score).toBeGreaterThan(0.95);
  });

  it('never shows a group again once dismissed, even after a restart, until a new copy joins', async () => {
    const base = randomUnit(7);
    await add([
      { key: 'x/one.jpg', vector: base },
      { key: 'x/two.jpg', vector: nearCopy(base, 8) },
    ]);
    expect((await duplicates.find({ limit: 10 })).totalGroups).toBe(1);

    await duplicates.dismiss(['x/one.jpg', 'x/two.jpg']);
    dismissed.close();
    dismissed = new SqliteDismissedPairs(join(dir, 'duplicates.db'));
    const reopened = createDuplicates({
      pairs: index,
      dismissed,
      index,
      catalogue,
      images,
      links: { image: async (k) => k, thumbnail: async (k) => k },
      defaultThreshold: 0.95,
    });

    expect((await reopened.find({ limit: 10 })).totalGroups).toBe(0);
    await add([{ key: 'x/three.jpg', vector: nearCopy(base, 9) }]);
    const [group] = (await reopened.find({ limit: 10 })).groups;
    expect(group?.members.map((m) => m.key)).toEqual(['x/one.jpg', 'x/three.jpg', 'x/two.jpg']);
  });

  it('takes a threshold per request and refuses bad cursors and dismissals with reasons', async () => {
    const base = randomUnit(11);
    await add([
      { key: 'y/a.jpg', vector: base },
      { key: 'y/b.jpg', vector: nearCopy(base, 12, 0.5) },
    ]);

    expect((await duplicates.find({ limit: 10 })).totalGroups).toBe(0);
    expect((await duplicates.find({ limit: 10, threshold: 0.8 })).totalGroups).toBe(1);
    await expect(duplicates.find({ limit: 10, cursor: 'abc' })).rejects.toThrow(ValidationError);
    await expect(duplicates.dismiss(['y/a.jpg'])).rejects.toThrow(/two or more/);
    await expect(duplicates.dismiss(['y/a.jpg', 'nope.jpg'])).rejects.toThrow(/Not indexed: nope.jpg/);
  });
});
