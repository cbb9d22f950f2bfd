import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntilSettled } from './settle.ts';
import { FIXTURES, type TempSystem, tempSystem } from './test-system.ts';

async function waitForCount(system: TempSystem, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await system.operations.count()) !== count) {
    if (Date.now() > deadline) throw new Error(`count did not reach ${count}`);
    await sleep(100);
  }
  await waitUntilSettled(system.operations, { timeoutMs: 60_000 });
}

describe('bucket folder watcher', () => {
  let system: TempSystem;
  let bucket: string;

  beforeAll(async () => {
    system = await tempSystem({ PIC_WATCH: 'true' });
    bucket = join(system.dataDir, 'bucket');
    // Dropped while the service was stopped: the reconcile at start must pick it up.
    await mkdir(join(bucket, 'early'), { recursive: true });
    await copyFile(join(FIXTURES, 'pizza.jpg'), join(bucket, 'early', 'pizza.jpg'));
    await system.startWorker();
  });

  afterAll(async () => {
    await system?.dispose();
  });

  it('indexes files that were dropped while the service was stopped', async () => {
    await waitForCount(system, 1);
    expect((await system.stores.catalogue.get('early/pizza.jpg'))?.state).toBe('indexed');
  });

  it('indexes a file dropped into the bucket folder, like an S3 drop', async () => {
    await mkdir(join(bucket, 'drop', 'new folder'), { recursive: true });
    await copyFile(join(FIXTURES, 'chimpanzee.jpg'), join(bucket, 'drop', 'new folder', 'chimp ü.JPG'));
    await waitForCount(system, 2);
    const { results } = await system.operations.searchByKey('drop/new folder/chimp ü.JPG', { topK: 1 });
    expect(results[0]?.key).toBe('drop/new folder/chimp ü.JPG');
  });

  it('forgets a file deleted from the bucket folder, and a whole folder removed at once', async () => {
    await rm(join(bucket, 'early', 'pizza.jpg'));
    await waitForCount(system, 1);
    expect(await system.stores.catalogue.get('early/pizza.jpg')).toBeUndefined();
    await rm(join(bucket, 'drop'), { recursive: true });
    await waitForCount(system, 0);
    expect((await system.operations.progress()).total).toBe(0);
  });
});
