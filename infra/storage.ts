import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { CatalogueTable } from '../src/adapters/aws/catalogue-table.ts';
import { imageNotificationRules } from './notification-rules.ts';

export interface StorageProps {
  imagePrefix: string;
  existingBucketName?: string;
  milvusTokenSecretArn?: string;
  protectData: boolean;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  /** Server access logs of the buckets this stack creates. */
  accessLogs: s3.IBucket;
}

/**
 * The data: images bucket (created or imported), the ingest queue fed by its event notifications with a
 * dead-letter queue and alarm, the catalogue table and the Milvus token secret.
 */
export class Storage extends Construct {
  readonly images: s3.IBucket;
  /** Set only when the stack owns the bucket: CORS for the web origin is added by the web construct. */
  readonly ownedImages?: s3.Bucket;
  readonly queue: sqs.Queue;
  readonly deadLetters: sqs.Queue;
  readonly deadLetterAlarm: cloudwatch.Alarm;
  readonly table: dynamodb.Table;
  readonly milvusToken: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    const dataRemoval = props.protectData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    // 14 days, the SQS maximum: a dead letter should outlive a holiday before someone redrives it.
    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // SSE-SQS rather than a KMS key: S3 can publish to it without a key policy, and it costs nothing.
    this.queue = new sqs.Queue(this, 'Ingest', {
      visibilityTimeout: Duration.seconds(props.visibilityTimeoutSeconds),
      retentionPeriod: Duration.days(14),
      receiveMessageWaitTime: Duration.seconds(20),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetters, maxReceiveCount: props.maxReceiveCount },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLettersNotEmpty', {
      alarmDescription:
        'Images failed to ingest after every retry: inspect the dead-letter queue, fix, then redrive.',
      metric: this.deadLetters.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    if (props.existingBucketName) {
      // An imported bucket keeps its own encryption, CORS and lifecycle; the stack only adds notifications.
      this.images = s3.Bucket.fromBucketName(this, 'Images', props.existingBucketName);
    } else {
      this.ownedImages = new s3.Bucket(this, 'Images', {
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned: false,
        serverAccessLogsBucket: props.accessLogs,
        serverAccessLogsPrefix: 'images/',
        lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(7) }],
        removalPolicy: dataRemoval,
        autoDeleteObjects: !props.protectData,
      });
      this.images = this.ownedImages;
    }
    const destination = new s3n.SqsDestination(this.queue);
    for (const rule of imageNotificationRules(props.imagePrefix)) {
      this.images.addEventNotification(rule.event, destination, { prefix: rule.prefix, suffix: rule.suffix });
    }

    // Schema shared with the adapter and the moto tests (src/adapters/aws/catalogue-table.ts).
    const schema = CatalogueTable;
    this.table = new dynamodb.Table(this, 'Catalogue', {
      partitionKey: {
        name: schema.partitionKey.name,
        type: schema.partitionKey.type as dynamodb.AttributeType,
      },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: schema.timeToLiveAttribute,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.protectData,
      removalPolicy: dataRemoval,
    });
    for (const index of schema.globalSecondaryIndexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: {
          name: index.partitionKey.name,
          type: index.partitionKey.type as dynamodb.AttributeType,
        },
        sortKey: { name: index.sortKey.name, type: index.sortKey.type as dynamodb.AttributeType },
        projectionType: index.projection as dynamodb.ProjectionType,
      });
    }

    this.milvusToken = props.milvusTokenSecretArn
      ? importSecret(this, 'MilvusToken', props.milvusTokenSecretArn)
      : new secretsmanager.Secret(this, 'MilvusToken', {
          description:
            'Milvus / Zilliz Cloud API token (user:password or API key). Set it with put-secret-value after deploy.',
          removalPolicy: dataRemoval,
        });
  }
}

/** A complete ARN ends in the 6-character suffix Secrets Manager adds; a partial one does not. */
function importSecret(scope: Construct, id: string, arn: string): secretsmanager.ISecret {
  return /-[A-Za-z0-9]{6}$/.test(arn)
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, id, arn)
    : secretsmanager.Secret.fromSecretPartialArn(scope, id, arn);
}
