import { resolve } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildLayers, MODEL_LAYER_DIR, REPO_ROOT, RUNTIME_LAYER_DIR } from '../layers/build.ts';
import { CONFIG_KEYS, parseConfig } from './config.ts';
import { suppressNagFindings } from './nag.ts';
import { PicSearchStack } from './stack.ts';

/**
 * Builds the app from CDK context: validates the configuration, (re)builds the Lambda layers from
 * node_modules and the chosen model (a second or two; it fails when they pass Lambda's size limit),
 * then composes the stack with cdk-nag's AwsSolutions checks applied.
 */
export async function createApp(context: Record<string, unknown> = {}, outdir?: string) {
  const app = new App({ context, ...(outdir ? { outdir } : {}) });
  const raw = Object.fromEntries(CONFIG_KEYS.map((key) => [key, app.node.tryGetContext(key)]));
  const config = parseConfig(raw, REPO_ROOT);
  const layers = await buildLayers(config.modelManifest);
  const stack = new PicSearchStack(app, config.stackName, {
    config,
    repoRoot: REPO_ROOT,
    layers: {
      runtimeDir: RUNTIME_LAYER_DIR,
      modelDir: MODEL_LAYER_DIR,
      modelManifestInLambda: layers.modelManifestInLambda,
    },
    description: 'pic-search: search a bucket of photos by image (VGG16 + Milvus)',
  });
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
