import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import { uniqueCollection } from './support.ts';

/**
 * Prefix searches on Milvus Lite: the prefix goes into the query itself, so the topK best under it come
 * back even when closer vectors lie just outside it (under a key that a LIKE pattern would match).
 */
const QUERY = Float32Array.from([1, 0, 0, 0]);
/** Nearer the query than any match: a filter applied after `limit: topK` would return none of the matches. */
const DECOY = Float32Array.from([1, 0.01, 0, 0]);
const MATCH = Float32Array.from([1, 1, 1, 0]);

const CASES: { prefix: string; decoys: string[] }[] = [
  { prefix: 'holiday_2024/', decoys: ['holidayX2024/', 'holiday-2024/', 'holiday_2024'] },
  { prefix: '100%/', decoys: ['100X/', '1000/', '100%'] },
  { prefix: 'a"b\\c/', decoys: ['a"b\\d/', 'a"b/', 'ab\\c/'] },
  { prefix: 'café/', decoys: ['cafe/', 'café0/', 'cafè/'] },
];
const MATCHES_EACH = 3;

let index: MilvusVectorIndex;

beforeAll(async () => {
  index = new MilvusVectorIndex({ address: inject('milvusAddress'), collection: uniqueCollection('prefix') });
  await index.ensure({ model: 'test', profile: 'test', dimension: 4 });
  const keys = CASES.flatMap(({ prefix, decoys }) => [
    ...Array.from({ length: MATCHES_EACH }, (_, i) => ({ key: `${prefix}match-${i}.jpg`, vector: MATCH })),
    ...decoys.flatMap((decoy) =>
      Array.from({ length: 4 }, (_, i) => ({ key: `${decoy}decoy-${i}.jpg`, vector: DECOY })),
    ),
  ]);
  await index.upsert(keys.map(({ key, vector }) => ({ id: vectorIdOf(key), key, vector })));
});

afterAll(async () => {
  await index.drop();
  await index.close();
});

describe('MilvusVectorIndex prefix search', () => {
  it.each(CASES)('returns topK keys under "$prefix" and none that only look alike', async ({ prefix }) => {
    const hits = await index.search(QUERY, { topK: MATCHES_EACH, prefix });

    expect(hits.map((hit) => hit.key).sort()).toEqual(
      Array.from({ length: MATCHES_EACH }, (_, i) => `${prefix}match-${i}.jpg`),
    );
  });

  it('returns fewer than topK only when fewer keys are under the prefix', async () => {
    const hits = await index.search(QUERY, { topK: 10, prefix: 'holiday_2024/' });

    expect(hits).toHaveLength(MATCHES_EACH);
  });

  it.each(['holiday\n2024/', 'tab\there/', 'nul\u0000/', 'lone\ud800/'])(
    'refuses the prefix %j as a bad request',
    async (prefix) => {
      const error = await index.search(QUERY, { topK: 3, prefix }).catch((caught: unknown) => caught);

      expect(error).toMatchObject({ status: 400, message: expect.stringMatching(/^prefix:/) });
    },
  );
});
