import { resolve } from 'node:path';
import { Annotations, App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildLayers, MODEL_LAYER_DIR, REPO_ROOT, RUNTIME_LAYER_DIR } from '../layers/build.ts';
import { embedderInfoOf, loadManifest } from '../src/model/manifest.ts';
import { CONFIG_KEYS, parseConfig } from './config.ts';
import { suppressNagFindings } from './nag.ts';
import { PicSearchStack } from './stack.ts';

/**
 * Feature flags the stack relies on: launch templates instead of launch configurations (which accounts
 * opened since 2024 cannot create, and cfn-lint flags), and server access logs delivered under a bucket
 * policy rather than the legacy LogDeliveryWrite ACL.
 */
export const FEATURE_FLAGS = {
  '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true,
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};

/**
 * Builds the app from CDK context: validates the configuration, (re)builds the Lambda layers from
 * node_modules and the chosen model (a second or two; it fails when they pass Lambda's size limit),
 * then composes the stack with cdk-nag's AwsSolutions checks applied.
 */
export async function createApp(
  context: Record<string, unknown> = {},
  options: { outdir?: string; repoRoot?: string } = {},
) {
  const repoRoot = options.repoRoot ?? REPO_ROOT;
  const app = new App({
    context: { ...FEATURE_FLAGS, ...context },
    ...(options.outdir ? { outdir: options.outdir } : {}),
  });
  const raw = Object.fromEntries(CONFIG_KEYS.map((key) => [key, app.node.tryGetContext(key)]));
  const config = parseConfig(raw, repoRoot);
  const layers = await buildLayers(config.modelManifest);
  const stack = new PicSearchStack(app, config.stackName, {
    config,
    repoRoot,
    layers: {
      runtimeDir: RUNTIME_LAYER_DIR,
      modelDir: MODEL_LAYER_DIR,
      modelManifestInLambda: layers.modelManifestInLambda,
    },
    modelIdentity: embedderInfoOf((await loadManifest(config.modelManifest)).manifest, 'cpu'),
    description: 'pic-search: search a bucket of photos by image (VGG16 + Milvus)',
  });
  if (!layers.pretrained) {
    Annotations.of(stack).addWarningV2(
      'pic-search:seededModel',
      `${config.modelManifest} is not a pretrained model: search results will be meaningless. Run \`npm run model:fetch\` for the real VGG16.`,
    );
  }
  suppressNagFindings(stack);
  // cdk-nag 3 runs as a policy-validation plugin: any unacknowledged finding stops synthesis.
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  return { app, stack, config, layers };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(REPO_ROOT, 'infra/app.ts')) {
  try {
    const { app } = await createApp();
    app.synth();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
