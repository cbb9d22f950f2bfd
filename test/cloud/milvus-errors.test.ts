import { describe, expect, it } from 'vitest';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { ServiceUnavailableError } from '../../src/domain/errors.ts';
import { freePort } from '../services/emulators.ts';

describe('MilvusVectorIndex without a server', () => {
  it('reports an unreachable Milvus as unavailable, naming the address', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const index = new MilvusVectorIndex({ address, collection: 'nowhere', timeoutMs: 3000 });

    const error = await index.count().catch((caught: unknown) => caught);
    await index.close();

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as Error).message).toContain(`Milvus at ${address} is unreachable`);
  });
});
