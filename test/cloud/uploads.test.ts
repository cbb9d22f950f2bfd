import { readFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import type { UploadTarget } from '../../src/app/operations.ts';
import type { Embedder } from '../../src/domain/ports.ts';
import { type CloudSystem, createCloudSystem } from '../../src/wiring/cloud.ts';
import { uploadOperations } from '../../src/wiring/lambda-uploads.ts';
import { fixturePhotos, seededEmbedder, waitFor } from './harness.ts';
import { type CloudStack, createCloudStack, emulatorClients } from './support.ts';

// Browser uploads in cloud mode are presigned S3 POST forms whose policy bounds the size and fixes the
// Content-Type; the worker refuses an object over the limit from its Content-Length, before reading it.
// moto stores a POSTed file but does not check the policy (its _bucket_response_post reads neither the
// signature nor the conditions), so the policy's conditions are read back here; S3 enforces them.

const clients = emulatorClients(inject('awsEndpoint'));
const MAX_BYTES = 20_000;
const [small, large] = await Promise.all(
  fixturePhotos(12).map(async (photo) => ({ name: photo.name, body: await readFile(photo.path) })),
).then((photos) => [
  photos.find((p) => p.body.length < MAX_BYTES),
  photos.find((p) => p.body.length > MAX_BYTES),
]);

let stack: CloudStack;
let embedder: Embedder;
let system: CloudSystem;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await createCloudStack(clients, {
    awsEndpoint: inject('awsEndpoint'),
    milvusAddress: inject('milvusAddress'),
  });
  env = { ...stack.env, PIC_MAX_UPLOAD_BYTES: String(MAX_BYTES) };
  embedder = await seededEmbedder();
  system = await createCloudSystem(loadCloudConfig(env), { embedder, waitMs: 500 });
  system.worker.start();
}, 300_000);

afterAll(async () => {
  await system?.close();
  await embedder?.close();
  clients.destroy();
});

/** The conditions of a presigned POST's policy document. */
function policyConditions(target: UploadTarget): unknown[] {
  if (target.method !== 'POST') throw new Error(`expected a POST form, got ${target.method}`);
  const policy = JSON.parse(Buffer.from(target.fields.Policy as string, 'base64').toString('utf8'));
  return policy.conditions as unknown[];
}

describe('cloud uploads', () => {
  it('hand out POST forms bounded in size, with the Content-Type of the extension, never the claim', async () => {
    const operations = uploadOperations(env);

    const [target] = await operations.uploadTargets([{ name: 'cat.jpg', contentType: 'image/svg+xml' }]);

    expect(target).toMatchObject({ key: 'images/cat.jpg', method: 'POST', maxBytes: MAX_BYTES });
    expect(policyConditions(target as UploadTarget)).toEqual(
      expect.arrayContaining([
        ['content-length-range', 1, MAX_BYTES],
        ['eq', '$Content-Type', 'image/jpeg'],
        { key: 'images/cat.jpg' },
      ]),
    );
  });

  it('refuse SVG and other names without an image extension', async () => {
    const operations = uploadOperations(env);

    await expect(
      operations.uploadTargets([{ name: 'drawing.svg', contentType: 'image/svg+xml' }]),
    ).rejects.toMatchObject({ status: 415 });
  });

  it('store the file a browser posts with the form, and the worker indexes it', async () => {
    const [target] = await uploadOperations(env).uploadTargets([
      { name: 'posted.jpg', contentType: 'image/jpeg' },
    ]);
    if (target?.method !== 'POST' || !small) throw new Error('no POST target or no small photo');
    const form = new FormData();
    for (const [name, value] of Object.entries(target.fields)) form.append(name, value);
    form.append('file', new Blob([small.body], { type: 'image/jpeg' }), 'posted.jpg');

    const response = await fetch(target.url, { method: 'POST', body: form });

    expect(response.status).toBeLessThan(300);
    const record = await waitFor(
      () => system.stores.catalogue.get('images/posted.jpg'),
      (found) => found?.state === 'indexed',
    );
    expect(record?.state).toBe('indexed');
  });

  it('records an object over the size limit as failed, with the reason', async () => {
    if (!large) throw new Error('no fixture photo over the limit');
    await clients.s3.send(
      new PutObjectCommand({ Bucket: stack.bucket, Key: 'images/too-big.jpg', Body: large.body }),
    );

    const record = await waitFor(
      () => system.stores.catalogue.get('images/too-big.jpg'),
      (found) => found?.state === 'failed',
    );

    expect(record?.state).toBe('failed');
    expect(record?.reason).toMatch(new RegExp(`${large.body.length} bytes.*larger than ${MAX_BYTES}`));
  });

  it('leaves keys outside the image prefix alone, the worker’s own thumbnails included', async () => {
    await system.stores.queue.send([{ kind: 'upsert', key: 'thumbnails/images/posted.jpg.webp' }]);

    await waitFor(
      () => system.stores.queue.depth(),
      (depth) => depth.visible + depth.inFlight === 0,
    );

    expect(await system.stores.catalogue.get('thumbnails/images/posted.jpg.webp')).toBeUndefined();
  });
});
