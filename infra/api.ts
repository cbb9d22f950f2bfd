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
import { LAMBDA_PARTS, type LambdaName } from '../src/wiring/lambda-parts.ts';
import { type BindingTargets, bindFunction } from './bindings.ts';
import type { Storage } from './storage.ts';

/** The API's Lambda functions, one file each under functions/api/; what each may touch: bindings.ts. */
export const API_FUNCTIONS = Object.keys(LAMBDA_PARTS) as LambdaName[];
export type ApiFunctionName = LambdaName;

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
  'POST /verify': 'verify',
  'POST /reindex': 'reindex',
  'GET /duplicates': 'duplicates',
  'POST /duplicates/dismissals': 'duplicates',
  'POST /duplicates/scan': 'duplicates',
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
  runtimeLayerDir: string;
  modelLayerDir: string;
  /** What the functions are bound to, besides the layers made here. */
  bindings: Omit<BindingTargets, 'storage' | 'runtimeLayer' | 'modelLayer'>;
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

    const targets: BindingTargets = { ...props.bindings, storage: props.storage, runtimeLayer, modelLayer };
    this.functions = Object.fromEntries(
      API_FUNCTIONS.map((name) => {
        const fn = makeFunction(name, join(props.repoRoot, 'functions/api', `${name}.ts`), {
          description: `pic-search API: ${name}`,
          // Search runs VGG16 on CPU: Lambda gives CPU in proportion to memory (3008 MB ≈ 2 vCPUs).
          memorySize: name === 'search' ? props.searchMemoryMiB : 1024,
        });
        bindFunction(fn, name, targets);
        return [name, fn];
      }),
    ) as Record<ApiFunctionName, nodejs.NodejsFunction>;

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
}

function pascal(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, __, letter: string) => letter.toUpperCase());
}
