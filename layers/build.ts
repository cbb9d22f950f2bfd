import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifest } from '../src/model/manifest.ts';
import { sha256OfFile } from '../src/model/model-files.ts';
import { int8ManifestPathFor, int8ModelPathFor } from '../src/model/precision.ts';

/**
 * Builds the two Lambda layers from what is installed in node_modules:
 * - runtime: onnxruntime-node (linux-x64 CPU binaries only) + sharp for linux-x64 glibc, plus the few
 *   pure-JS packages they load at run time. Under nodejs/node_modules so Lambda resolves them from /opt.
 * - model: the ONNX extractor and its manifest under model/, i.e. /opt/model/ in the function.
 * Fails when a layer, or the layers plus the largest function bundle we allow for, pass Lambda's
 * 250 MB unzipped limit (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html),
 * so a size regression fails the build and the tests rather than `cdk deploy`.
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RUNTIME_LAYER_DIR = join(REPO_ROOT, 'layers/runtime/build');
export const MODEL_LAYER_DIR = join(REPO_ROOT, 'layers/model/build');
/** Lambda mounts layers at /opt, so the model layer's manifest is read from here in the function. */
export const MODEL_MOUNT = '/opt/model';

/** Lambda's limit for a function and all its layers, unzipped: 250 MB. */
export const LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024;
/** Room kept for the function's own bundle when checking the layers alone (bundles are ~1–6 MB). */
export const FUNCTION_BUNDLE_ALLOWANCE_BYTES = 20 * 1024 * 1024;

const SHARP_PLATFORM_PACKAGES = ['@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64'];

/**
 * What goes into the runtime layer: package → the paths inside it we need. onnxruntime-node's own
 * dependencies adm-zip and global-agent are left out: only its install script (CUDA download) uses them.
 * sharp loads @img/colour, detect-libc and semver at run time, so they come along.
 */
const RUNTIME_PACKAGES: Record<string, string[]> = {
  'onnxruntime-node': ['package.json', 'dist', 'LICENSE', 'bin/napi-v6/linux/x64'],
  'onnxruntime-common': ['package.json', 'dist', 'LICENSE'],
  sharp: ['package.json', 'dist', 'LICENSE'],
  '@img/colour': ['.'],
  '@img/sharp-linux-x64': ['.'],
  '@img/sharp-libvips-linux-x64': ['.'],
  'detect-libc': ['.'],
  semver: ['.'],
};

export interface LayerSize {
  name: string;
  bytes: number;
}

export interface LayerBuild {
  runtime: LayerSize;
  model: LayerSize;
  /** Path of the manifest inside the function, for PIC_MODEL_MANIFEST. */
  modelManifestInLambda: string;
  /** False for the seeded test model: its vectors do not mean anything. */
  pretrained: boolean;
}

export class LambdaSizeError extends Error {
  override name = 'LambdaSizeError';
}

export function directorySize(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  let total = 0;
  for (const entry of readdirSync(path)) total += directorySize(join(path, entry));
  return total;
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Throws when the parts together pass `limit`, naming each part's size. */
export function assertWithinLambdaLimit(parts: LayerSize[], limit = LAMBDA_UNZIPPED_LIMIT_BYTES): number {
  const total = parts.reduce((sum, part) => sum + part.bytes, 0);
  if (total > limit) {
    const detail = parts.map((part) => `${part.name} ${megabytes(part.bytes)}`).join(' + ');
    throw new LambdaSizeError(
      `${detail} = ${megabytes(total)}, over Lambda's ${megabytes(limit)} unzipped limit for a function and its layers`,
    );
  }
  return total;
}

function copyPackage(nodeModules: string, pkg: string, paths: string[], out: string): void {
  const from = join(nodeModules, pkg);
  if (!existsSync(join(from, 'package.json'))) throw new Error(`${pkg} is not installed in ${nodeModules}`);
  for (const path of paths) {
    const source = join(from, path);
    if (path === 'LICENSE' && !existsSync(source)) continue;
    cpSync(source, join(out, pkg, path), { recursive: true, dereference: true });
  }
}

/**
 * sharp picks its binaries from optional packages per platform. npm only installs the host's, so on a
 * machine that is not linux-x64 glibc we fetch Lambda's into a scratch folder, as sharp's docs describe
 * (https://sharp.pixelplumbing.com/install#cross-platform).
 */
function sharpPlatformModules(nodeModules: string): string {
  if (SHARP_PLATFORM_PACKAGES.every((pkg) => existsSync(join(nodeModules, pkg, 'package.json')))) {
    return nodeModules;
  }
  const scratch = mkdtempSync(join(tmpdir(), 'pic-search-sharp-'));
  const { version } = JSON.parse(readFileSync(join(nodeModules, 'sharp/package.json'), 'utf8')) as {
    version: string;
  };
  execFileSync(
    'npm',
    [
      'install',
      '--no-save',
      '--os=linux',
      '--cpu=x64',
      '--libc=glibc',
      '--prefix',
      scratch,
      `sharp@${version}`,
    ],
    { stdio: 'inherit' },
  );
  return join(scratch, 'node_modules');
}

export function buildRuntimeLayer(
  outDir = RUNTIME_LAYER_DIR,
  nodeModules = join(REPO_ROOT, 'node_modules'),
): LayerSize {
  rmSync(outDir, { recursive: true, force: true });
  const target = join(outDir, 'nodejs/node_modules');
  mkdirSync(target, { recursive: true });
  const sharpModules = sharpPlatformModules(nodeModules);
  for (const [pkg, paths] of Object.entries(RUNTIME_PACKAGES)) {
    copyPackage(SHARP_PLATFORM_PACKAGES.includes(pkg) ? sharpModules : nodeModules, pkg, paths, target);
  }
  return { name: 'runtime layer', bytes: directorySize(outDir) };
}

/** Copies the manifest and its ONNX file (checked against the manifest's SHA-256) into model/. */
export async function buildModelLayer(
  manifestPath: string,
  outDir = MODEL_LAYER_DIR,
): Promise<LayerSize & { manifestInLambda: string; pretrained: boolean }> {
  const { manifest, modelPath } = await loadManifest(manifestPath);
  const actual = await sha256OfFile(modelPath);
  if (actual !== manifest.sha256) {
    throw new Error(
      `${modelPath} does not match ${manifestPath} (sha256 ${actual}, manifest says ${manifest.sha256})`,
    );
  }
  rmSync(outDir, { recursive: true, force: true });
  const target = join(outDir, 'model');
  mkdirSync(target, { recursive: true });
  cpSync(manifestPath, join(target, basename(manifestPath)));
  // The manifest names its model relative to itself; keep that relation inside the layer.
  const relativeModel = relative(dirname(manifestPath), modelPath);
  if (relativeModel.startsWith('..'))
    throw new Error(`${manifestPath}: the model file must sit beside or below the manifest`);
  cpSync(modelPath, join(target, relativeModel));
  // The whitening applied after the graph (docs/search-quality.md) sits beside the manifest too.
  const whitening = manifest.output.whitening?.file;
  if (whitening) {
    if (relative(dirname(manifestPath), resolve(dirname(manifestPath), whitening)).startsWith('..'))
      throw new Error(`${manifestPath}: the whitening file must sit beside or below the manifest`);
    cpSync(resolve(dirname(manifestPath), whitening), join(target, whitening));
  }
  // The int8 model made by `npm run model:quantize`, when there is one: the search function takes it on
  // a processor with VNNI or AMX (PIC_MODEL_PRECISION=auto, chooseModel), checking it against the fp32 file.
  const int8Manifest = int8ManifestPathFor(modelPath);
  if (existsSync(int8Manifest)) {
    cpSync(int8Manifest, join(target, dirname(relativeModel), basename(int8Manifest)));
    cpSync(
      int8ModelPathFor(modelPath),
      join(target, dirname(relativeModel), basename(int8ModelPathFor(modelPath))),
    );
  }
  return {
    name: 'model layer',
    bytes: directorySize(outDir),
    manifestInLambda: `${MODEL_MOUNT}/${basename(manifestPath)}`,
    pretrained: manifest.pretrained,
  };
}

export async function buildLayers(manifestPath: string): Promise<LayerBuild> {
  const runtime = buildRuntimeLayer();
  const model = await buildModelLayer(manifestPath);
  const layers = [runtime, model];
  for (const layer of layers) assertWithinLambdaLimit([layer]);
  assertWithinLambdaLimit([
    ...layers,
    { name: 'function bundle allowance', bytes: FUNCTION_BUNDLE_ALLOWANCE_BYTES },
  ]);
  return {
    runtime,
    model: { name: model.name, bytes: model.bytes },
    modelManifestInLambda: model.manifestInLambda,
    pretrained: model.pretrained,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const manifest = resolve(process.argv[2] ?? 'models/vgg16-pretrained.manifest.json');
  if (!existsSync(manifest)) {
    console.error(
      `${manifest} does not exist: run \`npm run model:fetch\`, or pass a manifest (e.g. models/vgg16-seeded.manifest.json).`,
    );
    process.exit(1);
  }
  const built = await buildLayers(manifest);
  console.log(
    `runtime layer ${megabytes(built.runtime.bytes)} → ${relative(process.cwd(), RUNTIME_LAYER_DIR)}`,
  );
  console.log(`model layer   ${megabytes(built.model.bytes)} → ${relative(process.cwd(), MODEL_LAYER_DIR)}`);
}
