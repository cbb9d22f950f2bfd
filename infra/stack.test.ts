import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertWithinLambdaLimit, directorySize, megabytes } from '../layers/build.ts';
import { cfnLint } from '../scripts/cfn-lint.ts';
import { OUTAGES_PK } from '../src/adapters/aws/dynamo-outage-reports.ts';
import { LIBRARY_PK } from '../src/adapters/aws/dynamo-task-store.ts';
import { IMAGE_SUFFIXES, imageQueueNotification } from '../src/adapters/aws/notifications.ts';
import type { Operations } from '../src/app/operations.ts';
import { createRouter } from '../src/http/router.ts';
import {
  API_FUNCTIONS,
  type ApiFunctionName,
  bundleOf,
  LAYER_MODULES,
  layerModulesImportedBy,
  ROUTES,
  stagedCodeOf,
} from './api.ts';
import { createApp } from './app.ts';
import { nagAcknowledgements } from './nag.ts';
import type { PicSearchStack } from './stack.ts';
import { pageContentSecurityPolicy } from './web.ts';

/**
 * One offline synthesis of the whole app (esbuild bundling of every function, layer build, asset
 * staging of the worker image without Docker, cdk-nag and CDK's own template validation), then
 * assertions on the template. Synthesis takes most of this file's time, so it happens once.
 */
const CONTEXT = {
  milvusAddress: 'https://in03-example.serverless.aws-eu-central-1.cloud.zilliz.com',
  modelManifest: 'models/vgg16-seeded.manifest.json',
  webDist: resolve(import.meta.dirname, 'fixtures/web-dist'),
  maxWorkers: '3',
};

/** Every action of each API function's role, as infra/bindings.ts grants them (Milvus: the token secret). */
const TABLE_READ = [
  'dynamodb:BatchGetItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
  'dynamodb:GetItem',
  'dynamodb:GetRecords',
  'dynamodb:GetShardIterator',
  'dynamodb:Query',
  'dynamodb:Scan',
];
const TABLE_WRITE = [
  'dynamodb:BatchWriteItem',
  'dynamodb:DeleteItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];
const MILVUS_TOKEN = ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'];
const SEND = ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'];
const sorted = (...actions: string[]) => actions.sort();
const EXPECTED_ACTIONS = {
  search: sorted(...TABLE_READ, 's3:GetObject', ...MILVUS_TOKEN),
  // The library item alone: which Milvus collection is live (src/app/index-generations.ts).
  count: sorted('dynamodb:GetItem', ...MILVUS_TOKEN),
  progress: sorted(...TABLE_READ, 'sqs:GetQueueAttributes'),
  health: sorted('dynamodb:GetItem', ...MILVUS_TOKEN),
  ingest: sorted(...TABLE_READ, ...TABLE_WRITE, 's3:DeleteObject', 's3:ListBucket', ...MILVUS_TOKEN, ...SEND),
  uploads: ['s3:PutObject'],
  images: ['s3:GetObject'],
  'delete-image': sorted(...TABLE_READ, ...TABLE_WRITE, 's3:DeleteObject', 's3:GetObject', ...MILVUS_TOKEN),
  // Empties the index and queues the cleanup; the worker deletes (src/app/tasks.ts).
  'delete-all': sorted(...TABLE_READ, ...TABLE_WRITE, ...MILVUS_TOKEN, ...SEND),
  verify: sorted(...TABLE_READ, ...TABLE_WRITE, ...SEND),
  // Records the re-index task and queues it; the worker builds the new collection (src/app/reindex.ts).
  reindex: sorted(...TABLE_READ, ...TABLE_WRITE, ...MILVUS_TOKEN, ...SEND),
  // Describes the groups from the images, keeps dismissals and the scan's state, queues a scan.
  duplicates: sorted(...TABLE_READ, ...TABLE_WRITE, 's3:GetObject', ...MILVUS_TOKEN, ...SEND),
};

// biome-ignore lint/suspicious/noExplicitAny: synthesised CloudFormation is untyped JSON, walked freely here.
type Json = Record<string, any>;

let outdir: string;
let stack: PicSearchStack;
let template: Template;
let resources: Record<string, Json>;
let synthSeconds: number;

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), 'pic-search-cdk-'));
  const started = performance.now();
  const built = await createApp(CONTEXT, { outdir });
  built.app.synth();
  synthSeconds = (performance.now() - started) / 1000;
  console.log(`createApp + synth: ${synthSeconds.toFixed(1)} s`);
  stack = built.stack;
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Json>;
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);
const fnLogicalId = (name: ApiFunctionName) => logicalId(stack.api.functions[name]);

/** The statements of every policy attached to the role of a function (or any role by logical id). */
function statementsOfRole(roleLogicalId: string): Json[] {
  return ofType('AWS::IAM::Policy')
    .filter(([, policy]) => (policy.Properties.Roles as Json[]).some((role) => role.Ref === roleLogicalId))
    .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement as Json[]);
}
function roleOfFunction(name: ApiFunctionName): string {
  return resources[fnLogicalId(name)]?.Properties.Role['Fn::GetAtt'][0];
}
const actionsOf = (statements: Json[]) => new Set(statements.flatMap((s) => [s.Action].flat() as string[]));
/** S3 object patterns a set of statements allows a verb on, e.g. "images/*". */
function s3PrefixesFor(statements: Json[], verb: string): string[] {
  return statements
    .filter((s) => [s.Action].flat().includes(verb))
    .flatMap((s) => [s.Resource].flat())
    .map((resource: Json) => resource['Fn::Join']?.[1]?.[1] as string)
    .sort();
}

describe('synthesis', () => {
  it('synthesises offline in one pass, with CDK validation and cdk-nag as plugins', () => {
    expect(synthSeconds).toBeGreaterThan(0);
    expect(Object.keys(resources).length).toBeGreaterThan(100);
  });

  it('stages the worker image from functions/worker/Dockerfile without building it', () => {
    const assets = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.assets.json`), 'utf8')) as Json;
    const images = Object.values(assets.dockerImages as Json);
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerFile).toBe('functions/worker/Dockerfile');
    expect(images[0].source.platform).toBe('linux/amd64');
    expect(images[0].source.dockerBuildArgs).toEqual({ MODEL: 'vgg16-seeded' });
  });
});

describe('images bucket and ingest queue', () => {
  it('blocks public access, encrypts, and refuses plain HTTP', () => {
    const bucketId = logicalId(stack.storage.images);
    expect(resources[bucketId]?.Properties).toMatchObject({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('allows presigned browser upload forms (POST), never PUT, from the web page origin only', () => {
    const cors = resources[logicalId(stack.storage.images)]?.Properties.CorsConfiguration.CorsRules as Json[];
    expect(cors).toHaveLength(1);
    expect(cors[0]?.AllowedMethods).toContain('POST');
    expect(cors[0]?.AllowedMethods).not.toContain('PUT');
    expect(cors[0]?.AllowedOrigins).toEqual([
      { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(stack.web.distribution), 'DomainName'] }]] },
    ]);
  });

  it('notifies the queue exactly as the moto integration tests configure their bucket', () => {
    const [[, notifications]] = ofType('Custom::S3BucketNotifications') as [[string, Json]];
    const queueArn = { 'Fn::GetAtt': [logicalId(stack.storage.queue), 'Arn'] };
    const normalise = (configs: Json[]) =>
      configs
        .map((c) => {
          const rules = (c.Filter.Key.FilterRules as Json[]).map(
            (r) => `${String(r.Name).toLowerCase()}=${r.Value}`,
          );
          return `${JSON.stringify(c.QueueArn)} ${[c.Events].flat().join(',')} ${rules.sort().join(' ')}`;
        })
        .sort();
    const expected = imageQueueNotification('QUEUE', 'images/').QueueConfigurations ?? [];
    const deployed = notifications.Properties.NotificationConfiguration.QueueConfigurations as Json[];

    expect(normalise(deployed)).toEqual(normalise(expected.map((c) => ({ ...c, QueueArn: queueArn }))));
    expect(deployed).toHaveLength(2 * IMAGE_SUFFIXES.length);
  });

  it('dead-letters after a few receives, hides messages longer than a batch, encrypts and keeps 14 days', () => {
    const queue = resources[logicalId(stack.storage.queue)]?.Properties;
    expect(queue).toMatchObject({
      VisibilityTimeout: 900,
      MessageRetentionPeriod: 1_209_600,
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        maxReceiveCount: 5,
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack.storage.deadLetters), 'Arn'] },
      },
    });
    expect(resources[logicalId(stack.storage.deadLetters)]?.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
    });
  });

  it('raises an alarm as soon as one message is dead', () => {
    expect(resources[logicalId(stack.storage.deadLetterAlarm)]?.Properties).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack.storage.deadLetters), 'QueueName'] } },
      ],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
    });
  });
});

describe('catalogue table and secrets', () => {
  it('is on demand with point-in-time recovery and encryption', () => {
    expect(resources[logicalId(stack.storage.table)]?.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  it('never puts a token in an environment or the template', () => {
    const environments = [
      ...ofType('AWS::Lambda::Function').map(
        ([, fn]) => (fn.Properties.Environment?.Variables ?? {}) as Json,
      ),
      ...ofType('AWS::ECS::TaskDefinition').flatMap(([, task]) =>
        (task.Properties.ContainerDefinitions as Json[]).map((c) =>
          Object.fromEntries((c.Environment as Json[]).map((e) => [e.Name, e.Value])),
        ),
      ),
    ];
    const names = environments.flatMap((env) => Object.keys(env));
    expect(
      names.filter((name) => /TOKEN|PASSWORD|SECRET/.test(name) && !name.endsWith('_SECRET_ARN')),
    ).toEqual([]);
    expect(
      ofType('AWS::SecretsManager::Secret').every(([, s]) => s.Properties.SecretString === undefined),
    ).toBe(true);
    for (const env of environments.filter((e) => 'MILVUS_ADDRESS' in e)) {
      expect(env.MILVUS_TOKEN_SECRET_ARN).toEqual({ Ref: logicalId(stack.storage.milvusToken) });
    }
  });
});

describe('GPU ingest workers', () => {
  it('run on an ECS GPU AMI in a group that scales from zero and never pins its size', () => {
    const [[, group]] = ofType('AWS::AutoScaling::AutoScalingGroup') as [[string, Json]];
    expect(group.Properties).toMatchObject({ MinSize: '0', MaxSize: '3' });
    expect(group.Properties.DesiredCapacity).toBeUndefined();
    const [[, launchTemplate]] = ofType('AWS::EC2::LaunchTemplate') as [[string, Json]];
    expect(launchTemplate.Properties.LaunchTemplateData).toMatchObject({
      InstanceType: 'g4dn.xlarge',
      MetadataOptions: { HttpTokens: 'required' },
      BlockDeviceMappings: [{ Ebs: { Encrypted: true } }],
    });
    const imageParameter = launchTemplate.Properties.LaunchTemplateData.ImageId.Ref as string;
    expect(template.toJSON().Parameters[imageParameter].Default).toBe(
      '/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id',
    );
  });

  it('gets instances from a managed-scaling capacity provider', () => {
    template.hasResourceProperties('AWS::ECS::CapacityProvider', {
      AutoScalingGroupProvider: {
        ManagedScaling: { Status: 'ENABLED', TargetCapacity: 100 },
        ManagedTerminationProtection: 'DISABLED',
        ManagedDraining: 'ENABLED',
      },
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 0,
      CapacityProviderStrategy: [Match.objectLike({ Weight: 1 })],
    });
  });

  it('reserves one GPU per task and keeps its logs for a limited time', () => {
    const [[, task]] = ofType('AWS::ECS::TaskDefinition') as [[string, Json]];
    const [container] = task.Properties.ContainerDefinitions as Json[];
    expect(container?.ResourceRequirements).toEqual([{ Type: 'GPU', Value: '1' }]);
    expect(container?.Environment).toEqual(
      expect.arrayContaining([{ Name: 'AWS_REGION', Value: { Ref: 'AWS::Region' } }]),
    );
    expect(container?.LogConfiguration.LogDriver).toBe('awslogs');
    const logGroupId = container?.LogConfiguration.Options['awslogs-group'].Ref as string;
    expect(resources[logGroupId]?.Properties.RetentionInDays).toBe(30);
  });

  it('scales tasks between 0 and the maximum on visible + in-flight messages, from the first message', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 0,
      MaxCapacity: 3,
    });
    const alarms = ofType('AWS::CloudWatch::Alarm').filter(([, a]) =>
      (a.Properties.Metrics as Json[] | undefined)?.some(
        (m) => m.Expression === 'FILL(visible, 0) + FILL(inFlight, 0)',
      ),
    );
    const byOperator = Object.fromEntries(
      alarms.map(([, a]) => [a.Properties.ComparisonOperator, a.Properties]),
    );
    expect(byOperator.GreaterThanOrEqualToThreshold).toMatchObject({ Threshold: 1, EvaluationPeriods: 1 });
    expect(byOperator.LessThanOrEqualToThreshold).toMatchObject({ Threshold: 0, EvaluationPeriods: 5 });
    const metricNames = (byOperator.GreaterThanOrEqualToThreshold.Metrics as Json[])
      .filter((m) => m.MetricStat)
      .map((m) => m.MetricStat.Metric.MetricName)
      .sort();
    expect(metricNames).toEqual([
      'ApproximateNumberOfMessagesNotVisible',
      'ApproximateNumberOfMessagesVisible',
    ]);

    const policies = ofType('AWS::ApplicationAutoScaling::ScalingPolicy').map(
      ([, p]) => p.Properties.StepScalingPolicyConfiguration as Json,
    );
    const scaleOut = policies.find((p) => p.AdjustmentType === 'ExactCapacity');
    // Thresholds are relative to the alarm's 1 message: 1 worker from 1, 2 from 2000, 3 from 4000.
    expect(scaleOut?.StepAdjustments).toEqual([
      { MetricIntervalLowerBound: 0, MetricIntervalUpperBound: 1999, ScalingAdjustment: 1 },
      { MetricIntervalLowerBound: 1999, MetricIntervalUpperBound: 3999, ScalingAdjustment: 2 },
      { MetricIntervalLowerBound: 3999, ScalingAdjustment: 3 },
    ]);
    const scaleIn = policies.find((p) => p.AdjustmentType === 'ChangeInCapacity');
    expect(scaleIn?.StepAdjustments).toEqual([{ MetricIntervalUpperBound: 0, ScalingAdjustment: -3 }]);
  });

  it('may only consume the queue (and queue its tasks), read images, write thumbnails, clean up, use the table and protect its own task', () => {
    const statements = statementsOfRole(logicalId(stack.ingest.taskRole));
    const actions = [...actionsOf(statements)];
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual([
      's3:DeleteObject',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    // The worker keeps the deployed model with the index generations it builds, and drops it with them.
    expect(s3PrefixesFor(statements, 's3:GetObject').sort()).toEqual(['/images/*', '/index-models/*']);
    expect(s3PrefixesFor(statements, 's3:PutObject').sort()).toEqual(['/index-models/*', '/thumbnails/*']);
    // Delete-all's cleanup (src/app/tasks.ts) removes thumbnails and, when asked, the photos.
    expect(s3PrefixesFor(statements, 's3:DeleteObject').sort()).toEqual([
      '/images/*',
      '/index-models/*',
      '/thumbnails/*',
    ]);
    expect(actions).toEqual(
      expect.arrayContaining([
        'sqs:ReceiveMessage',
        'sqs:DeleteMessage',
        'sqs:ChangeMessageVisibility',
        'sqs:SendMessage',
      ]),
    );
    expect(actions).toEqual(
      expect.arrayContaining(['ecs:UpdateTaskProtection', 'secretsmanager:GetSecretValue']),
    );
  });
});

describe('scheduled verification', () => {
  it('starts a verification with repair once a day through the verify function', () => {
    const rules = ofType('AWS::Events::Rule').map(([, r]) => r.Properties as Json);
    expect(rules).toHaveLength(1);
    expect(rules[0]?.ScheduleExpression).toBe('rate(1 day)');
    const target = (rules[0]?.Targets as Json[] | undefined)?.[0] as Json;
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [fnLogicalId('verify'), 'Arn'] });
    expect(JSON.parse(target.Input as string)).toEqual({ scheduledVerify: true, repair: true });
  });
});

describe('Lambda functions', () => {
  it('run nodejs22.x on x86_64, the search function with CPU to spare', () => {
    for (const name of API_FUNCTIONS) {
      expect(resources[fnLogicalId(name)]?.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['x86_64'],
        Timeout: 29,
      });
    }
    expect(resources[fnLogicalId('search')]?.Properties.MemorySize).toBeGreaterThanOrEqual(3008);
  });

  it('carry the runtime layer only where they decode or embed, the model layer only for search', () => {
    const runtime = logicalId(stack.api.runtimeLayer);
    const model = logicalId(stack.api.modelLayer);
    const layersOf = (name: ApiFunctionName) =>
      ((resources[fnLogicalId(name)]?.Properties.Layers ?? []) as Json[]).map((l) => l.Ref);

    expect(Object.fromEntries(API_FUNCTIONS.map((name) => [name, layersOf(name)]))).toEqual({
      search: [runtime, model],
      count: [],
      progress: [],
      health: [],
      ingest: [],
      uploads: [runtime],
      images: [],
      'delete-image': [],
      'delete-all': [],
      verify: [],
      reindex: [],
      duplicates: [runtime],
    });
    // A bundle that imports onnxruntime-node or sharp must have the layer, or it fails at its first import.
    for (const name of API_FUNCTIONS) {
      const imported = layerModulesImportedBy(bundleOf(stack.api.functions[name]));
      expect({ name, imports: imported.length > 0 }).toEqual({
        name,
        imports: layersOf(name).includes(runtime),
      });
    }
    expect(layerModulesImportedBy(bundleOf(stack.api.functions.search))).toEqual([...LAYER_MODULES].sort());
    expect(layerModulesImportedBy(bundleOf(stack.api.functions.uploads))).toEqual(['sharp']);
  });

  it('stay under 250 MB unzipped with their layers', () => {
    const runtime = directorySize(stagedCodeOf(stack.api.runtimeLayer));
    const model = directorySize(stagedCodeOf(stack.api.modelLayer));
    const sizes: Record<string, string> = { runtime: megabytes(runtime), model: megabytes(model) };
    for (const name of API_FUNCTIONS) {
      const bundle = directorySize(stagedCodeOf(stack.api.functions[name]));
      const parts = [{ name: `${name} bundle`, bytes: bundle }];
      const layers = ((resources[fnLogicalId(name)]?.Properties.Layers ?? []) as Json[]).map((l) => l.Ref);
      if (layers.includes(logicalId(stack.api.runtimeLayer))) parts.push({ name: 'runtime', bytes: runtime });
      if (layers.includes(logicalId(stack.api.modelLayer))) parts.push({ name: 'model', bytes: model });
      sizes[name] = megabytes(assertWithinLambdaLimit(parts));
    }
    console.log('unzipped function + layers:', sizes);
    expect(Object.keys(sizes)).toHaveLength(API_FUNCTIONS.length + 2);
  });

  it('set each function the variables of its own configuration parts and no others', () => {
    const variables = (name: ApiFunctionName) =>
      Object.keys(resources[fnLogicalId(name)]?.Properties.Environment.Variables ?? {})
        .filter((variable) => variable !== 'NODE_OPTIONS')
        .sort();
    const bucket = ['IMAGES_BUCKET', 'IMAGE_PREFIX', 'THUMBNAIL_PREFIX'];
    const milvus = ['MILVUS_ADDRESS', 'MILVUS_COLLECTION', 'MILVUS_TOKEN_SECRET_ARN'];

    expect(Object.fromEntries(API_FUNCTIONS.map((name) => [name, variables(name)]))).toEqual({
      search: sorted(...bucket, 'TABLE_NAME', ...milvus, 'PIC_MODEL_MANIFEST'),
      count: sorted(...milvus, 'TABLE_NAME', 'PIC_MODEL_IDENTITY'),
      progress: sorted('QUEUE_URL', 'TABLE_NAME'),
      health: sorted(...milvus, 'PIC_MODEL_IDENTITY', 'TABLE_NAME'),
      ingest: sorted(...bucket, 'TABLE_NAME', 'QUEUE_URL', ...milvus, 'PIC_MODEL_IDENTITY'),
      uploads: sorted(...bucket),
      images: sorted(...bucket),
      'delete-image': sorted(...bucket, 'TABLE_NAME', ...milvus, 'PIC_MODEL_IDENTITY'),
      'delete-all': sorted('TABLE_NAME', 'QUEUE_URL', ...milvus, 'PIC_MODEL_IDENTITY'),
      verify: sorted('TABLE_NAME', 'QUEUE_URL'),
      reindex: sorted('TABLE_NAME', 'QUEUE_URL', ...milvus, 'PIC_MODEL_IDENTITY'),
      duplicates: sorted(...bucket, 'TABLE_NAME', 'QUEUE_URL', ...milvus, 'PIC_MODEL_IDENTITY'),
    });
  });

  it('load the model from the model layer in search, and state the same model elsewhere', () => {
    const environment = (name: ApiFunctionName) =>
      resources[fnLogicalId(name)]?.Properties.Environment.Variables;
    expect(environment('search').PIC_MODEL_MANIFEST).toBe('/opt/model/vgg16-seeded.manifest.json');
    const identity = JSON.parse(environment('ingest').PIC_MODEL_IDENTITY as string);
    const manifest = JSON.parse(readFileSync('models/vgg16-seeded.manifest.json', 'utf8'));
    expect(identity).toMatchObject({
      model: expect.stringContaining(manifest.name),
      dimension: manifest.output.dimension,
      provider: 'cpu',
    });
    expect(JSON.parse(environment('health').PIC_MODEL_IDENTITY as string)).toEqual(identity);
  });
});

describe('least privilege', () => {
  const s3Verbs = (name: ApiFunctionName) =>
    [...actionsOf(statementsOfRole(roleOfFunction(name)))].filter((a) => a.startsWith('s3:')).sort();
  const writesTable = (name: ApiFunctionName) =>
    actionsOf(statementsOfRole(roleOfFunction(name))).has('dynamodb:PutItem');

  it('lets each function use only the S3 verbs its operations need, on their prefixes', () => {
    expect(Object.fromEntries(API_FUNCTIONS.map((name) => [name, s3Verbs(name)]))).toEqual({
      search: ['s3:GetObject'],
      count: [],
      progress: [],
      ingest: ['s3:DeleteObject', 's3:ListBucket'],
      uploads: ['s3:PutObject'],
      images: ['s3:GetObject'],
      'delete-image': ['s3:DeleteObject', 's3:GetObject'],
      'delete-all': [],
      verify: [],
      reindex: [],
      health: [],
      duplicates: ['s3:GetObject'],
    });
    expect(s3PrefixesFor(statementsOfRole(roleOfFunction('uploads')), 's3:PutObject')).toEqual(['/images/*']);
    // Search reads the live generation's kept model during a re-index (src/model/kept-models.ts); no
    // other function reads it.
    const readsKeptModels = (name: ApiFunctionName) =>
      s3PrefixesFor(statementsOfRole(roleOfFunction(name)), 's3:GetObject').includes('/index-models/*');
    expect(API_FUNCTIONS.filter(readsKeptModels)).toEqual(['search']);
    expect(s3PrefixesFor(statementsOfRole(roleOfFunction('ingest')), 's3:DeleteObject')).toEqual([
      '/thumbnails/*',
    ]);
  });

  it('lets only the functions that change the catalogue write to it', () => {
    expect(API_FUNCTIONS.filter(writesTable).sort()).toEqual([
      'delete-all',
      'delete-image',
      'duplicates',
      'ingest',
      'reindex',
      'verify',
    ]);
  });

  it.each([
    ['health', [OUTAGES_PK, LIBRARY_PK]],
    ['count', [LIBRARY_PK]],
  ] as const)(
    "lets %s read only its items of the table (the workers' outages, the library's live index)",
    (name, items) => {
      const reads = statementsOfRole(roleOfFunction(name)).filter((s) =>
        [s.Action].flat().some((a: string) => a.startsWith('dynamodb:')),
      );
      expect(reads).toEqual([
        expect.objectContaining({
          Action: 'dynamodb:GetItem',
          Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': items } },
          Resource: { 'Fn::GetAtt': [logicalId(stack.storage.table), 'Arn'] },
        }),
      ]);
    },
  );

  it('lets only ingest and the task starters (delete-all, verify, reindex, duplicates) send to the queue, and only progress read its depth', () => {
    const sqs = Object.fromEntries(
      API_FUNCTIONS.map((name) => [
        name,
        [...actionsOf(statementsOfRole(roleOfFunction(name)))].filter((a) => a.startsWith('sqs:')).sort(),
      ]),
    );
    expect(Object.entries(sqs).filter(([, actions]) => actions.length > 0)).toEqual([
      ['progress', ['sqs:GetQueueAttributes']],
      ['ingest', ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']],
      ['delete-all', ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']],
      ['verify', ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']],
      ['reindex', ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']],
      ['duplicates', ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']],
    ]);
  });

  it('lets only the functions that query Milvus read its token', () => {
    const readsToken = (name: ApiFunctionName) =>
      actionsOf(statementsOfRole(roleOfFunction(name))).has('secretsmanager:GetSecretValue');
    expect(API_FUNCTIONS.filter(readsToken).sort()).toEqual([
      'count',
      'delete-all',
      'delete-image',
      'duplicates',
      'health',
      'ingest',
      'reindex',
      'search',
    ]);
  });

  it('grants each function exactly these actions', () => {
    const actions = Object.fromEntries(
      API_FUNCTIONS.map((name) => [name, [...actionsOf(statementsOfRole(roleOfFunction(name)))].sort()]),
    );
    expect(actions).toEqual(EXPECTED_ACTIONS);
  });

  it('grants no wildcard actions or all-resource statements to our own roles', () => {
    const ours = [...API_FUNCTIONS.map(roleOfFunction), logicalId(stack.ingest.taskRole)];
    for (const role of ours) {
      for (const statement of statementsOfRole(role)) {
        expect([statement.Action].flat().filter((a: string) => a.includes('*'))).toEqual([]);
        expect([statement.Resource].flat()).not.toContain('*');
      }
    }
  });
});

describe('HTTP API', () => {
  const routes = () => ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties as Json);

  it('serves exactly the routes the shared router serves in cloud mode', () => {
    const router = createRouter({} as Operations, { mode: 'cloud' });
    expect(
      routes()
        .map((r) => r.RouteKey)
        .sort(),
    ).toEqual([...router.routeKeys].sort());
    expect(Object.keys(ROUTES).sort()).toEqual([...router.routeKeys].sort());
  });

  it('requires the bearer-token authorizer on every route', () => {
    const authorizerId = ofType('AWS::ApiGatewayV2::Authorizer')[0]?.[0];
    for (const route of routes()) {
      expect({ route: route.RouteKey, type: route.AuthorizationType, id: route.AuthorizerId }).toEqual({
        route: route.RouteKey,
        type: 'CUSTOM',
        id: { Ref: authorizerId },
      });
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      // docs/security.md: a rotated token keeps working for up to this plus the authorizer's own 5 minutes.
      AuthorizerResultTtlInSeconds: 300,
      EnableSimpleResponses: true,
      IdentitySource: ['$request.header.Authorization'],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { API_TOKEN_SECRET_ARN: { Ref: logicalId(stack.api.apiToken) } } },
    });
  });

  it('admits only the web page origin through CORS', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      CorsConfiguration: {
        AllowOrigins: [
          {
            'Fn::Join': [
              '',
              ['https://', { 'Fn::GetAtt': [logicalId(stack.web.distribution), 'DomainName'] }],
            ],
          },
        ],
        AllowHeaders: ['authorization', 'content-type'],
      },
    });
  });

  it('throttles and writes access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('routeKey') },
    });
  });
});

describe('web page', () => {
  it('is a private bucket read by CloudFront through origin access control', () => {
    expect(
      resources[logicalId(stack.web.bucket)]?.Properties.PublicAccessBlockConfiguration.BlockPublicPolicy,
    ).toBe(true);
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultRootObject: 'index.html',
        DefaultCacheBehavior: Match.objectLike({ ViewerProtocolPolicy: 'redirect-to-https' }),
      }),
    });
  });

  it('sends a strict Content-Security-Policy with the page', () => {
    const policyId = logicalId(stack.web.responseHeaders);
    const config = resources[policyId]?.Properties.ResponseHeadersPolicyConfig;
    const csp = config.SecurityHeadersConfig.ContentSecurityPolicy;
    expect(csp.Override).toBe(true);
    expect(csp.ContentSecurityPolicy).toEqual({
      'Fn::Join': ['', expect.arrayContaining([{ Ref: 'AWS::Region' }])],
    });
    const text = (csp.ContentSecurityPolicy['Fn::Join'][1] as (string | Json)[])
      .map((part) => (typeof part === 'string' ? part : 'REGION'))
      .join('');
    expect(text).toBe(pageContentSecurityPolicy('REGION'));
    expect(text).toMatch(/default-src 'none'; script-src 'self';/);
    expect(text).not.toMatch(/unsafe-eval|unsafe-inline/);
    expect(config.SecurityHeadersConfig.FrameOptions).toEqual({ FrameOption: 'DENY', Override: true });
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultCacheBehavior: Match.objectLike({ ResponseHeadersPolicyId: { Ref: policyId } }),
      }),
    });
  });

  it('deploys the page with a config.json that points at the API', () => {
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: { Ref: logicalId(stack.web.bucket) },
      SourceMarkers: Match.arrayWith([
        Match.objectLike({
          '<<marker:0xbaba:0>>': { 'Fn::GetAtt': [logicalId(stack.api.httpApi), 'ApiEndpoint'] },
        }),
      ]),
      DistributionPaths: ['/*'],
    });
  });
});

describe('stack-wide rules', () => {
  it('outputs the API URL, web URL, bucket name and queue URL', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining(['ApiUrl', 'WebUrl', 'ImagesBucketName', 'IngestQueueUrl']),
    );
  });

  it('tags every taggable resource with the project', () => {
    const untagged = Object.entries(resources)
      .filter(([, r]) => r.Properties?.Tags !== undefined)
      .filter(([, r]) => {
        const tags = r.Properties.Tags as Json[] | Json;
        return Array.isArray(tags) ? !tags.some((t) => t.Key === 'project') : tags.project === undefined;
      })
      .map(([id]) => id);
    expect(untagged).toEqual([]);
    for (const type of [
      'AWS::S3::Bucket',
      'AWS::SQS::Queue',
      'AWS::DynamoDB::Table',
      'AWS::Lambda::Function',
      'AWS::ECS::Cluster',
    ]) {
      expect(ofType(type).every(([, r]) => r.Properties.Tags !== undefined)).toBe(true);
    }
  });

  it('sets removal policies explicitly on stateful resources', () => {
    for (const type of [
      'AWS::S3::Bucket',
      'AWS::DynamoDB::Table',
      'AWS::SQS::Queue',
      'AWS::SecretsManager::Secret',
      'AWS::Logs::LogGroup',
    ]) {
      for (const [id, resource] of ofType(type)) {
        expect({ id, policy: resource.DeletionPolicy }).toEqual({
          id,
          policy: expect.stringMatching(/^(Delete|Retain)$/),
        });
      }
    }
  });

  it('passes cdk-nag AwsSolutions, each acknowledgement with a reason', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(
      report.violations.map((v) => `${v.ruleName} @ ${v.violatingResources.map((r) => r.constructPath)}`),
    ).toEqual([]);
    for (const acknowledgement of nagAcknowledgements(stack))
      expect(acknowledgement.reason.length).toBeGreaterThan(40);
  });

  it('passes cfn-lint', async () => {
    const result = await cfnLint([join(outdir, `${stack.stackName}.template.json`)]);
    expect(result.output).toBe('');
    expect(result.exitCode).toBe(0);
  }, 300_000);
});
