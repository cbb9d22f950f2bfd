import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import { FEATURE_FLAGS } from './app.ts';
import { Storage, type StorageProps } from './storage.ts';

/** The storage construct alone (no bundling), for the choices that change its data-safety settings. */
function storageTemplate(overrides: Partial<StorageProps> = {}) {
  const stack = new Stack(new App({ context: FEATURE_FLAGS }), 'Test');
  new Storage(stack, 'Storage', {
    imagePrefix: 'images/',
    protectData: false,
    visibilityTimeoutSeconds: 900,
    maxReceiveCount: 5,
    accessLogs: s3.Bucket.fromBucketName(stack, 'Logs', 'access-logs'),
    ...overrides,
  });
  const template = Template.fromStack(stack);
  // biome-ignore lint/suspicious/noExplicitAny: synthesised CloudFormation is untyped JSON.
  const resources = Object.values(template.toJSON().Resources as Record<string, Record<string, any>>);
  return { template, ofType: (type: string) => resources.filter((r) => r.Type === type) };
}

describe('storage', () => {
  it('lets `cdk destroy` remove its data by default', () => {
    const { ofType } = storageTemplate();
    const [table] = ofType('AWS::DynamoDB::Table');
    expect(table?.Properties.DeletionProtectionEnabled).toBe(false);
    expect(table?.DeletionPolicy).toBe('Delete');
    expect(ofType('AWS::S3::Bucket')[0]?.DeletionPolicy).toBe('Delete');
    expect(ofType('Custom::S3AutoDeleteObjects')).toHaveLength(1);
  });

  it('keeps the data and protects the table with protectData', () => {
    const { ofType } = storageTemplate({ protectData: true });
    const [table] = ofType('AWS::DynamoDB::Table');
    expect(table?.Properties.DeletionProtectionEnabled).toBe(true);
    for (const type of ['AWS::DynamoDB::Table', 'AWS::S3::Bucket', 'AWS::SecretsManager::Secret']) {
      expect({ type, policy: ofType(type)[0]?.DeletionPolicy }).toEqual({ type, policy: 'Retain' });
    }
    expect(ofType('Custom::S3AutoDeleteObjects')).toHaveLength(0);
  });

  it('adds notifications to an existing bucket without creating or owning one', () => {
    const { ofType } = storageTemplate({ existingBucketName: 'my-photos' });
    expect(ofType('AWS::S3::Bucket')).toHaveLength(0);
    const [notifications] = ofType('Custom::S3BucketNotifications');
    expect(notifications?.Properties).toMatchObject({ BucketName: 'my-photos', Managed: false });
  });

  it('reads the Milvus token from an imported secret when given one', () => {
    const arn = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:zilliz-token-AbCdEf';
    const { ofType } = storageTemplate({ milvusTokenSecretArn: arn });
    expect(ofType('AWS::SecretsManager::Secret')).toHaveLength(0);
  });

  it('creates the catalogue table with the adapter’s indexes', () => {
    const { ofType } = storageTemplate();
    const [table] = ofType('AWS::DynamoDB::Table');
    const indexes: { IndexName: string }[] = table?.Properties.GlobalSecondaryIndexes ?? [];
    expect(indexes.map((index) => index.IndexName).sort()).toEqual(['byKey', 'failures']);
  });
});
