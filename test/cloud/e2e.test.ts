import { readFile } from 'node:fs/promises';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SearchResponse } from '../../src/app/operations.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { HttpHandler } from '../../src/http/types.ts';
import type { LambdaHttpHandler } from '../../src/observability/lambda-handler.ts';
import type { CloudSystem } from '../../src/wiring/cloud.ts';
import { apiEvent, fixturePhotos, invokedAsLambda, startCloud, transformedCopy, waitFor } from './harness.ts';
import { type CloudStack, emulatorClients } from './support.ts';

// The cloud path end to end on emulators: objects put into the moto bucket produce real S3 event
// notifications on the SQS queue (the bucket's notification configuration is the one the CDK stack
// deploys, src/adapters/aws/notifications.ts); the worker embeds them with the seeded model into Milvus
// Lite and DynamoDB; the Lambda entry points (functions/api/*.ts over cloudOperations()) answer.
// moto 5.2.5 notifies ObjectCreated:Put/Copy and ObjectRemoved:Delete itself, so no event is hand-made
// except the re-delivery below, which replays the exact body S3 sent.

const clients = emulatorClients(inject('awsEndpoint'));
const photos = fixturePhotos(8);
const BAD = {
  'images/broken.jpg': Buffer.from('this is not a JPEG at all'),
  'images/empty.png': Buffer.alloc(0),
};
const key = (name: string) => `images/${name}`;

let stack: CloudStack;
let system: CloudSystem;
let stopCloud: (() => Promise<void>) | undefined;
let search: HttpHandler;
let count: HttpHandler;
let progress: HttpHandler;

const invoked = (handler: LambdaHttpHandler, name: string) => invokedAsLambda(handler, name, 'e2e');

const put = (objectKey: string, body: Buffer) =>
  clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: objectKey, Body: body }));

async function searchFor(image: Buffer, topK = 3): Promise<SearchResponse> {
  const response = await search(
    apiEvent({
      method: 'POST',
      path: '/search',
      query: { topK: String(topK) },
      headers: { 'content-type': 'image/jpeg' },
      body: image,
    }),
  );
  expect(response.statusCode).toBe(200);
  return JSON.parse(response.body as string) as SearchResponse;
}

const countNow = async () =>
  JSON.parse((await count(apiEvent({ method: 'GET', path: '/count' }))).body as string).count as number;

beforeAll(async () => {
  ({
    stack,
    system,
    stop: stopCloud,
  } = await startCloud(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  }));
  search = invoked((await import('../../functions/api/search.ts')).handler, 'search');
  count = invoked((await import('../../functions/api/count.ts')).handler, 'count');
  progress = invoked((await import('../../functions/api/progress.ts')).handler, 'progress');
  for (const photo of photos) await put(key(photo.name), await readFile(photo.path));
  for (const [objectKey, body] of Object.entries(BAD)) await put(objectKey, body);
  // A name with a space and a plus: S3 sends it URL-encoded with '+' for the space.
  await put('images/summer day+night.jpg', await readFile(photos[0]?.path as string));
}, 300_000);

afterAll(async () => {
  await stopCloud?.();
  clients.destroy();
});

describe('cloud mode on moto + Milvus Lite', () => {
  it('indexes every dropped photo from its S3 notification and records bad files with reasons', async () => {
    const expected = photos.length + 1;

    const done = await waitFor(
      () => system.operations.progress(10),
      (p) => p.indexed + p.failed === expected + 2 && p.pending === 0,
      180_000,
    );
    const http = JSON.parse(
      (await progress(apiEvent({ method: 'GET', path: '/progress', query: { failures: '10' } })))
        .body as string,
    );

    expect(done).toMatchObject({ total: expected + 2, indexed: expected, failed: 2, pending: 0 });
    expect(await countNow()).toBe(expected);
    expect(http).toMatchObject({ total: expected + 2, indexed: expected, failed: 2 });
    const reasons = Object.fromEntries(done.recentFailures.map((f) => [f.key, f.reason]));
    expect(Object.keys(reasons).sort()).toEqual(Object.keys(BAD).sort());
    for (const reason of Object.values(reasons)) expect(reason.length).toBeGreaterThan(5);
    expect((await system.stores.catalogue.get('images/summer day+night.jpg'))?.state).toBe('indexed');
  });

  it('finds each original from a transformed copy through the Lambda search handler', async () => {
    for (const photo of photos.slice(1, 5)) {
      const found = await searchFor(await transformedCopy(photo.path));

      expect(found.results[0]?.key).toBe(key(photo.name));
      expect(found.results[0]?.imageUrl).toContain('X-Amz-Signature=');
      expect(found.results[0]?.thumbnailUrl).toContain(`/thumbnails/${key(photo.name)}.webp?`);
    }
  });

  it('writes the thumbnail next to the image, under the thumbnail prefix', async () => {
    const thumbnail = await system.stores.thumbnails.get(`${key(photos[1]?.name as string)}.webp`);

    expect(thumbnail.body.subarray(8, 12).toString()).toBe('WEBP');
  });

  it('does not index a re-delivered S3 message twice', async () => {
    const target = key(photos[2]?.name as string);
    const object = await system.stores.images.head(target);
    const before = await countNow();
    const unchanged = system.worker.stats.unchanged;
    const redelivered = {
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: 'us-east-1',
          eventTime: new Date().toISOString(),
          eventName: 'ObjectCreated:Put',
          s3: {
            s3SchemaVersion: '1.0',
            bucket: { name: stack.bucket, arn: `arn:aws:s3:::${stack.bucket}` },
            object: { key: encodeURIComponent(target), size: object?.size, eTag: object?.etag },
          },
        },
      ],
    };

    await clients.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.queue.url, MessageBody: JSON.stringify(redelivered) }),
    );
    await waitFor(
      async () => system.worker.stats.unchanged,
      (n) => n > unchanged,
    );

    expect(await countNow()).toBe(before);
    expect((await system.stores.catalogue.get(target))?.state).toBe('indexed');
  });

  it('replaces the vector when an object is overwritten, keeping one vector for the key', async () => {
    const target = key(photos[3]?.name as string);
    const id = vectorIdOf(target);
    const before = await system.stores.index.get(id);
    const total = await countNow();
    const replacement = await readFile(photos[5]?.path as string);

    await put(target, replacement);
    const after = await waitFor(
      () => system.stores.index.get(id),
      (vector) => vector !== undefined && before !== undefined && vector.some((x, i) => x !== before[i]),
    );
    await waitFor(
      async () => (await system.stores.catalogue.get(target))?.state,
      (state) => state === 'indexed',
    );

    expect(after).toBeDefined();
    expect(after?.some((x, i) => x !== before?.[i])).toBe(true);
    expect(await countNow()).toBe(total);
    const byReplacement = await searchFor(replacement, 2);
    expect(byReplacement.results.map((r) => r.key).sort()).toEqual(
      [key(photos[5]?.name as string), target].sort(),
    );
  });

  it('forgets the vector and the mapping when the object is deleted from the bucket', async () => {
    const target = key(photos[4]?.name as string);
    const id = vectorIdOf(target);
    const total = await countNow();

    await clients.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket, Key: target }));
    // The worker removes the vector first and the record last: wait for the record.
    await waitFor(
      () => system.stores.catalogue.get(target),
      (record) => record === undefined,
    );

    expect(await countNow()).toBe(total - 1);
    expect(await system.stores.index.get(id)).toBeUndefined();
    expect(await system.stores.catalogue.get(target)).toBeUndefined();
    expect((await system.stores.catalogue.getByIds([id])).size).toBe(0);
    const progressNow = await system.operations.progress(0);
    expect(progressNow.indexed).toBe(total - 1);
  });
});
