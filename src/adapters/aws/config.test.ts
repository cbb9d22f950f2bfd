import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config.ts';
import { loadCloudConfig } from './config.ts';

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
});
