import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../config.ts';
import { loadCloudConfig, loadCloudParts } from './config.ts';

const complete = {
  IMAGES_BUCKET: 'pics',
  QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/ingest',
  TABLE_NAME: 'catalogue',
  MILVUS_ADDRESS: 'https://in01-abc.serverless.example.test',
  MILVUS_TOKEN_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:milvus-token',
  PIC_MODEL_MANIFEST: '/opt/models/vgg16-pretrained.manifest.json',
  AWS_REGION: 'eu-west-1',
};

describe('loadCloudConfig', () => {
  it('names every missing variable in one error', () => {
    const error = (() => {
      try {
        loadCloudConfig({});
      } catch (caught) {
        return caught as ConfigError;
      }
    })();

    expect(error).toBeInstanceOf(ConfigError);
    for (const name of [
      'IMAGES_BUCKET',
      'QUEUE_URL',
      'TABLE_NAME',
      'MILVUS_ADDRESS',
      'PIC_MODEL_MANIFEST',
      'AWS_REGION',
    ]) {
      expect(error?.message).toContain(name);
    }
  });

  it('applies the defaults of the optional variables', () => {
    const config = loadCloudConfig(complete);

    expect(config).toMatchObject({
      bucket: 'pics',
      imagePrefix: 'images/',
      thumbnailPrefix: 'thumbnails/',
      milvus: { collection: 'pic_search', tokenSecretArn: complete.MILVUS_TOKEN_SECRET_ARN },
      urlExpiresSeconds: 3600,
      requireGpu: false,
    });
    expect(config.awsEndpoint).toBeUndefined();
  });

  it('refuses a thumbnail prefix equal to the image prefix', () => {
    expect(() => loadCloudConfig({ ...complete, IMAGE_PREFIX: 'x/', THUMBNAIL_PREFIX: 'x/' })).toThrow(
      /THUMBNAIL_PREFIX/,
    );
  });

  it('refuses a collection name Milvus would reject', () => {
    expect(() => loadCloudConfig({ ...complete, MILVUS_COLLECTION: 'pic-search' })).toThrow(
      /MILVUS_COLLECTION/,
    );
  });

  it.each([
    [{ IMAGE_PREFIX: '/' }, /IMAGE_PREFIX.*not start with/],
    [{ IMAGE_PREFIX: 'photos' }, /IMAGE_PREFIX.*end with/],
    [{ IMAGE_PREFIX: 'images/', THUMBNAIL_PREFIX: 'images/thumbnails/' }, /THUMBNAIL_PREFIX.*overlap/],
    [{ IMAGE_PREFIX: 'thumbnails/images/' }, /THUMBNAIL_PREFIX.*overlap/],
    [{ IMAGE_PREFIX: 'index-models/photos/' }, /IMAGE_PREFIX.*index-models\/.*overlap/],
    [{ THUMBNAIL_PREFIX: 'index-models/' }, /THUMBNAIL_PREFIX.*index-models\/.*overlap/],
  ])('refuses prefixes that would make thumbnails ingest themselves: %j', (prefixes, problem) => {
    expect(() => loadCloudConfig({ ...complete, ...prefixes })).toThrow(problem);
  });

  it('refuses a plaintext Milvus address on another host unless it is explicitly allowed', () => {
    const plaintext = { ...complete, MILVUS_ADDRESS: 'http://milvus.internal:19530' };
    expect(() => loadCloudConfig(plaintext)).toThrow(/plaintext.*MILVUS_ALLOW_PLAINTEXT=true/);
    expect(() => loadCloudConfig({ ...plaintext, MILVUS_ADDRESS: 'milvus.internal:19530' })).toThrow(
      /plaintext/,
    );

    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const config = loadCloudConfig({ ...plaintext, MILVUS_ALLOW_PLAINTEXT: 'true' });
      expect(config.milvus.address).toBe('http://milvus.internal:19530');
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/plaintext/), {
        code: 'PIC_MILVUS_PLAINTEXT',
      });
    } finally {
      warn.mockRestore();
    }
  });

  it('accepts a plaintext Milvus on the loopback address (Milvus Lite beside the process)', () => {
    expect(loadCloudConfig({ ...complete, MILVUS_ADDRESS: '127.0.0.1:19530' }).milvus.address).toBe(
      '127.0.0.1:19530',
    );
  });

  it('reads only the variables of the parts asked for', () => {
    const config = loadCloudParts(['milvus'], {
      AWS_REGION: 'eu-west-1',
      MILVUS_ADDRESS: complete.MILVUS_ADDRESS,
      // Bad values of parts not asked for are not even looked at.
      IMAGE_PREFIX: '',
      QUEUE_URL: 'not a url',
    });

    expect(config).toEqual({
      region: 'eu-west-1',
      logLevel: 'info',
      milvus: { address: complete.MILVUS_ADDRESS, collection: 'pic_search' },
    });
  });

  it('reads the model identity the stack writes for functions that state it without embedding', () => {
    const identity = {
      model: 'vgg16',
      profile: 'keras-compat',
      dimension: 512,
      provider: 'cpu',
      pretrained: true,
    };
    const env = { AWS_REGION: 'eu-west-1', PIC_MODEL_IDENTITY: JSON.stringify(identity) };

    expect(loadCloudParts(['modelIdentity'], env).modelIdentity).toEqual(identity);
    expect(() => loadCloudParts(['modelIdentity'], { ...env, PIC_MODEL_IDENTITY: '{"model":1}' })).toThrow(
      /PIC_MODEL_IDENTITY/,
    );
  });
});
