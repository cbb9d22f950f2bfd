import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AssetStaging, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { allowList, allowObjects } from './grants.ts';
import type { Storage } from './storage.ts';

/** The API's Lambda functions: file under functions/api/ → what it may touch. */
export const API_FUNCTIONS = [
  'search',
  'count',
  'progress',
  'ingest',
  'uploads',
  'images',
  'delete-image',
  'delete-all',
  'health',
] as const;
export type ApiFunctionName = (typeof API_FUNCTIONS)[number];

/** API Gateway route key → function. The same table src/http/router.ts serves in cloud mode. */
export const ROUTES: Record<string, ApiFunctionName> = {
  'GET /health': 'health',
  'GET /openapi.json': 'health',
  'GET /count': 'count',
  'GET /progress': 'progress',
  'POST /ingest': 'ingest',
  'POST /images': 'uploads',
  'POST /uploads': 'uploads',
  'POST /search': 'search',
  'GET /images/{key+}': 'images',
  'GET /thumbnails/{key+}': 'images',
  'DELETE /images/{key+}': 'delete-image',
  'DELETE /images': 'delete-all',
};

/** Modules the runtime layer provides; a bundle that imports one of them gets the layers. */
export const LAYER_MODULES = ['onnxruntime-node', 'sharp'] as const;
const LAYER_IMPORT = new RegExp(`(?:from|import\\(|require\\()\\s*["'](${LAYER_MODULES.join('|')})["']`, 'g');

/** The native modules a bundled function imports (esbuild leaves them as plain import specifiers). */
export function layerModulesImportedBy(bundle: string): string[] {
  return [...new Set([...bundle.matchAll(LAYER_IMPORT)].map((match) => match[1] as string))].sort();
}

/** Where the code of a function or layer was staged (bundling runs when the construct is created). */
export function stagedCodeOf(construct: lambda.Function | lambda.LayerVersion): string {
  return (construct.node.findChild('Code').node.findChild('Stage') as AssetStaging).absoluteStagedPath;
}

/** The esbuild output NodejsFunction staged for `fn`. */
export function bundleOf(fn: lambda.Function): string {
  return readFileSync(join(stagedCodeOf(fn), 'index.mjs'), 'utf8');
}

export interface ApiProps {
  storage: Storage;
  repoRoot: string;
  environment: Record<string, string>;
  runtimeLayerDir: string;
  modelLayerDir: string;
  /** PIC_MODEL_MANIFEST inside the functions that get the model layer. */
  modelManifestInLambda: string;
  imagePrefix: string;
  thumbnailPrefix: string;
  allowedOrigins: string[];
  searchMemoryMiB: number;
  rateLimit: number;
  burstLimit: number;
  logRetention: logs.RetentionDays;
}

/**
 * HTTP API + one Lambda function per concern. Every route requires `Authorization: Bearer <token>`,
 * checked by a Lambda authorizer against a generated token in Secrets Manager: the web page and the CLI
 * only need a static token (no user pool, sign-in UI or token refresh), and the user can rotate it with
 * one put-secret-value. CORS admits the web page's origin only.
 */
export class Api extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly functions: Record<ApiFunctionName, nodejs.NodejsFunction>;
  readonly authorizerFunction: nodejs.NodejsFunction;
  readonly apiToken: secretsmanager.Secret;
  readonly runtimeLayer: lambda.LayerVersion;
  readonly modelLayer: lambda.LayerVersion;
  /** https://<id>.execute-api.<region>.amazonaws.com, without a trailing slash. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    this.runtimeLayer = new lambda.LayerVersion(this, 'RuntimeLayer', {
      code: lambda.Code.fromAsset(props.runtimeLayerDir),
      compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
      compatibleArchitectures: [lambda.Architecture.X86_64],
      description: 'onnxruntime-node (linux-x64 CPU) + sharp (linux-x64 glibc)',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.modelLayer = new lambda.LayerVersion(this, 'ModelLayer', {
      code: lambda.Code.fromAsset(props.modelLayerDir),
      description: 'VGG16 conv-only feature extractor (ONNX) + manifest, under /opt/model',
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const { runtimeLayer, modelLayer } = this;
    const makeFunction = (name: string, entry: string, options: Partial<nodejs.NodejsFunctionProps>) =>
      new nodejs.NodejsFunction(this, pascal(name), {
        entry,
        handler: 'handler',
        // nodejs22.x on x86_64: onnxruntime and libvips need glibc ≥ 2.28 (AL2023 runtimes) and ORT aborts
        // at init on arm64 Lambda (microsoft/onnxruntime#10038).
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.X86_64,
        memorySize: 512,
        timeout: Duration.seconds(29),
        projectRoot: props.repoRoot,
        depsLockFilePath: join(props.repoRoot, 'package-lock.json'),
        logGroup: new logs.LogGroup(this, `${pascal(name)}Logs`, {
          retention: props.logRetention,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          mainFields: ['module', 'main'],
          minify: true,
          sourceMap: true,
          // Native code comes from the runtime layer; bundling it would break its computed require paths.
          externalModules: ['onnxruntime-node', 'sharp'],
          // Our SDK versions, not whatever the runtime ships.
          bundleAwsSDK: true,
          // CommonJS dependencies inside an ESM bundle still call require().
          banner:
            "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
        },
        ...options,
        environment: { NODE_OPTIONS: '--enable-source-maps', ...options.environment },
      });

    this.functions = Object.fromEntries(
      API_FUNCTIONS.map((name) => {
        const fn = makeFunction(name, join(props.repoRoot, 'functions/api', `${name}.ts`), {
          description: `pic-search API: ${name}`,
          // Search runs VGG16 on CPU: Lambda gives CPU in proportion to memory (3008 MB ≈ 2 vCPUs).
          memorySize: name === 'search' ? props.searchMemoryMiB : 1024,
          environment: { ...props.environment, PIC_MODEL_MANIFEST: props.modelManifestInLambda },
        });
        // Layers follow what the bundle really imports, so a function that (through the shared wiring)
        // loads the embedder can never ship without onnxruntime, sharp and the model.
        if (layerModulesImportedBy(bundleOf(fn)).length > 0) fn.addLayers(runtimeLayer, modelLayer);
        return [name, fn];
      }),
    ) as Record<ApiFunctionName, nodejs.NodejsFunction>;
    this.grantLeastPrivilege(props);

    this.apiToken = new secretsmanager.Secret(this, 'ApiToken', {
      description: 'pic-search API bearer token (the web page asks for it once)',
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.authorizerFunction = makeFunction(
      'authorizer',
      join(props.repoRoot, 'infra/authorizer/bearer-token.ts'),
      {
        description: 'pic-search API bearer-token authorizer',
        memorySize: 256,
        timeout: Duration.seconds(10),
        environment: { API_TOKEN_SECRET_ARN: this.apiToken.secretArn },
      },
    );
    this.apiToken.grantRead(this.authorizerFunction);
    const authorizer = new HttpLambdaAuthorizer('BearerToken', this.authorizerFunction, {
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      identitySource: ['$request.header.Authorization'],
      resultsCacheTtl: Duration.minutes(5),
    });

    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      apiName: `${Stack.of(this).stackName}-api`,
      description: 'pic-search: search by image',
      createDefaultStage: false,
      defaultAuthorizer: authorizer,
      corsPreflight: {
        allowOrigins: props.allowedOrigins,
        allowMethods: [
          apigw.CorsHttpMethod.GET,
          apigw.CorsHttpMethod.POST,
          apigw.CorsHttpMethod.DELETE,
          apigw.CorsHttpMethod.OPTIONS,
        ],
        allowHeaders: ['authorization', 'content-type'],
        maxAge: Duration.days(1),
      },
    });
    const integrations = new Map<ApiFunctionName, HttpLambdaIntegration>();
    for (const [routeKey, name] of Object.entries(ROUTES)) {
      const [method, path] = routeKey.split(' ') as [keyof typeof apigw.HttpMethod, string];
      let integration = integrations.get(name);
      if (!integration) {
        integration = new HttpLambdaIntegration(`${pascal(name)}Integration`, this.functions[name]);
        integrations.set(name, integration);
      }
      this.httpApi.addRoutes({ path, methods: [apigw.HttpMethod[method]], integration });
    }

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: props.rateLimit, burstLimit: props.burstLimit },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        // HTTP API context variables (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging-variables.html).
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            route: '$context.routeKey',
            status: '$context.status',
            latencyMs: '$context.responseLatency',
            bytes: '$context.responseLength',
            authorizerError: '$context.authorizer.error',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
    this.url = this.httpApi.apiEndpoint;
  }

  /**
   * Each function gets exactly what its operations touch (src/app/pic-search.ts); stack.test.ts holds us
   * to it. The Milvus token is readable by every API function because the shared cloud wiring, awaited at
   * module load, connects the vector index.
   */
  private grantLeastPrivilege(props: ApiProps): void {
    const { images, table, queue, milvusToken } = props.storage;
    const both = [props.imagePrefix, props.thumbnailPrefix];
    const f = this.functions;
    for (const fn of Object.values(f)) milvusToken.grantRead(fn);

    // Results carry presigned GET links to the image and its thumbnail.
    allowObjects(f.search, images, ['s3:GetObject'], both);
    table.grantReadData(f.search);

    // count and health ask the vector index only.

    table.grantReadData(f.progress);
    queue.grant(f.progress, 'sqs:GetQueueAttributes');

    // Backfill lists the prefix, queues what changed and forgets what is gone (vector, thumbnail, entry).
    allowList(f.ingest, images);
    allowObjects(f.ingest, images, ['s3:DeleteObject'], [props.thumbnailPrefix]);
    table.grantReadWriteData(f.ingest);
    queue.grantSendMessages(f.ingest);

    // Presigned PUT links (POST /uploads) and multipart uploads (POST /images).
    allowObjects(f.uploads, images, ['s3:PutObject'], [props.imagePrefix]);

    allowObjects(f.images, images, ['s3:GetObject'], both);

    allowObjects(f['delete-image'], images, ['s3:GetObject'], [props.imagePrefix]);
    allowObjects(f['delete-image'], images, ['s3:DeleteObject'], both);
    table.grantReadWriteData(f['delete-image']);

    allowList(f['delete-all'], images);
    allowObjects(f['delete-all'], images, ['s3:DeleteObject'], both);
    table.grantReadWriteData(f['delete-all']);
  }
}

function pascal(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, __, letter: string) => letter.toUpperCase());
}
