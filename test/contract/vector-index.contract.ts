import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IndexMismatchError } from '../../src/domain/errors.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { IndexIdentity, VectorIndex } from '../../src/domain/ports.ts';

export interface VectorIndexFixture {
  index: VectorIndex;
  cleanup: () => Promise<void>;
}

const DIMENSION = 512;
const IDENTITY: IndexIdentity = {
  model: 'contract-model',
  profile: 'contract-profile',
  dimension: DIMENSION,
};

/** The unit vector cos(θ)·e0 + sin(θ)·e1: its cosine similarity to e0 is cos(θ). */
function atAngle(degrees: number): Float32Array {
  const v = new Float32Array(DIMENSION);
  v[0] = Math.cos((degrees * Math.PI) / 180);
  v[1] = Math.sin((degrees * Math.PI) / 180);
  return v;
}

/** Deterministic pseudo-random unit vectors (mulberry32), so failures reproduce. */
function randomUnitVectors(count: number, seed: number): Float32Array[] {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  return Array.from({ length: count }, () => {
    const v = Float32Array.from({ length: DIMENSION }, next);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

const item = (key: string, vector: Float32Array) => ({ id: vectorIdOf(key), key, vector });

/**
 * What search relies on from a vector index: cosine similarity in [-1, 1], best first, exact enough that a
 * small collection ranks like brute force; upsert by id, delete, identity checks. Adapters must read
 * their own writes (Milvus: Strong consistency). Each test gets a fresh index from `make`.
 */
export function describeVectorIndexContract(name: string, make: () => Promise<VectorIndexFixture>): void {
  describe(`VectorIndex contract: ${name}`, () => {
    let fixture: VectorIndexFixture;
    let index: VectorIndex;

    beforeEach(async () => {
      fixture = await make();
      index = fixture.index;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('stores its identity and refuses another model, profile or dimension', async () => {
      // Act
      await index.ensure(IDENTITY);
      await index.ensure(IDENTITY);

      // Assess
      expect(await index.identity()).toEqual(IDENTITY);
      await expect(index.ensure({ ...IDENTITY, model: 'another-model' })).rejects.toBeInstanceOf(
        IndexMismatchError,
      );
      await expect(index.ensure({ ...IDENTITY, profile: 'imagenet' })).rejects.toBeInstanceOf(
        IndexMismatchError,
      );
      await expect(index.ensure({ ...IDENTITY, dimension: 256 })).rejects.toBeInstanceOf(IndexMismatchError);
      expect(await index.identity()).toEqual(IDENTITY);
    });

    it('finds nothing in an empty index', async () => {
      await index.ensure(IDENTITY);

      expect(await index.search(atAngle(0), { topK: 5 })).toEqual([]);
      expect(await index.count()).toBe(0);
    });

    it('returns the best matches first with their cosine similarity', async () => {
      await index.ensure(IDENTITY);
      const angles = { same: 0, near: 30, right: 90, far: 120, opposite: 180 };
      await index.upsert(Object.entries(angles).map(([key, degrees]) => item(key, atAngle(degrees))));

      const hits = await index.search(atAngle(0), { topK: 10 });

      expect(hits.map((h) => h.key)).toEqual(['same', 'near', 'right', 'far', 'opposite']);
      const expected = [1, Math.cos(Math.PI / 6), 0, -0.5, -1];
      hits.forEach((hit, i) => {
        expect(hit.score).toBeCloseTo(expected[i] as number, 3);
        expect(hit.score).toBeGreaterThanOrEqual(-1);
        expect(hit.score).toBeLessThanOrEqual(1);
        expect(hit.id).toBe(vectorIdOf(hit.key));
      });
    });

    it('honours topK', async () => {
      await index.ensure(IDENTITY);
      await index.upsert([0, 10, 20, 30, 40, 50].map((d) => item(`deg-${d}`, atAngle(d))));

      const hits = await index.search(atAngle(0), { topK: 2 });

      expect(hits.map((h) => h.key)).toEqual(['deg-0', 'deg-10']);
    });

    it('ranks a random collection as brute force does', async () => {
      await index.ensure(IDENTITY);
      const vectors = randomUnitVectors(300, 7);
      await index.upsert(vectors.map((v, i) => item(`random/${i}.jpg`, v)));
      const [query] = randomUnitVectors(1, 99) as [Float32Array];

      const hits = await index.search(query, { topK: 10 });

      const expected = vectors
        .map((v, i) => ({ key: `random/${i}.jpg`, score: dot(v, query) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10);
      expect(hits.map((h) => h.key)).toEqual(expected.map((e) => e.key));
      hits.forEach((hit, i) => {
        expect(hit.score).toBeCloseTo(expected[i]?.score as number, 4);
      });
    });

    it('overwrites the vector and key of an id on upsert', async () => {
      await index.ensure(IDENTITY);
      const id = vectorIdOf('moved.jpg');
      await index.upsert([{ id, key: 'moved.jpg', vector: atAngle(180) }, item('other.jpg', atAngle(60))]);

      await index.upsert([{ id, key: 'moved.jpg', vector: atAngle(0) }]);
      const [best] = await index.search(atAngle(0), { topK: 1 });

      expect(await index.count()).toBe(2);
      expect(best).toMatchObject({ id, key: 'moved.jpg' });
      expect(best?.score).toBeCloseTo(1, 3);
    });

    it('deletes by id, and deleting an unknown id is not an error', async () => {
      await index.ensure(IDENTITY);
      await index.upsert([item('keep.jpg', atAngle(45)), item('drop.jpg', atAngle(0))]);

      await index.delete([vectorIdOf('drop.jpg'), vectorIdOf('never-there.jpg')]);
      const hits = await index.search(atAngle(0), { topK: 10 });

      expect(hits.map((h) => h.key)).toEqual(['keep.jpg']);
      expect(await index.count()).toBe(1);
      expect(await index.get(vectorIdOf('drop.jpg'))).toBeUndefined();
    });

    it('filters by key prefix, even when better matches lie outside it', async () => {
      await index.ensure(IDENTITY);
      await index.upsert([
        item('cats/a.jpg', atAngle(40)),
        item('cats/b.jpg', atAngle(80)),
        item('dogs/a.jpg', atAngle(0)),
        item('dogs/b.jpg', atAngle(10)),
        item('catsup.jpg', atAngle(5)),
      ]);

      const hits = await index.search(atAngle(0), { topK: 10, prefix: 'cats/' });

      expect(hits.map((h) => h.key)).toEqual(['cats/a.jpg', 'cats/b.jpg']);
    });

    it('drops hits that score below minScore', async () => {
      await index.ensure(IDENTITY);
      await index.upsert([0, 30, 60, 90, 150].map((d) => item(`deg-${d}`, atAngle(d))));

      const hits = await index.search(atAngle(0), { topK: 10, minScore: 0.4 });

      expect(hits.map((h) => h.key)).toEqual(['deg-0', 'deg-30', 'deg-60']);
      expect(hits.every((h) => h.score >= 0.4)).toBe(true);
    });

    it('searches several vectors in one call, each as search() alone would, and keeps their order', async () => {
      await index.ensure(IDENTITY);
      const vectors = randomUnitVectors(60, 11);
      await index.upsert(vectors.map((v, i) => item(`each/${i}.jpg`, v)));
      const queries = [...randomUnitVectors(3, 12), atAngle(0)];

      const each = await index.searchEach(queries, { topK: 5, minScore: 0 });

      expect(each).toHaveLength(queries.length);
      for (const [n, query] of queries.entries()) {
        const alone = await index.search(query, { topK: 5, minScore: 0 });
        expect(each[n]?.map((hit) => hit.id)).toEqual(alone.map((hit) => hit.id));
        // Milvus may sum in another order for a batch: the last float digits can differ.
        for (const [i, hit] of (each[n] ?? []).entries())
          expect(hit.score).toBeCloseTo(alone[i]?.score as number, 5);
      }
      expect(await index.searchEach([], { topK: 5 })).toEqual([]);
    });

    it('gives back the stored vectors of several ids at once, leaving unknown ids out', async () => {
      await index.ensure(IDENTITY);
      const vectors = randomUnitVectors(3, 5);
      await index.upsert(vectors.map((v, i) => item(`many/${i}.jpg`, v)));
      const ids = [...vectors.keys()].map((i) => vectorIdOf(`many/${i}.jpg`));

      const found = await index.getMany([...ids, vectorIdOf('many/unknown.jpg')]);

      expect([...found.keys()].sort()).toEqual([...ids].sort());
      for (const [i, id] of ids.entries())
        expect(dot(found.get(id) as Float32Array, vectors[i] as Float32Array)).toBeCloseTo(1, 4);
      expect((await index.getMany([])).size).toBe(0);
    });

    it('gives back the stored vector of an id, and undefined for an unknown one', async () => {
      await index.ensure(IDENTITY);
      const [vector] = randomUnitVectors(1, 3) as [Float32Array];
      await index.upsert([item('mine.jpg', vector)]);

      const stored = await index.get(vectorIdOf('mine.jpg'));

      expect(stored).toBeInstanceOf(Float32Array);
      expect(stored?.length).toBe(DIMENSION);
      expect(dot(stored as Float32Array, vector)).toBeCloseTo(1, 4);
      expect(await index.get(vectorIdOf('not-mine.jpg'))).toBeUndefined();
    });

    it('counts vectors, and clear empties the index but keeps its identity', async () => {
      await index.ensure(IDENTITY);
      await index.upsert(randomUnitVectors(25, 11).map((v, i) => item(`n/${i}`, v)));
      const before = await index.count();

      await index.clear();

      expect(before).toBe(25);
      expect(await index.count()).toBe(0);
      expect(await index.search(atAngle(0), { topK: 5 })).toEqual([]);
      expect(await index.identity()).toEqual(IDENTITY);
      await index.upsert([item('after-clear.jpg', atAngle(0))]);
      expect((await index.search(atAngle(0), { topK: 5 })).map((h) => h.key)).toEqual(['after-clear.jpg']);
    });

    it("lists each vector's etag as written, replaced with its vector, and none for a vector written without", async () => {
      await index.ensure(IDENTITY);
      await index.upsert([
        { ...item('a.jpg', atAngle(0)), etag: '"old-a"' },
        { ...item('b.jpg', atAngle(30)), etag: '"b"' },
        item('c.jpg', atAngle(60)),
      ]);
      await index.upsert([{ ...item('a.jpg', atAngle(10)), etag: '"new-a"' }]);

      const etags = new Map<string, string | undefined>();
      for await (const entry of index.entries()) etags.set(entry.key, entry.etag);

      expect(Object.fromEntries(etags)).toEqual({ 'a.jpg': '"new-a"', 'b.jpg': '"b"', 'c.jpg': undefined });
    });

    it('lists every id with its key, across pages (Milvus: 1000 rows a page)', async () => {
      await index.ensure(IDENTITY);
      const items = randomUnitVectors(1005, 12).map((v, i) => item(`list/${i}.jpg`, v));
      for (let start = 0; start < items.length; start += 250)
        await index.upsert(items.slice(start, start + 250));
      await index.delete([items[7]?.id as string]);

      const listed = [];
      for await (const entry of index.entries()) listed.push(entry);

      const expected = items.filter((_, i) => i !== 7).map(({ id, key }) => ({ id, key }));
      const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
      expect(listed.sort(byId)).toEqual(expected.sort(byId));
    });
  });
}
