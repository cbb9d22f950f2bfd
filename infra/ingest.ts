import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { KEPT_MODELS_PREFIX } from '../src/adapters/aws/config.ts';
import { allowList, allowObjects } from './grants.ts';
import type { Storage } from './storage.ts';

export interface IngestProps {
  storage: Storage;
  repoRoot: string;
  /** Model name the worker image bakes in: models/<name>.onnx + models/<name>.manifest.json. */
  modelName: string;
  environment: Record<string, string>;
  instanceType: string;
  maxWorkers: number;
  messagesPerWorker: number;
  workerMemoryMiB: number;
  logRetention: logs.RetentionDays;
}

/** Minutes the queue must stay empty before the workers (and then their instances) go away. */
export const SCALE_IN_AFTER_EMPTY_MINUTES = 5;

/**
 * Paths the worker image build never needs. Excluding them keeps asset staging (a copy of the repo root
 * into cdk.out at synth) fast and the hash stable; no Docker engine is involved until `cdk deploy`.
 */
const IMAGE_CONTEXT_EXCLUDES = [
  '.git',
  'node_modules',
  'cdk.out',
  '.cache',
  '.venv',
  'data',
  'web/dist',
  'layers/*/build',
  'test-results',
  'bench-results',
  '**/*.test.ts',
];

/**
 * GPU ingest workers: an ECS service on EC2 GPU instances that long-polls the ingest queue.
 * Both the tasks and the instances scale from and to zero on the queue's backlog (visible + in-flight),
 * so an idle system runs no EC2 at all. ECS rather than AWS Batch: the queue already exists (S3 events),
 * a long-lived worker loads VGG16 and initialises CUDA once for many batches, and Batch would replace the
 * SQS queue + DLQ with its own job queue and pay container start per job (research notes §1.5).
 */
export class Ingest extends Construct {
  readonly cluster: ecs.Cluster;
  readonly service: ecs.Ec2Service;
  readonly taskRole: iam.Role;
  readonly taskDefinition: ecs.Ec2TaskDefinition;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly backlog: cloudwatch.MathExpression;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const { storage } = props;

    // Public subnets and no NAT gateway: a NAT gateway alone would cost ~$32/month at idle. Instances get
    // a public address for ECR and Zilliz Cloud, accept no inbound traffic, and reach S3 and DynamoDB
    // through free gateway endpoints.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, 'FlowLogs', {
          retention: props.logRetention,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      ),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.DISABLED,
    });

    const securityGroup = new ec2.SecurityGroup(this, 'WorkerSecurityGroup', {
      vpc,
      description: 'GPU ingest workers: outbound only',
      allowAllOutbound: true,
    });
    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'GpuInstances', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      associatePublicIpAddress: true,
      securityGroup,
      instanceType: new ec2.InstanceType(props.instanceType),
      // Resolved from SSM at deploy time (no lookup at synth, so synth stays offline). A new AMI only
      // changes the launch template; with zero instances at rest, nothing is replaced.
      machineImage: ecs.EcsOptimizedImage.amazonLinux2023(ecs.AmiHardwareType.GPU),
      // Never desiredCapacity: it would reset the group's size on every deploy (aws/aws-cdk#5215).
      minCapacity: 0,
      maxCapacity: props.maxWorkers,
      requireImdsv2: true,
      blockDevices: [
        {
          // Room for the CUDA base image (several GB) and its layers being unpacked.
          deviceName: '/dev/xvda',
          volume: autoscaling.BlockDeviceVolume.ebs(100, {
            volumeType: autoscaling.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    });
    const capacityProvider = new ecs.AsgCapacityProvider(this, 'GpuCapacity', {
      autoScalingGroup: this.autoScalingGroup,
      enableManagedScaling: true,
      targetCapacityPercent: 100,
      // Managed termination protection makes `cdk destroy` hang on "capacity provider in use"
      // (aws/aws-cdk#14732); tasks protect themselves with task scale-in protection instead, and
      // managed draining stops an instance's tasks gracefully before it terminates.
      enableManagedTerminationProtection: false,
      enableManagedDraining: true,
      instanceWarmupPeriod: 180,
    });
    this.cluster.addAsgCapacityProvider(capacityProvider);

    const logGroup = new logs.LogGroup(this, 'WorkerLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskRole = new iam.Role(this, 'WorkerTaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'pic-search GPU ingest worker',
    });
    const taskDefinition = new ecs.Ec2TaskDefinition(this, 'WorkerTask', { taskRole: this.taskRole });
    this.taskDefinition = taskDefinition;
    taskDefinition.addContainer('worker', {
      image: ecs.ContainerImage.fromAsset(props.repoRoot, {
        file: 'functions/worker/Dockerfile',
        exclude: IMAGE_CONTEXT_EXCLUDES,
        platform: Platform.LINUX_AMD64,
        buildArgs: { MODEL: props.modelName },
      }),
      gpuCount: 1,
      memoryReservationMiB: props.workerMemoryMiB,
      // Lambda sets AWS_REGION itself; a container gets it from us.
      environment: { ...props.environment, AWS_REGION: Stack.of(this).region },
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'worker' }),
      // ECS waits this long after SIGTERM so the worker can finish or release its batch (120 s is the maximum).
      stopTimeout: Duration.seconds(120),
    });

    this.service = new ecs.Ec2Service(this, 'Workers', {
      cluster: this.cluster,
      taskDefinition,
      // 0 rather than unset: CloudFormation creates a service with 1 task when it is unset, and the
      // deploy would wait for a GPU instance (forever, on an account without G-instance quota).
      desiredCount: 0,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      capacityProviderStrategies: [{ capacityProvider: capacityProvider.capacityProviderName, weight: 1 }],
      circuitBreaker: { enable: true, rollback: true },
    });

    this.backlog = new cloudwatch.MathExpression({
      label: 'Ingest backlog (visible + in flight)',
      expression: 'FILL(visible, 0) + FILL(inFlight, 0)',
      usingMetrics: {
        visible: storage.queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' }),
        inFlight: storage.queue.metricApproximateNumberOfMessagesNotVisible({ statistic: 'Maximum' }),
      },
      period: Duration.minutes(1),
    });
    const scaling = this.service.autoScaleTaskCount({ minCapacity: 0, maxCapacity: props.maxWorkers });
    // Scale out from the first message: one worker per `messagesPerWorker` of backlog, at least one.
    scaling.scaleOnMetric('ScaleOutOnBacklog', {
      metric: this.backlog,
      adjustmentType: autoscaling.AdjustmentType.EXACT_CAPACITY,
      scalingSteps: workerSteps(props.maxWorkers, props.messagesPerWorker),
      evaluationPeriods: 1,
      cooldown: Duration.minutes(1),
    });
    // Scale in to zero only once nothing is visible or in flight for a while: counting in-flight
    // messages keeps the last busy worker alive (aws/aws-cdk#9242).
    // (ChangeInCapacity because its 0 means "no alarm here", so only the "≤ 0" alarm is created.)
    scaling.scaleOnMetric('ScaleInWhenEmpty', {
      metric: this.backlog,
      adjustmentType: autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      scalingSteps: [
        { upper: 0, change: -props.maxWorkers },
        { lower: 1, change: 0 },
      ],
      evaluationPeriods: SCALE_IN_AFTER_EMPTY_MINUTES,
      cooldown: Duration.minutes(1),
    });

    storage.queue.grantConsumeMessages(this.taskRole);
    const imagePrefix = environmentValue(props.environment, 'IMAGE_PREFIX');
    const thumbnailPrefix = environmentValue(props.environment, 'THUMBNAIL_PREFIX');
    // Reads images; writes thumbnails, and deletes them when their image is removed.
    allowObjects(this.taskRole, storage.images, ['s3:GetObject'], [imagePrefix]);
    allowObjects(this.taskRole, storage.images, ['s3:PutObject', 's3:DeleteObject'], [thumbnailPrefix]);
    // Background tasks (src/app/tasks.ts): delete-all's cleanup lists and deletes images and thumbnails,
    // verification lists the bucket and re-queues drift; each slice queues the next.
    allowList(this.taskRole, storage.images);
    allowObjects(this.taskRole, storage.images, ['s3:DeleteObject'], [imagePrefix]);
    // Keeps the deployed model with the index generations it builds and drops it with them; searches
    // embed with it until a re-index switches (src/model/kept-models.ts).
    allowObjects(
      this.taskRole,
      storage.images,
      ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      [KEPT_MODELS_PREFIX],
    );
    storage.queue.grantSendMessages(this.taskRole);
    storage.table.grantReadWriteData(this.taskRole);
    storage.milvusToken.grantRead(this.taskRole);
    // Task scale-in protection while the worker holds messages, set through the ECS agent endpoint by
    // src/adapters/aws/task-protection.ts, called by the worker (functions/worker/main.ts)
    // (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html).
    this.taskRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection'],
        resources: [
          Stack.of(this).formatArn({
            service: 'ecs',
            resource: 'task',
            resourceName: `${this.cluster.clusterName}/*`,
          }),
        ],
      }),
    );
  }
}

/**
 * ExactCapacity steps: k workers from (k-1)·perWorker messages on, the first from a single message.
 * Nothing below 1 message, so the policy has only its "≥ 1" alarm (scaling in is the other policy's job).
 * CDK wants at least two intervals, so a single worker gets a second, identical step.
 */
export function workerSteps(maxWorkers: number, perWorker: number): { lower: number; change: number }[] {
  const steps = Array.from({ length: maxWorkers }, (_, index) => ({
    lower: index === 0 ? 1 : index * perWorker,
    change: index + 1,
  }));
  return maxWorkers === 1 ? [...steps, { lower: Math.max(perWorker, 2), change: 1 }] : steps;
}

function environmentValue(environment: Record<string, string>, name: string): string {
  const value = environment[name];
  if (value === undefined) throw new Error(`${name} missing from the worker environment`);
  return value;
}
