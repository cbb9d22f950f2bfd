import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';

export interface AwsClientOptions {
  region: string;
  /** Emulator endpoint (moto); unset in AWS. */
  endpoint?: string;
}

export interface AwsClients {
  s3: S3Client;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
  secrets: SecretsManagerClient;
  destroy(): void;
}

/**
 * One client per service, made once per process (Lambda reuses them across invocations). Against an
 * emulator S3 needs path-style URLs (no bucket DNS names on 127.0.0.1), and moto accepts any
 * credentials, so placeholder ones stand in when the environment has none.
 */
export function createAwsClients(options: AwsClientOptions): AwsClients {
  const emulated = options.endpoint !== undefined;
  const base = {
    region: options.region,
    ...(emulated ? { endpoint: options.endpoint } : {}),
    ...(emulated && !process.env.AWS_ACCESS_KEY_ID
      ? { credentials: { accessKeyId: 'emulator', secretAccessKey: 'emulator' } }
      : {}),
  };
  const s3 = new S3Client({ ...base, forcePathStyle: emulated });
  const sqs = new SQSClient(base);
  const dynamodb = new DynamoDBClient(base);
  const secrets = new SecretsManagerClient(base);
  return {
    s3,
    sqs,
    dynamodb,
    secrets,
    destroy() {
      for (const client of [s3, sqs, dynamodb, secrets]) client.destroy();
    },
  };
}
