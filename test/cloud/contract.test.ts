import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DeleteQueueCommand } from '@aws-sdk/client-sqs';
import { afterAll, inject } from 'vitest';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { DynamoCatalogue } from '../../src/adapters/aws/dynamo-catalogue.ts';
import { S3ObjectStore } from '../../src/adapters/aws/s3-object-store.ts';
import { SqsJobQueue } from '../../src/adapters/aws/sqs-job-queue.ts';
import { MilvusVectorIndex } from '../../src/adapters/milvus/milvus-vector-index.ts';
import { CONTRACT_PAGE_SIZE, describeCatalogueContract } from '../contract/catalogue.contract.ts';
import { describeJobQueueContract } from '../contract/job-queue.contract.ts';
import { describeObjectStoreContract } from '../contract/object-store.contract.ts';
import { describeVectorIndexContract } from '../contract/vector-index.contract.ts';
import {
  createBucket,
  createQueueWithDeadLetter,
  emulatorClients,
  uniqueCollection,
  uniqueName,
  visibleMessages,
} from './support.ts';

// The same contract suites as the embedded adapters (test/contract/embedded.test.ts), here against moto
// server (S3, SQS, DynamoDB) and Milvus Lite's gRPC server, started by test/setup/emulators.ts.
const clients = emulatorClients(inject('awsEndpoint'));
afterAll(() => clients.destroy());

describeObjectStoreContract('S3ObjectStore on moto', async () => {
  const bucket = uniqueName('contract');
  await createBucket(clients, bucket);
  return {
    store: new S3ObjectStore(clients.s3, { bucket }),
    cleanup: async () => {
      const listed = await clients.s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const object of listed.Contents ?? []) {
        await clients.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
      }
      await clients.s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    },
  };
});

describeJobQueueContract('SqsJobQueue on moto', async (settings) => {
  // The queue's own timeout is far off on purpose: the adapter's setting must be what hides a received
  // message (the worker's heartbeat period derives from it).
  const queue = await createQueueWithDeadLetter(clients, uniqueName('contract'), {
    ...settings,
    visibilityTimeoutSeconds: 43_200,
  });
  return {
    queue: new SqsJobQueue(clients.sqs, queue.url, { visibilitySeconds: settings.visibilityTimeoutSeconds }),
    deadLetterCount: () => visibleMessages(clients, queue.deadLetterUrl),
    cleanup: async () => {
      await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: queue.url }));
      await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: queue.deadLetterUrl }));
    },
  };
});

describeCatalogueContract('DynamoCatalogue on moto', async () => {
  const table = uniqueName('contract');
  await createCatalogueTable(clients.dynamodb, table);
  return {
    catalogue: new DynamoCatalogue(clients.dynamodb, table, { pageSize: CONTRACT_PAGE_SIZE }),
    otherProcess: new DynamoCatalogue(clients.dynamodb, table, { pageSize: CONTRACT_PAGE_SIZE }),
    cleanup: async () => {
      await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
    },
  };
});

describeVectorIndexContract('MilvusVectorIndex on Milvus Lite', async () => {
  const index = new MilvusVectorIndex({
    address: inject('milvusAddress'),
    collection: uniqueCollection('contract'),
  });
  return {
    index,
    cleanup: async () => {
      if (await index.identity()) await index.drop();
      await index.close();
    },
  };
});
