import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { addWhitening } from './calibration.ts';
import { DEFAULT_DESCRIPTOR } from './descriptors.ts';
import { type Descriptor, ModelManifest, type PreprocessProfile } from './manifest.ts';
import { manifestPathFor, sha256OfFile, writeModelFiles } from './model-files.ts';
import { encodeModel } from './onnx-proto.ts';
import { buildVgg16, VGG16_INPUT_SIZE } from './vgg16.ts';

export const DEFAULT_SEED = 42;
export const SEEDED_MODEL_FILE = 'vgg16-seeded.onnx';
const GENERATOR_NAME = 'pic-search model:generate';
/** Bump the version when the generator's output changes, so stale generated files are regenerated. */
const GENERATOR = `${GENERATOR_NAME} v2`;
/** Keras `preprocess_input` caffe mode: BGR means on 0..255 values. */
export const CAFFE_BGR_MEAN: [number, number, number] = [103.939, 116.779, 123.68];

export function seededModelPath(modelDir: string): string {
  return join(modelDir, SEEDED_MODEL_FILE);
}

/** Whether a manifest describes a model this generator made (random weights), whatever its seed. */
export function isSeededManifest(manifest: ModelManifest): boolean {
  return manifest.source.startsWith(GENERATOR_NAME);
}

export function generateSeededModel(seed: number, descriptor: Descriptor = DEFAULT_DESCRIPTOR): Uint8Array {
  return encodeModel(buildVgg16({ seed, head: { kind: 'embedding', descriptor } }));
}

function seededManifest(
  seed: number,
  profile: PreprocessProfile,
  descriptor: Descriptor,
): Omit<ModelManifest, 'file' | 'sha256'> {
  return {
    name: `vgg16-seeded-${seed}`,
    pretrained: false,
    source: `${GENERATOR}, seed ${seed} (random He-uniform weights, not trained)`,
    input: { name: 'input', layout: 'NCHW', size: VGG16_INPUT_SIZE, colorOrder: 'BGR', dataType: 'float32' },
    normalisation: { kind: 'caffe', mean: CAFFE_BGR_MEAN },
    profile,
    output: { name: 'embedding', dimension: 512, descriptor, l2Normalised: true },
  };
}

export interface SeededModelOptions {
  modelDir: string;
  seed?: number;
  profile?: PreprocessProfile;
  descriptor?: Descriptor;
  /** Learn a whitening to this many dimensions from samples/calibration (src/model/calibration.ts). */
  whitening?: number;
}

export interface SeededModelFiles {
  manifestPath: string;
  manifest: ModelManifest;
  /** Whether this call wrote the files (false: valid ones were already there). */
  generated: boolean;
}

export async function writeSeededModel(options: SeededModelOptions): Promise<SeededModelFiles> {
  const { modelDir, seed = DEFAULT_SEED, profile = 'quality', descriptor = DEFAULT_DESCRIPTOR } = options;
  const bytes = generateSeededModel(seed, descriptor);
  const written = await writeModelFiles(
    seededModelPath(modelDir),
    bytes,
    seededManifest(seed, profile, descriptor),
  );
  if (!options.whitening) return { ...written, generated: true };
  const manifest = await addWhitening(written.manifestPath, options.whitening);
  return { manifestPath: written.manifestPath, manifest, generated: true };
}

/**
 * Returns the seeded model in `modelDir`, generating it only when it is missing, was made for another
 * seed, profile or generator version, or its file no longer matches the manifest's SHA-256.
 */
export async function ensureSeededModel(options: SeededModelOptions): Promise<SeededModelFiles> {
  const { modelDir, seed = DEFAULT_SEED, profile = 'quality', descriptor = DEFAULT_DESCRIPTOR } = options;
  const manifestPath = manifestPathFor(seededModelPath(modelDir));
  const existing = await readValidManifest(manifestPath);
  const wanted = seededManifest(seed, profile, descriptor);
  if (
    existing &&
    existing.name === wanted.name &&
    existing.source === wanted.source &&
    existing.profile === profile &&
    existing.output.descriptor === descriptor &&
    existing.output.whitening?.dimension === options.whitening &&
    (await fileMatches(join(modelDir, existing.file), existing.sha256))
  ) {
    return { manifestPath, manifest: existing, generated: false };
  }
  return writeSeededModel({ modelDir, seed, profile });
}

async function readValidManifest(path: string): Promise<ModelManifest | undefined> {
  try {
    return ModelManifest.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch {
    return undefined;
  }
}

async function fileMatches(path: string, sha256: string): Promise<boolean> {
  try {
    await stat(path);
    return (await sha256OfFile(path)) === sha256;
  } catch {
    return false;
  }
}
