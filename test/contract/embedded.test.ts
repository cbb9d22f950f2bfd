import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExactVectorIndex } from '../../src/adapters/embedded/exact-vector-index.ts';
import { FolderObjectStore } from '../../src/adapters/embedded/folder-object-store.ts';
import { SqliteCatalogue } from '../../src/adapters/embedded/sqlite-catalogue.ts';
import { SqliteJobQueue } from '../../src/adapters/embedded/sqlite-job-queue.ts';
import { CONTRACT_PAGE_SIZE, describeCatalogueContract } from './catalogue.contract.ts';
import { describeJobQueueContract } from './job-queue.contract.ts';
import { describeObjectStoreContract } from './object-store.contract.ts';
import { describeVectorIndexContract } from './vector-index.contract.ts';

async function tempDir(): Promise<{ dir: string; removeDir: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pic-search-contract-'));
  return { dir, removeDir: () => rm(dir, { recursive: true, force: true }) };
}

describeObjectStoreContract('FolderObjectStore', async () => {
  const { dir, removeDir } = await tempDir();
  return { store: new FolderObjectStore(join(dir, 'bucket')), cleanup: removeDir };
});

describeJobQueueContract('SqliteJobQueue', async (settings) => {
  const { dir, removeDir } = await tempDir();
  const queue = new SqliteJobQueue(join(dir, 'queue.db'), settings);
  return {
    queue,
    deadLetterCount: async () => queue.deadLetters().length,
    cleanup: async () => {
      queue.close();
      await removeDir();
    },
  };
});

describeCatalogueContract('SqliteCatalogue', async () => {
  const { dir, removeDir } = await tempDir();
  const path = join(dir, 'catalogue.db');
  const catalogue = new SqliteCatalogue(path, { pageSize: CONTRACT_PAGE_SIZE });
  const other = new SqliteCatalogue(path, { pageSize: CONTRACT_PAGE_SIZE });
  return {
    catalogue,
    otherProcess: other,
    cleanup: async () => {
      catalogue.close();
      other.close();
      await removeDir();
    },
  };
});

for (const [name, int8From] of [
  ['ExactVectorIndex', undefined],
  ['ExactVectorIndex, int8 scan from the first vector', 1],
] as const) {
  describeVectorIndexContract(name, async () => {
    const { dir, removeDir } = await tempDir();
    // Small blocks, so the contract also crosses block boundaries.
    const index = new ExactVectorIndex(join(dir, 'vectors.db'), { blockRows: 64, int8From });
    return {
      index,
      cleanup: async () => {
        await index.close();
        await removeDir();
      },
    };
  });
}
