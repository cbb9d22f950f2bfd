import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../domain/errors.ts';
import type { VectorHit } from '../../domain/ports.ts';
import { ExactVectorIndex } from './exact-vector-index.ts';

const D = 512;
const identity = { model: 'm', profile: 'p', dimension: D };

function randomUnit(seed: number): Float32Array {
  let state = seed >>> 0;
  const v = new Float32Array(D);
  let sum = 0;
  for (let i = 0; i < D; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    v[i] = state / 4294967296 - 0.5;
    sum += (v[i] as number) ** 2;
  }
  return v.map((x) => x / Math.sqrt(sum));
}

/** The reference: every score in float64, sorted, filtered like the index promises. */
function bruteForce(
  stored: Map<string, { key: string; vector: Float32Array }>,
  query: Float32Array,
  options: { topK: number; prefix?: string; minScore?: number },
): VectorHit[] {
  const hits: VectorHit[] = [];
  for (const [id, { key, vector }] of stored) {
    if (options.prefix !== undefined && !key.startsWith(options.prefix)) continue;
    let score = 0;
    for (let i = 0; i < D; i++) score += (vector[i] as number) * (query[i] as number);
    if (options.minScore !== undefined && score < options.minScore) continue;
    hits.push({ id, key, score });
  }
  return hits.sort((a, b) => b.score - a.score).slice(0, options.topK);
}

function expectSameHits(actual: VectorHit[], expected: VectorHit[]): void {
  expect(actual.map((h) => h.id)).toEqual(expected.map((h) => h.id));
  actual.forEach((hit, i) => {
    expect(hit.score).toBeCloseTo(expected[i]?.score as number, 5);
  });
}

describe('ExactVectorIndex', () => {
  let dir: string;
  let path: string;
  const opened: ExactVectorIndex[] = [];
  const open = (blockRows = 1000, int8From?: number) => {
    const index = new ExactVectorIndex(path, { blockRows, int8From });
    opened.push(index);
    return index;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vectors-'));
    path = join(dir, 'vectors.db');
  });

  afterEach(async () => {
    for (const index of opened.splice(0)) await index.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('returns exactly the brute-force top-k across many blocks, after overwrites and deletes', async () => {
    // Prepare: 12k vectors in blocks of 1000, then a third overwritten and a sixth deleted.
    const index = open(1000);
    await index.ensure(identity);
    const stored = new Map<string, { key: string; vector: Float32Array }>();
    for (let start = 0; start < 12_000; start += 2000) {
      const items = Array.from({ length: 2000 }, (_, j) => ({
        id: String(start + j + 1),
        key: `${(start + j) % 2 ? 'odd' : 'even'}/${start + j}.jpg`,
        vector: randomUnit(start + j),
      }));
      await index.upsert(items);
      for (const item of items) stored.set(item.id, item);
    }
    const overwrites = [...stored.keys()].filter((_, i) => i % 3 === 0);
    await index.upsert(
      overwrites.map((id, i) => ({ id, key: `moved/${id}`, vector: randomUnit(50_000 + i) })),
    );
    overwrites.forEach((id, i) => {
      stored.set(id, { key: `moved/${id}`, vector: randomUnit(50_000 + i) });
    });
    const deletions = [...stored.keys()].filter((_, i) => i % 6 === 1);
    await index.delete(deletions);
    for (const id of deletions) stored.delete(id);

    // Act + Assess
    expect(await index.count()).toBe(stored.size);
    for (let q = 0; q < 5; q++) {
      const query = randomUnit(90_000 + q);
      expectSameHits(await index.search(query, { topK: 10 }), bruteForce(stored, query, { topK: 10 }));
      expectSameHits(
        await index.search(query, { topK: 25, prefix: 'odd/' }),
        bruteForce(stored, query, { topK: 25, prefix: 'odd/' }),
      );
      // Halfway between the 7th and 8th best, so float32 rounding cannot decide the cut.
      const ranked = bruteForce(stored, query, { topK: 8 });
      const minScore = ((ranked[6]?.score as number) + (ranked[7]?.score as number)) / 2;
      expectSameHits(
        await index.search(query, { topK: 100, minScore }),
        bruteForce(stored, query, { topK: 100, minScore }),
      );
    }
  });

  it('finds the same results after a restart, reloaded from the file', async () => {
    const first = open();
    await first.ensure(identity);
    await first.upsert(
      Array.from({ length: 1500 }, (_, i) => ({ id: String(i), key: `k${i}`, vector: randomUnit(i) })),
    );
    await first.delete(['3', '700']);
    const query = randomUnit(42);
    const before = await first.search(query, { topK: 5 });

    const second = open();

    expect(await second.identity()).toEqual(identity);
    expect(await second.count()).toBe(1498);
    expect(await second.search(query, { topK: 5 })).toEqual(before);
  });

  it('opens a file written before vectors kept their etag: its vectors list none, new writes keep theirs', async () => {
    const first = open();
    await first.ensure(identity);
    await first.upsert([{ id: '1', key: 'old.jpg', vector: randomUnit(1) }]);
    await first.close();
    opened.splice(opened.indexOf(first), 1);
    const db = new Database(path);
    db.exec('ALTER TABLE vectors DROP COLUMN etag');
    db.close();

    const reopened = open();
    await reopened.upsert([{ id: '2', key: 'new.jpg', etag: '"e2"', vector: randomUnit(2) }]);
    const listed = [];
    for await (const entry of reopened.entries()) listed.push(entry);

    expect(listed.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: '1', key: 'old.jpg' },
      { id: '2', key: 'new.jpg', etag: '"e2"' },
    ]);
  });

  it('sees what another process wrote to the same file', async () => {
    const service = open();
    await service.ensure(identity);
    await service.upsert([{ id: '1', key: 'one.jpg', vector: randomUnit(1) }]);
    expect(await service.count()).toBe(1);
    const cli = open();

    await cli.upsert([{ id: '2', key: 'two.jpg', vector: randomUnit(2) }]);
    await cli.delete(['1']);

    expect(await service.count()).toBe(1);
    expect((await service.search(randomUnit(2), { topK: 5 })).map((h) => h.key)).toEqual(['two.jpg']);
  });

  it('keeps the vector as given, and scores it by direction only', async () => {
    const index = open();
    await index.ensure(identity);
    const long = randomUnit(5).map((x) => x * 3);

    await index.upsert([{ id: '9', key: 'long.jpg', vector: long }]);

    expect(await index.get('9')).toEqual(long);
    expect((await index.search(randomUnit(5), { topK: 1 }))[0]?.score).toBeCloseTo(1, 6);
  });

  it('refuses vectors of the wrong size, without direction, and ids that are not int64', async () => {
    const index = open();
    await index.ensure(identity);

    await expect(index.upsert([{ id: '1', key: 'a', vector: new Float32Array(3) }])).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(index.upsert([{ id: '1', key: 'a', vector: new Float32Array(D) }])).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(index.upsert([{ id: '-1', key: 'a', vector: randomUnit(1) }])).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(index.get('9223372036854775808')).rejects.toBeInstanceOf(ValidationError);
    await expect(index.search(randomUnit(1), { topK: 0 })).rejects.toBeInstanceOf(ValidationError);
    expect(await index.count()).toBe(0);
  });

  it('asks for ensure() before the first upsert', async () => {
    const index = open();

    await expect(index.upsert([{ id: '1', key: 'a', vector: randomUnit(1) }])).rejects.toThrow(/ensure/);
  });

  it('answers parallel searches consistently while vectors are written and deleted', async () => {
    const index = open(500);
    await index.ensure(identity);
    const item = (i: number) => ({ id: String(i), key: `k/${i}`, vector: randomUnit(i) });
    await index.upsert(Array.from({ length: 3000 }, (_, i) => item(i)));

    const searches = Array.from({ length: 20 }, (_, q) => index.search(randomUnit(q % 3000), { topK: 5 }));
    const writes = Array.from({ length: 10 }, async (_, w) => {
      await index.upsert(Array.from({ length: 200 }, (_, j) => item(3000 + w * 200 + j)));
      await index.delete(Array.from({ length: 100 }, (_, j) => String(w * 100 + j + 1000)));
    });
    const results = await Promise.all(searches);
    await Promise.all(writes);

    for (const [q, hits] of results.entries()) {
      expect(hits).toHaveLength(5);
      for (const hit of hits) expect(hit.key).toBe(`k/${hit.id}`);
      // Each query is a stored vector that no writer deleted (ids 1000–1999 are the deleted ones).
      if (q % 3000 < 1000) expect(hits[0]).toMatchObject({ id: String(q % 3000) });
    }
    expect(await index.count()).toBe(3000 + 2000 - 1000);
  });

  it('keeps 63-bit ids exact', async () => {
    const index = open();
    await index.ensure(identity);
    const id = '9223372036854775807';

    await index.upsert([{ id, key: 'max.jpg', vector: randomUnit(1) }]);

    expect((await index.search(randomUnit(1), { topK: 1 }))[0]?.id).toBe(id);
    expect(await open().get(id)).toBeInstanceOf(Float32Array);
  });

  it('lists exactly the pairs above a threshold across blocks and batches, and its revision moves on writes', async () => {
    // Prepare: 700 random vectors (blocks of 300, so batches of 256 cross block edges) and, for 40 of
    // them, a near copy (the vector plus a little noise) stored under another id.
    const index = open(300);
    await index.ensure(identity);
    const stored = new Map<string, Float32Array>();
    for (let i = 0; i < 700; i++) stored.set(String(i + 1), randomUnit(i));
    for (let c = 0; c < 40; c++) {
      const noise = randomUnit(10_000 + c);
      const base = stored.get(String(c * 17 + 1)) as Float32Array;
      stored.set(
        String(1000 + c),
        base.map((x, d) => x + 0.05 * (noise[d] as number)),
      );
    }
    await index.upsert([...stored].map(([id, vector]) => ({ id, key: `k/${id}`, vector })));
    const before = await index.revision();
    const cosine = (a: Float32Array, b: Float32Array) => {
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let d = 0; d < D; d++) {
        dot += (a[d] as number) * (b[d] as number);
        na += (a[d] as number) ** 2;
        nb += (b[d] as number) ** 2;
      }
      return dot / Math.sqrt(na * nb);
    };
    const entries = [...stored];
    const expected = new Set<string>();
    for (let i = 0; i < entries.length; i++) {
      for (let j = i + 1; j < entries.length; j++) {
        const [a, va] = entries[i] as [string, Float32Array];
        const [b, vb] = entries[j] as [string, Float32Array];
        if (cosine(va, vb) >= 0.9) expected.add([a, b].sort().join(','));
      }
    }

    const pairs = await index.similarPairs(0.9, 10_000);

    expect(expected.size).toBe(40);
    expect(new Set(pairs.map((p) => [p.a.id, p.b.id].sort().join(',')))).toEqual(expected);
    for (const pair of pairs) {
      expect(pair.a.key).toBe(`k/${pair.a.id}`);
      expect(pair.score).toBeCloseTo(
        cosine(stored.get(pair.a.id) as Float32Array, stored.get(pair.b.id) as Float32Array),
        4,
      );
    }
    await expect(index.similarPairs(-1, 1000)).rejects.toThrow(/raise the threshold/);
    await index.delete(['1000']);
    expect(await index.revision()).not.toBe(before);
  });

  it('answers searches and takes writes while a self-join runs', async () => {
    const index = open();
    await index.ensure(identity);
    await index.upsert(
      Array.from({ length: 4000 }, (_, i) => ({ id: String(i + 1), key: `k${i}`, vector: randomUnit(i) })),
    );
    const finished: string[] = [];

    const join = index.similarPairs(0.99, 1000).then((pairs) => {
      finished.push('join');
      return pairs;
    });
    const search = index.search(randomUnit(7), { topK: 1 }).then((hits) => {
      finished.push('search');
      return hits;
    });
    await index.delete(['8']);

    expect((await search)[0]?.id).toBe('8');
    expect(await join).toEqual([]);
    expect(finished).toEqual(['search', 'join']);
    expect(await index.count()).toBe(3999);
  });

  describe('from int8From vectors on, an int8 scan with float32 re-scoring', () => {
    /** Fraction of the brute force's top-k ids found, over `queries` stored-set queries. */
    async function recallAt(
      index: ExactVectorIndex,
      stored: Map<string, { key: string; vector: Float32Array }>,
      topK: number,
      options: { prefix?: string } = {},
    ) {
      let found = 0;
      let wanted = 0;
      for (let q = 0; q < 30; q++) {
        const query = randomUnit(70_000 + q);
        const expected = bruteForce(stored, query, { topK, ...options });
        const hits = await index.search(query, { topK, ...options });
        const scores = new Map(expected.map((hit) => [hit.id, hit.score]));
        for (const hit of hits) {
          expect(hit.key.startsWith(options.prefix ?? '')).toBe(true);
          if (scores.has(hit.id)) expect(hit.score).toBeCloseTo(scores.get(hit.id) as number, 5);
        }
        found += hits.filter((hit) => scores.has(hit.id)).length;
        wanted += expected.length;
      }
      return found / wanted;
    }

    it('finds ≥ 99 % of the exact top-10 of seeded random vectors, with exact scores, filters applied while scanning', async () => {
      // Prepare: 20k random 512-d vectors (the hardest case for a scan by estimates: no clusters), 1 % under a rare prefix.
      const index = open(4096, 1);
      await index.ensure(identity);
      const stored = new Map<string, { key: string; vector: Float32Array }>();
      for (let start = 0; start < 20_000; start += 5000) {
        const items = Array.from({ length: 5000 }, (_, j) => ({
          id: String(start + j),
          key: `${(start + j) % 100 === 0 ? 'rare' : 'common'}/${start + j}.jpg`,
          vector: randomUnit(start + j),
        }));
        await index.upsert(items);
        for (const item of items) stored.set(item.id, item);
      }

      expect(await recallAt(index, stored, 10)).toBeGreaterThanOrEqual(0.99);
      // A prefix that keeps 1 % of the rows: candidates are picked among them, so none is lost to the others.
      expect(await recallAt(index, stored, 10, { prefix: 'rare/' })).toBeGreaterThanOrEqual(0.99);
      const query = randomUnit(70_000);
      const ranked = bruteForce(stored, query, { topK: 8 });
      const minScore = ((ranked[6]?.score as number) + (ranked[7]?.score as number)) / 2;
      expectSameHits(await index.search(query, { topK: 100, minScore }), ranked.slice(0, 7));
    });

    it("reflects overwrites and deletes at once, its own and another process's", async () => {
      const index = open(1000, 1);
      await index.ensure(identity);
      await index.upsert(
        Array.from({ length: 3000 }, (_, i) => ({ id: String(i), key: `k/${i}`, vector: randomUnit(i) })),
      );
      const query = randomUnit(5);
      expect((await index.search(query, { topK: 1 }))[0]).toMatchObject({ id: '5', key: 'k/5' });

      await index.delete(['5']);
      expect((await index.search(query, { topK: 10 })).map((hit) => hit.id)).not.toContain('5');
      await index.upsert([{ id: '2999', key: 'moved/2999', vector: query }]);
      expect((await index.search(query, { topK: 1 }))[0]).toMatchObject({ id: '2999', key: 'moved/2999' });
      const cli = open(1000, 1);
      await cli.delete(['2999']);
      await cli.upsert([{ id: '7', key: 'k/7', vector: query }]);
      const hits = await index.search(query, { topK: 10 });
      expect(hits[0]).toMatchObject({ id: '7', key: 'k/7' });
      expect(hits.map((hit) => hit.id)).not.toContain('2999');
    });

    it('switches from the exact scan at int8From vectors', async () => {
      // Prepare: 200 vectors whose int8 codes equal the best one's: the int8 scan ties them all and keeps
      // the earlier rows as its 100 candidates, so only the exact scan finds the best, stored last.
      const decoy = new Float32Array(D);
      decoy[0] = 1;
      const best = new Float32Array(D);
      best[0] = 1;
      best[1] = 0.001; // × 127 rounds to 0: the same code as the decoys
      const query = new Float32Array(D);
      query[0] = 1;
      query[1] = 1;
      const items = [
        ...Array.from({ length: 200 }, (_, i) => ({ id: String(i), key: `decoy/${i}`, vector: decoy })),
        { id: '200', key: 'best', vector: best },
      ];
      const exact = open(1000, 202);
      await exact.ensure(identity);
      await exact.upsert(items);
      const int8 = open(1000, 201);

      expect((await exact.search(query, { topK: 1 }))[0]?.key).toBe('best');
      expect((await int8.search(query, { topK: 1 }))[0]?.key).toMatch(/^decoy\//);
    });
  });
});
