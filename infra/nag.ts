import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { KEPT_MODELS_PREFIX } from '../src/adapters/aws/config.ts';
import type { PicSearchStack } from './stack.ts';

/**
 * Every cdk-nag AwsSolutions finding we accept, each with the reason; anything else fails synthesis.
 * IAM5 findings are acknowledged one resource pattern at a time (cdk-nag 3 has no prefix matching), so a
 * new wildcard anywhere shows up as a new finding.
 */
export interface NagAcknowledgement {
  scope: IConstruct;
  id: string;
  reason: string;
}

export function nagAcknowledgements(stack: PicSearchStack): NagAcknowledgement[] {
  const { storage, ingest, api, web } = stack;
  const logicalId = (element: IConstruct) =>
    Stack.of(element).getLogicalId(element.node.defaultChild as CfnElement);
  const cdkSingleton = (prefix: string) => {
    const found = stack.node.children.find((child) => child.node.id.startsWith(prefix));
    if (!found) throw new Error(`No ${prefix}* construct in the stack`);
    return found;
  };
  const bucketDeployment = cdkSingleton('Custom::CDKBucketDeployment');
  const notificationsHandler = cdkSingleton('BucketNotificationsHandler');
  const ourFunctions = [...Object.values(api.functions), api.authorizerFunction];
  const allFunctions = [...ourFunctions, bucketDeployment, notificationsHandler];
  const imagesArn = `<${logicalId(storage.images)}.Arn>`;
  const tableArn = `<${logicalId(storage.table)}.Arn>`;
  const prefixes = [stack.config.imagePrefix, stack.config.thumbnailPrefix, KEPT_MODELS_PREFIX];

  return [
    ...[storage.milvusToken, api.apiToken].map((scope) => ({
      scope,
      id: 'AwsSolutions-SMG4',
      reason:
        'Tokens are issued outside AWS (Zilliz Cloud / Milvus) or handed to people (API bearer token): there is no rotation Lambda that could change them at the source. Rotate with put-secret-value; readers re-read within minutes.',
    })),
    ...allFunctions.map((scope) => ({
      scope,
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason:
        'The AWS managed basic execution policy only allows writing the function’s own CloudWatch logs.',
    })),
    ...[...ourFunctions, bucketDeployment].map((scope) => ({
      scope,
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x on purpose: onnxruntime-node and sharp were validated on it (glibc 2.34, x86_64); the CDK-provided deployment handler pins its own runtime.',
    })),
    {
      scope: ingest.cluster,
      id: 'AwsSolutions-ECS4',
      reason:
        'Container Insights is billed per task and instance metric; the worker logs its throughput and the queue metrics drive scaling.',
    },
    {
      scope: ingest.autoScalingGroup,
      id: 'AwsSolutions-IAM5[Action::ecs:Submit*]',
      reason:
        'The ECS agent’s instance role as CDK generates it for a capacity provider (AmazonEC2ContainerServiceforEC2Role actions).',
    },
    {
      scope: ingest.autoScalingGroup,
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecs:DiscoverPollEndpoint and ecr:GetAuthorizationToken support no resource-level permissions.',
    },
    {
      scope: ingest.taskDefinition,
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken (image pull) supports no resource-level permissions.',
    },
    {
      scope: ingest.autoScalingGroup,
      id: 'AwsSolutions-AS3',
      reason:
        'Scaling is driven by the ECS capacity provider; its activity is in the ECS and Auto Scaling consoles. No operator topic in this stack.',
    },
    ...prefixes.map((prefix) => ({
      scope: stack,
      id: `AwsSolutions-IAM5[Resource::${imagesArn}/${prefix}*]`,
      reason: `Object keys are only known at run time; access is limited to the "${prefix}" prefix with exact verbs (checked in infra/stack.test.ts).`,
    })),
    {
      scope: stack,
      id: `AwsSolutions-IAM5[Resource::${tableArn}/index/*]`,
      reason: 'Queries use the catalogue table’s own secondary indexes (byKey, failures).',
    },
    {
      scope: ingest.taskRole,
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${logicalId(ingest.cluster)}>/*]`,
      reason:
        'Task scale-in protection on the worker’s own task, whose id is only known at run time; limited to this cluster.',
    },
    {
      scope: ingest.taskDefinition,
      id: 'AwsSolutions-ECS2',
      reason:
        'Only non-secret configuration (names, URLs, ARNs) is in the environment; the Milvus token is read from Secrets Manager at run time.',
    },
    {
      scope: web.distribution,
      id: 'AwsSolutions-CFR1',
      reason: 'A public static page; there is no country to exclude. The API behind it requires a token.',
    },
    {
      scope: web.distribution,
      id: 'AwsSolutions-CFR2',
      reason:
        'WAF costs at least $5/month at idle; the page is static and the API is token-protected and throttled.',
    },
    {
      scope: web.distribution,
      id: 'AwsSolutions-CFR3',
      reason:
        'CloudFront standard logs need an ACL-enabled bucket; the page is static, and API requests are logged by API Gateway access logs.',
    },
    {
      scope: web.distribution,
      id: 'AwsSolutions-CFR4',
      reason:
        'The default *.cloudfront.net certificate cannot enforce TLS 1.2; add a custom domain and certificate to do so.',
    },
    ...[
      'Action::s3:GetObject*',
      'Action::s3:GetBucket*',
      'Action::s3:List*',
      'Action::s3:DeleteObject*',
      'Action::s3:Abort*',
      'Resource::*',
      'Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*',
      `Resource::<${logicalId(web.bucket)}.Arn>/*`,
    ].map((finding) => ({
      scope: bucketDeployment,
      id: `AwsSolutions-IAM5[${finding}]`,
      reason:
        'CDK’s BucketDeployment handler copies the page from the CDK assets bucket into the web bucket and invalidates CloudFront.',
    })),
  ];
}

export function suppressNagFindings(stack: PicSearchStack): void {
  for (const { scope, id, reason } of nagAcknowledgements(stack))
    Validations.of(scope).acknowledge({ id, reason });
}
