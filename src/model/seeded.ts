import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { addWhitening, CALIBRATION_DIR } from './calibration.ts';
import { DEFAULT_DESCRIPTOR, DEFAULT_SEEDED_WHITENING, whiteningShape } from './descriptors.ts';
import {
  type Descriptor,
  type MatchThresholds,
  ModelManifest,
  type PreprocessProfile,
  type Whitening,
} from './manifest.ts';
import { manifestPathFor, sha256OfFile, writeModelFiles } from './model-files.ts';
import { encodeModel } from './onnx-proto.ts';
import { int8ManifestPathFor, int8ModelPathFor, int8RefusalPathFor } from './precision.ts';
import { buildVgg16, VGG16_INPUT_SIZE } from './vgg16.ts';
import type { WhiteningShape } from './whitening.ts';

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

type Precision = 'fp32' | 'int8';

/**
 * Match thresholds of seed 42 with the `quality` profile, per descriptor (and whitening) and precision,
 * calibrated by `npm run eval` on that precision's own answers (docs/search-quality.md): `duplicate` at
 * ≥ 99 % precision of the top hit, `similar` where the top hit is right more often than not. int8 moves
 * scores, so it has its own; only the default head gets an int8 model (the quality gate refuses the
 * others'). Other seeds, profiles and precisions are uncalibrated: their hits are labelled `weak`.
 */
const SEED_42_MATCH_THRESHOLDS: Partial<
  Record<string, Partial<Record<Precision, { duplicate: number; similar: number }>>>
> = {
  mac: { fp32: { duplicate: 0.9931, similar: 0.9864 } },
  gem: { fp32: { duplicate: 0.9984, similar: 0.9945 } },
  rmac: { fp32: { duplicate: 0.9964, similar: 0.9908 } },
  'gem-w256': {
    fp32: { duplicate: 0.6318, similar: 0.2142 },
    int8: { duplicate: 0.6332, similar: 0.2194 },
  },
};

function seed42Thresholds(
  profile: PreprocessProfile,
  descriptor: Descriptor,
  whitening: number | undefined,
  precision: Precision,
): MatchThresholds | undefined {
  if (profile !== 'quality') return undefined;
  const thresholds =
    SEED_42_MATCH_THRESHOLDS[`${descriptor}${whitening ? `-w${whitening}` : ''}`]?.[precision];
  return thresholds && { ...thresholds, calibratedOn: `npm run eval (${precision}), docs/search-quality.md` };
}

/**
 * The thresholds a seeded model's int8 model records (`npm run model:quantize`); undefined for other
 * models, whose int8 thresholds `npm run eval -- --manifest … --precisions int8 --calibrate` measures.
 */
export function seededInt8Thresholds(fp32: ModelManifest): MatchThresholds | undefined {
  if (!isSeededManifest(fp32) || fp32.name !== `vgg16-seeded-${DEFAULT_SEED}`) return undefined;
  return seed42Thresholds(fp32.profile, fp32.output.descriptor, fp32.output.whitening?.dimension, 'int8');
}

function seededManifest(
  seed: number,
  profile: PreprocessProfile,
  descriptor: Descriptor,
  whitening: number | undefined,
): Omit<ModelManifest, 'file' | 'sha256'> {
  const thresholds =
    seed === DEFAULT_SEED ? seed42Thresholds(profile, descriptor, whitening, 'fp32') : undefined;
  return {
    name: `vgg16-seeded-${seed}`,
    pretrained: false,
    source: `${GENERATOR}, seed ${seed} (random He-uniform weights, not trained)`,
    input: { name: 'input', layout: 'NCHW', size: VGG16_INPUT_SIZE, colorOrder: 'BGR', dataType: 'float32' },
    normalisation: { kind: 'caffe', mean: CAFFE_BGR_MEAN },
    profile,
    output: { name: 'embedding', dimension: 512, descriptor, l2Normalised: true },
    ...(thresholds ? { matchThresholds: thresholds } : {}),
  };
}

export interface SeededModelOptions {
  modelDir: string;
  seed?: number;
  profile?: PreprocessProfile;
  descriptor?: Descriptor;
  /** Learn a whitening to this many dimensions from samples/calibration (src/model/calibration.ts). */
  whitening?: number;
  /** Learn it even when the repository ships the one this seed, profile and descriptor learn. */
  learnWhitening?: boolean;
}

/**
 * The whitening seed 42 learns with the `quality` profile, shipped for the default descriptor so that
 * preparing the default model takes a second instead of embedding 270 calibration views (minutes on a
 * busy 2-core machine). `npm run model:generate -- --learn-whitening` learns it again.
 */
async function shippedWhitening(
  seed: number,
  profile: PreprocessProfile,
  descriptor: Descriptor,
  shape: WhiteningShape,
): Promise<{ bytes: Uint8Array; from: string } | undefined> {
  if (seed !== DEFAULT_SEED || profile !== 'quality') return undefined;
  const { dimension, shrinkage, power } = shape;
  const from = `samples/calibration/whitening/vgg16-seeded-${seed}-${descriptor}-${dimension}-s${shrinkage}-p${power}.f32`;
  const bytes = await readFile(join(CALIBRATION_DIR, '..', '..', from)).catch(() => undefined);
  return bytes ? { bytes, from } : undefined;
}

/**
 * The whitening dimension asked for; by default DEFAULT_SEEDED_WHITENING for the default seed, profile and
 * descriptor (measured, and shipped: a second to prepare) and none for others, whose whitening would
 * take minutes to learn unasked (`--whitening 256` learns it).
 */
function whiteningFor(
  options: SeededModelOptions,
  seed: number,
  profile: PreprocessProfile,
  descriptor: Descriptor,
): number | undefined {
  const isDefault = seed === DEFAULT_SEED && profile === 'quality' && descriptor === DEFAULT_DESCRIPTOR;
  return (options.whitening ?? (isDefault ? DEFAULT_SEEDED_WHITENING : 0)) || undefined;
}

export interface SeededModelFiles {
  manifestPath: string;
  manifest: ModelManifest;
  /** Whether this call wrote the files (false: valid ones were already there). */
  generated: boolean;
}

export async function writeSeededModel(options: SeededModelOptions): Promise<SeededModelFiles> {
  const { modelDir, seed = DEFAULT_SEED, profile = 'quality', descriptor = DEFAULT_DESCRIPTOR } = options;
  const whitening = whiteningFor(options, seed, profile, descriptor);
  const bytes = generateSeededModel(seed, descriptor);
  // An int8 model beside (or the gate's refusal of one) describes the files replaced here: remove it, so
  // that it is made again (`npm start` does) rather than refused at every start.
  const fp32Path = seededModelPath(modelDir);
  for (const stale of [
    int8ModelPathFor(fp32Path),
    int8ManifestPathFor(fp32Path),
    int8RefusalPathFor(fp32Path),
  ])
    await rm(stale, { force: true });
  const written = await writeModelFiles(
    fp32Path,
    bytes,
    seededManifest(seed, profile, descriptor, whitening),
  );
  if (!whitening) return { ...written, generated: true };
  const shape = whiteningShape(whitening);
  const shipped = options.learnWhitening
    ? undefined
    : await shippedWhitening(seed, profile, descriptor, shape);
  const manifest = await addWhitening(written.manifestPath, shape, shipped);
  return { manifestPath: written.manifestPath, manifest, generated: true };
}

/**
 * Returns the seeded model in `modelDir`, generating it only when it is missing, was made for another
 * seed, profile, descriptor, whitening or generator version, or its file no longer matches the manifest's SHA-256.
 */
export async function ensureSeededModel(options: SeededModelOptions): Promise<SeededModelFiles> {
  const { modelDir, seed = DEFAULT_SEED, profile = 'quality', descriptor = DEFAULT_DESCRIPTOR } = options;
  const whitening = whiteningFor(options, seed, profile, descriptor);
  const manifestPath = manifestPathFor(seededModelPath(modelDir));
  const existing = await readValidManifest(manifestPath);
  const wanted = seededManifest(seed, profile, descriptor, whitening);
  if (
    existing &&
    existing.name === wanted.name &&
    existing.source === wanted.source &&
    existing.profile === profile &&
    existing.output.descriptor === descriptor &&
    existing.output.whitening?.dimension === whitening &&
    (!whitening || sameStrength(existing.output.whitening, whiteningShape(whitening))) &&
    JSON.stringify(existing.matchThresholds) === JSON.stringify(wanted.matchThresholds) &&
    (await fileMatches(join(modelDir, existing.file), existing.sha256))
  ) {
    return { manifestPath, manifest: existing, generated: false };
  }
  return writeSeededModel({ ...options, seed, profile, descriptor, whitening: whitening ?? 0 });
}

function sameStrength(recorded: Whitening | undefined, wanted: WhiteningShape): boolean {
  return recorded?.shrinkage === wanted.shrinkage && recorded.power === wanted.power;
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
