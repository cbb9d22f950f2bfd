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
 * One client per service, made on first use and kept for the process (Lambda reuses them across
 * invocations): a function builds the clients of the services it calls only. Against an emulator S3 needs
 * path-style URLs (no bucket DNS names on 127.0.0.1), and moto accepts any credentials, so placeholder
 * ones stand in when the environment has none.
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
  const made: { destroy(): void }[] = [];
  const once = <T extends { destroy(): void }>(make: () => T): (() => T) => {
    let client: T | undefined;
    return () => {
      if (client === undefined) {
        client = make();
        made.push(client);
      }
      return client;
    };
  };
  const s3 = once(() => new S3Client({ ...base, forcePathStyle: emulated }));
  const sqs = once(() => new SQSClient(base));
  const dynamodb = once(() => new DynamoDBClient(base));
  const secrets = once(() => new SecretsManagerClient(base));
  return {
    get s3() {
      return s3();
    },
    get sqs() {
      return sqs();
    },
    get dynamodb() {
      return dynamodb();
    },
    get secrets() {
      return secrets();
    },
    destroy() {
      for (const client of made.splice(0)) client.destroy();
    },
  };
}
