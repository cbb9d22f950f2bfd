import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutBucketNotificationConfigurationCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { type AwsClients, createAwsClients } from '../../src/adapters/aws/clients.ts';
import { imageQueueNotification } from '../../src/adapters/aws/notifications.ts';

export const REGION = 'us-east-1';

/** Unique per run and per call, so suites sharing one moto / Milvus Lite never see each other's data. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Milvus collection names take letters, digits and underscores only. */
export function uniqueCollection(prefix: string): string {
  return uniqueName(prefix).replace(/-/g, '_');
}

export function emulatorClients(awsEndpoint: string): AwsClients {
  return createAwsClients({ region: REGION, endpoint: awsEndpoint });
}

export interface TestQueue {
  url: string;
  arn: string;
  deadLetterUrl: string;
}

/** An ingest queue with its dead-letter queue and RedrivePolicy, as the CDK stack makes them. */
export async function createQueueWithDeadLetter(
  clients: AwsClients,
  name: string,
  options: { visibilityTimeoutSeconds: number; maxReceiveCount: number },
): Promise<TestQueue> {
  const dlq = await clients.sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const deadLetterUrl = dlq.QueueUrl as string;
  const dlqArn = await queueArn(clients, deadLetterUrl);
  const queue = await clients.sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlqArn,
          maxReceiveCount: options.maxReceiveCount,
        }),
      },
    }),
  );
  const url = queue.QueueUrl as string;
  return { url, arn: await queueArn(clients, url), deadLetterUrl };
}

export async function queueArn(clients: AwsClients, url: string): Promise<string> {
  const out = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  return out.Attributes?.QueueArn as string;
}

export async function visibleMessages(clients: AwsClients, url: string): Promise<number> {
  const out = await clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

export async function createBucket(clients: AwsClients, name: string): Promise<void> {
  await clients.s3.send(new CreateBucketCommand({ Bucket: name }));
}

export interface CloudStack {
  bucket: string;
  queue: TestQueue;
  table: string;
  collection: string;
  secretArn: string;
  /** The environment the Lambda functions and the worker get from the CDK stack, pointed at the emulators. */
  env: Record<string, string>;
}

/**
 * What the CDK stack deploys, on moto: bucket with the shared notification configuration to the ingest
 * queue (and its DLQ), the catalogue table, and the Milvus token secret (Milvus Lite ignores tokens).
 */
export async function createCloudStack(
  clients: AwsClients,
  endpoints: { awsEndpoint: string; milvusAddress: string },
  options: { visibilityTimeoutSeconds?: number; maxReceiveCount?: number; imagePrefix?: string } = {},
): Promise<CloudStack> {
  const bucket = uniqueName('pics');
  const table = uniqueName('catalogue');
  const collection = uniqueCollection('pics');
  const imagePrefix = options.imagePrefix ?? 'images/';
  const queue = await createQueueWithDeadLetter(clients, uniqueName('ingest'), {
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 30,
    maxReceiveCount: options.maxReceiveCount ?? 3,
  });
  await createBucket(clients, bucket);
  await clients.s3.send(
    new PutBucketNotificationConfigurationCommand({
      Bucket: bucket,
      NotificationConfiguration: imageQueueNotification(queue.arn, imagePrefix),
    }),
  );
  await createCatalogueTable(clients.dynamodb, table);
  const secret = await clients.secrets.send(
    new CreateSecretCommand({
      Name: uniqueName('milvus-token'),
      SecretString: JSON.stringify({ token: 'root:Milvus' }),
    }),
  );
  return {
    bucket,
    queue,
    table,
    collection,
    secretArn: secret.ARN as string,
    env: {
      IMAGES_BUCKET: bucket,
      IMAGE_PREFIX: imagePrefix,
      THUMBNAIL_PREFIX: 'thumbnails/',
      QUEUE_URL: queue.url,
      TABLE_NAME: table,
      MILVUS_ADDRESS: endpoints.milvusAddress,
      MILVUS_TOKEN_SECRET_ARN: secret.ARN as string,
      MILVUS_COLLECTION: collection,
      PIC_MODEL_MANIFEST: 'models/vgg16-seeded.manifest.json',
      AWS_REGION: REGION,
      AWS_ENDPOINT_URL: endpoints.awsEndpoint,
    },
  };
}

/**
 * Counts the AWS requests made while `during` runs, as moto's own request recorder saw them, by name:
 * `s3 GET`, `sqs ReceiveMessage`, `dynamodb PutItem img#` (DynamoDB item writes and reads name the kind
 * of item, the part of its key before '#'). The recorder is moto's, for the whole server: nothing else may
 * run against it meanwhile (the integration tier runs its files one at a time).
 */
export async function countRequests(
  awsEndpoint: string,
  during: () => Promise<void>,
): Promise<Map<string, number>> {
  const recorder = (action: string, method = 'POST') =>
    fetch(`${awsEndpoint}/moto-api/recorder/${action}`, { method }).then((response) => response.text());
  await recorder('reset-recording');
  await recorder('start-recording');
  try {
    await during();
  } finally {
    await recorder('stop-recording');
  }
  const counts = new Map<string, number>();
  // Requests served at once can write their lines into each other's: split at every entry's start.
  const lines = (await recorder('download-recording', 'GET')).replaceAll('}{"headers"', '}\n{"headers"');
  for (const line of lines.split('\n').filter(Boolean)) {
    const entry = JSON.parse(line) as RecordedRequest;
    const name = requestName(entry);
    if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

interface RecordedRequest {
  headers: Record<string, string>;
  method: string;
  url: string;
  body: string;
  body_encoded: boolean;
}

function requestName(entry: RecordedRequest): string | undefined {
  if (entry.url.includes('/moto-api/')) return undefined;
  const target = entry.headers['X-Amz-Target'];
  if (!target) return `s3 ${entry.method}`;
  const [service, operation] = target.split('.');
  if (!service?.startsWith('DynamoDB')) return `sqs ${operation}`;
  const body = JSON.parse(entry.body_encoded ? Buffer.from(entry.body, 'base64').toString() : entry.body) as {
    Item?: { pk?: { S?: string } };
    Key?: { pk?: { S?: string } };
  };
  const pk = body.Item?.pk?.S ?? body.Key?.pk?.S;
  const kind = pk?.includes('#') ? `${pk.split('#')[0]}#` : pk;
  return kind === undefined ? `dynamodb ${operation}` : `dynamodb ${operation} ${kind}`;
}
