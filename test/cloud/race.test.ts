import { CopyObjectCommand, DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { type CloudSystem, createCloudSystem } from '../../src/wiring/cloud.ts';
import { contentPool, type RaceTarget, runRace } from '../race/race.ts';
import { seededEmbedder, waitFor } from './harness.ts';
import { type CloudStack, createCloudStack, emulatorClients } from './support.ts';

// The randomized race of docs/consistency.md on moto + Milvus Lite, smaller than the embedded one: puts,
// overwrites, deletes and renames (copy + delete) straight into the bucket, whose notifications reach two
// workers sharing the queue as two GPU containers would, so their writes of one key can cross.

const clients = emulatorClients(inject('awsEndpoint'));
let stack: CloudStack;
let embedder: Embedder;
const systems: CloudSystem[] = [];

beforeAll(async () => {
  stack = await createCloudStack(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  });
  embedder = await seededEmbedder();
  const config = loadCloudConfig({ ...stack.env, PIC_BATCH_SIZE: '4' });
  for (let i = 0; i < 2; i++) systems.push(await createCloudSystem(config, { embedder, waitMs: 500 }));
  for (const system of systems) system.worker.start();
}, 300_000);

afterAll(async () => {
  for (const system of systems) await system.close();
  await embedder?.close();
  clients.destroy();
});

function cloudTarget(system: CloudSystem): RaceTarget {
  const Bucket = stack.bucket;
  const { operations, stores } = system;
  return {
    put: async (key, body) => {
      await clients.s3.send(new PutObjectCommand({ Bucket, Key: key, Body: body }));
    },
    delete: async (key) => {
      await clients.s3.send(new DeleteObjectCommand({ Bucket, Key: key }));
    },
    async rename(from, to) {
      await clients.s3.send(new CopyObjectCommand({ Bucket, Key: to, CopySource: `${Bucket}/${from}` }));
      await clients.s3.send(new DeleteObjectCommand({ Bucket, Key: from }));
    },
    async settle() {
      let quietSince = Date.now();
      await waitFor(
        () => operations.progress(0),
        (p) => {
          const idle = p.pending === 0 && p.queue.visible === 0 && p.queue.inFlight === 0;
          if (!idle) quietSince = Date.now();
          return idle && Date.now() - quietSince > 3000;
        },
        240_000,
      );
    },
    count: () => operations.count(),
    progress: () => operations.progress(0),
    search: async (body, topK) => (await operations.searchByImage(body, { topK })).results,
    records: () => stores.catalogue.list('images/'),
    etagOf: async (key) => (await stores.images.head(key))?.etag,
  };
}

it('leaves Milvus and DynamoDB in agreement with the bucket after 30 random operations on 8 keys', async () => {
  const pool = await contentPool();

  const report = await runRace(cloudTarget(systems[0] as CloudSystem), pool, {
    seed: 1306,
    operations: 30,
    keys: 8,
    prefix: 'images/race/',
  });

  expect(report.divergences, `seed ${report.seed}\n${report.journal.join('\n')}`).toEqual([]);
  expect(report.valid + report.corrupt).toBeGreaterThan(0);
}, 300_000);
