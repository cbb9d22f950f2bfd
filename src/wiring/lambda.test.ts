import { describe, expect, it } from 'vitest';
import { type CloudPart, variablesOf } from '../adapters/aws/config.ts';
import {
  countOperations,
  deleteAllOperations,
  deleteOperations,
  healthOperations,
  imageOperations,
  ingestOperations,
  progressOperations,
  verifyOperations,
} from './lambda.ts';
import { LAMBDA_PARTS, type LambdaName } from './lambda-parts.ts';

// Nothing is contacted while a function's operations are made: clients connect on their first call.
const IDENTITY = {
  model: 'vgg16-seeded',
  profile: 'imagenet',
  dimension: 512,
  provider: 'cpu',
  pretrained: false,
};
const EVERY_VARIABLE: Record<string, string> = {
  AWS_REGION: 'eu-west-1',
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  IMAGES_BUCKET: 'pics',
  QUEUE_URL: 'http://127.0.0.1:9/000000000000/ingest',
  TABLE_NAME: 'catalogue',
  MILVUS_ADDRESS: '127.0.0.1:9',
  MILVUS_TOKEN: 'unused',
  PIC_MODEL_IDENTITY: JSON.stringify(IDENTITY),
};

/** Runs `call` so that a synchronous throw and a rejection are both seen as a rejection. */
const attempt = async (call: () => Promise<unknown>) => call();

/** Only the variables of a function's parts: a factory that read any other would fail on its absence. */
function environmentOf(fn: LambdaName): Record<string, string> {
  const names = ['common', ...LAMBDA_PARTS[fn]].flatMap((part) => variablesOf(part as CloudPart | 'common'));
  return Object.fromEntries(Object.entries(EVERY_VARIABLE).filter(([name]) => names.includes(name)));
}

describe('Lambda function factories', () => {
  it('give count the Milvus index and the table item that says which collection is live, nothing else', async () => {
    const operations = await countOperations(environmentOf('count'));

    expect(Object.keys(environmentOf('count')).sort()).toEqual([
      'AWS_ENDPOINT_URL',
      'AWS_REGION',
      'MILVUS_ADDRESS',
      'MILVUS_TOKEN',
      'PIC_MODEL_IDENTITY',
      'TABLE_NAME',
    ]);
    await expect(attempt(() => operations.progress())).rejects.toThrow(
      /the count function has no catalogue table/,
    );
  });

  it('give progress the table and the queue, and no Milvus token', async () => {
    const env = environmentOf('progress');
    const operations = await progressOperations(env);

    expect(Object.keys(env).sort()).toEqual(['AWS_ENDPOINT_URL', 'AWS_REGION', 'QUEUE_URL', 'TABLE_NAME']);
    await expect(attempt(() => operations.count())).rejects.toThrow(
      /the progress function has no Milvus index/,
    );
  });

  it('build health, ingest, the delete and verify functions from their own variables, taking no uploads', async () => {
    const built = [
      await healthOperations(environmentOf('health')),
      await ingestOperations(environmentOf('ingest')),
      await deleteOperations('delete-image', environmentOf('delete-image')),
      await deleteAllOperations(environmentOf('delete-all')),
      verifyOperations(environmentOf('verify')),
    ];

    for (const operations of built) {
      await expect(operations.upload([{ name: 'a.jpg', body: new Uint8Array(8) }])).rejects.toThrow(
        /function has no image decoder/,
      );
    }
  });

  it('link image and thumbnail requests to presigned S3 URLs from the bucket variables alone', async () => {
    const { linkFor } = imageOperations(environmentOf('images'));

    expect(await linkFor('images/a b.jpg', 'thumbnail')).toMatch(
      /^http:\/\/127\.0\.0\.1:9\/pics\/thumbnails\/images\/a%20b\.jpg\.webp\?.*X-Amz-Signature=/,
    );
  });

  it('refuse to start when a variable of their own parts is missing, naming it', async () => {
    const { TABLE_NAME: _, ...env } = environmentOf('progress');

    await expect(progressOperations(env)).rejects.toThrow(/TABLE_NAME/);
  });
});
