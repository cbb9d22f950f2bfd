import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.ts';
import { workerSteps } from './ingest.ts';

const REPO = resolve(import.meta.dirname, '..');
const VALID = {
  milvusAddress: 'https://in03-example.serverless.aws-eu-central-1.cloud.zilliz.com',
  modelManifest: 'models/vgg16-seeded.manifest.json',
  webDist: 'infra/fixtures/web-dist',
};

describe('stack configuration', () => {
  it('fills defaults and coerces command-line strings', () => {
    const config = parseConfig({ ...VALID, maxWorkers: '4', protectData: 'true' }, REPO);
    expect(config).toMatchObject({
      stackName: 'PicSearch',
      instanceType: 'g4dn.xlarge',
      maxWorkers: 4,
      protectData: true,
      imagePrefix: 'images/',
      milvusCollection: 'pic_search',
      modelManifest: resolve(REPO, 'models/vgg16-seeded.manifest.json'),
    });
  });

  it('names every bad key in one error', () => {
    const attempt = () =>
      parseConfig(
        {
          instanceType: 'm5.large',
          maxWorkers: '0',
          imagePrefix: '/photos',
          extraAllowedOrigins: 'http://x/y',
        },
        REPO,
      );
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/is required: pass -c milvusAddress=/);
    expect(attempt).toThrow(/NVIDIA GPU instance type.*\n.*at instanceType/);
    expect(attempt).toThrow(/at maxWorkers/);
    expect(attempt).toThrow(/end with "\/".*\n.*at imagePrefix/);
    expect(attempt).toThrow(/no path\n.*at extraAllowedOrigins/);
  });

  it('says how to get the model and the page when their files are missing', () => {
    const attempt = () =>
      parseConfig({ ...VALID, modelManifest: 'models/absent.manifest.json', webDist: 'nowhere' }, REPO);
    expect(attempt).toThrow(/npm run model:fetch/);
    expect(attempt).toThrow(/npm run build:web/);
  });

  it('accepts an imported bucket and secret, and comma-separated extra origins', () => {
    const config = parseConfig(
      {
        ...VALID,
        existingBucketName: 'my-photos',
        milvusTokenSecretArn: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:zilliz-AbCdEf',
        extraAllowedOrigins: 'http://localhost:5173,https://photos.example.com',
      },
      REPO,
    );
    expect(config.extraAllowedOrigins).toEqual(['http://localhost:5173', 'https://photos.example.com']);
    expect(config.existingBucketName).toBe('my-photos');
  });
});

describe('prefixes and the Milvus address', () => {
  it.each([
    [{ imagePrefix: '' }, /not be empty[^\n]*\n.*at imagePrefix/],
    [{ imagePrefix: 'images/', thumbnailPrefix: 'images/small/' }, /thumbnailPrefix: .*overlap/],
    [{ imagePrefix: 'thumbnails/photos/' }, /thumbnailPrefix: .*overlap/],
    [{ imagePrefix: 'index-models/photos/' }, /imagePrefix: .*index-models\/.*overlap/],
  ])('refuses prefixes under which thumbnails would be ingested: %j', (prefixes, problem) => {
    expect(() => parseConfig({ ...VALID, ...prefixes }, REPO)).toThrow(problem);
  });

  it('refuses a plaintext Milvus address unless milvusAllowPlaintext is set', () => {
    const plaintext = { ...VALID, milvusAddress: 'http://milvus.example.com:19530' };
    expect(() => parseConfig(plaintext, REPO)).toThrow(
      /milvusAddress: .*plaintext.*milvusAllowPlaintext=true/,
    );
    expect(parseConfig({ ...plaintext, milvusAllowPlaintext: 'true' }, REPO).milvusAllowPlaintext).toBe(true);
  });
});

describe('worker scaling steps', () => {
  it('asks for one worker from the first message and one more per messagesPerWorker, up to the maximum', () => {
    expect(workerSteps(3, 1000)).toEqual([
      { lower: 1, change: 1 },
      { lower: 1000, change: 2 },
      { lower: 2000, change: 3 },
    ]);
  });

  it('still gives CDK two intervals for a single worker', () => {
    expect(workerSteps(1, 500)).toEqual([
      { lower: 1, change: 1 },
      { lower: 500, change: 1 },
    ]);
  });
});
