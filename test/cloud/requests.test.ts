import { readFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { PurgeQueueCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CloudConfig, loadCloudConfig } from '../../src/adapters/aws/config.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { createCloudSystem } from '../../src/wiring/cloud.ts';
import { fixturePhotos, seededEmbedder, waitFor } from './harness.ts';
import { type CloudStack, countRequests, createCloudStack, emulatorClients } from './support.ts';

// What the worker asks of AWS for each image, counted by moto's request recorder: catalogue writes are
// DynamoDB write units in the cloud and most of the emulators' CPU here. Each drain runs in a fresh
// system, as a new worker process would, so nothing is known of the keys but what it reads.

const clients = emulatorClients(inject('awsEndpoint'));
const photos = fixturePhotos(8);
let stack: CloudStack;
let config: CloudConfig;
let embedder: Embedder;
let bytes: Buffer[];

const putAll = (prefix: string, bodies: Buffer[]) =>
  Promise.all(
    photos.map((photo, i) =>
      clients.s3.send(
        new PutObjectCommand({ Bucket: stack.bucket, Key: `images/${prefix}${photo.name}`, Body: bodies[i] }),
      ),
    ),
  );

/** Starts a fresh worker, waits until it has handled `photos.length` images, and counts its requests. */
async function drainCounting(): Promise<Map<string, number>> {
  const system = await createCloudSystem(config, { embedder, waitMs: 1000 });
  try {
    await waitFor(
      () => system.stores.queue.depth(),
      (depth) => depth.visible >= photos.length,
    );
    return await countRequests(inject('awsEndpoint'), async () => {
      system.worker.start();
      const handled = () => system.worker.stats.indexed + system.worker.stats.failed;
      await waitFor(
        async () => handled(),
        (n) => n >= photos.length,
      );
      await system.worker.stop();
      expect(system.worker.stats).toMatchObject({ indexed: photos.length, failed: 0 });
    });
  } finally {
    await system.close();
  }
}

/** Requests per image of the kinds made once an image (or, for the reads, never). */
function perImage(counts: Map<string, number>): Record<string, number> {
  const names = [
    's3 GET',
    's3 HEAD',
    's3 PUT',
    'dynamodb PutItem id#',
    'dynamodb PutItem img#',
    'dynamodb GetItem img#',
  ];
  return Object.fromEntries(names.map((name) => [name, (counts.get(name) ?? 0) / photos.length]));
}

beforeAll(async () => {
  stack = await createCloudStack(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  });
  config = loadCloudConfig({ ...stack.env, PIC_BATCH_SIZE: '8' });
  embedder = await seededEmbedder();
  bytes = await Promise.all(photos.map((photo) => readFile(photo.path)));
}, 300_000);

afterAll(async () => {
  await embedder?.close();
  clients.destroy();
});

describe('AWS requests of the worker per image', () => {
  it('a photo dropped into the bucket: download, id claim, one look before and one after its write, thumbnail', async () => {
    await putAll('drop/', bytes);

    const counts = await drainCounting();

    expect(perImage(counts)).toEqual({
      's3 GET': 1,
      // The worker checks the object is still the one it embedded before committing, and looks at it
      // again after writing it (last write wins: docs/consistency.md).
      's3 HEAD': 2,
      's3 PUT': 1,
      'dynamodb PutItem id#': 1,
      'dynamodb PutItem img#': 0,
      'dynamodb GetItem img#': 0,
    });
    // Per batch (the 8 images come in one or two): one read of its records, one of their versions before
    // committing, one transaction of its records with the counters (outcomes only, no pending state
    // written), one delete of its messages.
    const batches = counts.get('sqs DeleteMessageBatch') ?? 0;
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(2);
    expect(counts.get('dynamodb BatchGetItem')).toBe(2 * batches);
    expect(counts.get('dynamodb TransactWriteItems')).toBe(batches);
    expect(counts.get('dynamodb UpdateItem counters')).toBeUndefined();
  });

  it('a photo overwritten in the bucket: its record owns the id, so no claim and no read of its own', async () => {
    await putAll(
      'drop/',
      bytes.map((body) => Buffer.concat([body, Buffer.from('changed')])),
    );

    const counts = await drainCounting();

    expect(perImage(counts)).toMatchObject({
      'dynamodb PutItem id#': 0,
      'dynamodb PutItem img#': 0,
      'dynamodb GetItem img#': 0,
    });
  });

  it('a photo queued by ingest (recorded pending): no claim and no read of its own', async () => {
    await putAll('backfill/', bytes);
    // Only the backfill's own messages: the notifications of these puts (moto sends them within the PUT) go.
    await clients.sqs.send(new PurgeQueueCommand({ QueueUrl: stack.queue.url }));
    const ingest = await createCloudSystem(config, { embedder, ensureIndex: false });
    const report = await ingest.operations.backfill('backfill/');
    await ingest.close();

    const counts = await drainCounting();

    expect(report.queued).toBe(photos.length);
    expect(perImage(counts)).toMatchObject({
      'dynamodb PutItem id#': 0,
      'dynamodb PutItem img#': 0,
      'dynamodb GetItem img#': 0,
    });
  });
});
