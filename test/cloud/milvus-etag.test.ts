import { DataType, MilvusClient } from '@zilliz/milvus2-sdk-node';
import { afterAll, expect, inject, it } from 'vitest';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import type { VectorEntry } from '../../src/domain/ports.ts';
import { uniqueCollection } from './support.ts';

// A collection created before vectors kept their etag (no `etag` field): the adapter still writes and lists
// it, with no etags (verify then does not judge those vectors), while new collections keep them.

const IDENTITY = { model: 'test', profile: 'test', dimension: 4 };
const collection = uniqueCollection('no_etag');
const client = new MilvusClient({
  address: inject('milvusAddress'),
  logLevel: 'warn',
} as ConstructorParameters<typeof MilvusClient>[0]);
const index = new MilvusVectorIndex({ address: inject('milvusAddress'), collection });

afterAll(async () => {
  await index.drop();
  await index.close();
  await client.closeConnection();
});

it('writes and lists a collection made without the etag field, giving its vectors no etag', async () => {
  // Arrange: the collection as the adapter made it before the etag field.
  await client.createCollection({
    collection_name: collection,
    fields: [
      { name: 'id', data_type: DataType.Int64, is_primary_key: true, autoID: false },
      { name: 'key', data_type: DataType.VarChar, max_length: 1024 },
      { name: 'vector', data_type: DataType.FloatVector, dim: IDENTITY.dimension },
    ],
    properties: { 'pic.model': 'test', 'pic.profile': 'test', 'pic.dimension': '4' },
  } as Parameters<MilvusClient['createCollection']>[0]);
  await client.createIndex({
    collection_name: collection,
    field_name: 'vector',
    index_type: 'HNSW',
    metric_type: 'COSINE',
    params: { M: 16, efConstruction: 200 },
  });

  // Act
  await index.ensure(IDENTITY);
  await index.upsert([{ id: '7', key: 'a.jpg', etag: '"e"', vector: Float32Array.from([1, 0, 0, 0]) }]);
  const listed: VectorEntry[] = [];
  for await (const entry of index.entries()) listed.push(entry);

  // Assess
  expect(listed).toEqual([{ id: '7', key: 'a.jpg' }]);
  expect((await index.search(Float32Array.from([1, 0, 0, 0]), { topK: 1 }))[0]).toMatchObject({
    key: 'a.jpg',
  });
});
