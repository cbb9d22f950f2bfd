import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { EmbedderInfo } from '../domain/ports.ts';
import { sha256Of } from './model-files.ts';

/**
 * Preprocessing profiles. `keras-compat` reproduces the classic demo (Keras load_img: nearest-neighbour
 * squash to 224×224, EXIF orientation ignored, alpha dropped); `quality` applies EXIF orientation,
 * flattens alpha on white and resizes with an antialiasing filter.
 */
export const PreprocessProfile = z.enum(['keras-compat', 'quality']);
export type PreprocessProfile = z.infer<typeof PreprocessProfile>;

const CaffeNormalisation = z.object({
  kind: z.literal('caffe'),
  /** Per-channel means subtracted from 0..255 values, in the model's channel order. */
  mean: z.tuple([z.number(), z.number(), z.number()]),
});

const MeanStdNormalisation = z.object({
  kind: z.literal('mean-std'),
  /** Applied to 0..1 values, in the model's channel order. */
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
});

/** The pooling head after block 5 (src/model/embedding-head.ts); each ends L2-normalised. */
export const Descriptor = z.enum(['mac', 'gem', 'rmac']);
export type Descriptor = z.infer<typeof Descriptor>;

/**
 * Centre + projection applied to the graph's output, then L2 normalisation again. The file holds
 * little-endian float32: the mean (inputDimension values), then the projection row by row
 * (dimension × inputDimension).
 */
const Whitening = z.object({
  /** Relative to the manifest. */
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  inputDimension: z.number().int().positive(),
  dimension: z.number().int().positive(),
  /**
   * Each kept direction is scaled by (λ + shrinkage × mean λ)^−power (src/model/whitening.ts). Absent in
   * manifests written before they were recorded, which used 1 and 0.5. The matrix's SHA-256, part of the
   * index identity, already tells two shapes apart; these say which one it is.
   */
  shrinkage: z.number().nonnegative().optional(),
  power: z.number().positive().optional(),
  /** How it was learnt (method, calibration set); never from a user's library or queries. */
  learntOn: z.string().min(1),
});
export type Whitening = z.infer<typeof Whitening>;

/**
 * Scores at and above which a hit is labelled `duplicate` or `similar` (below: `weak`), calibrated on
 * the evaluation corpus by `npm run eval -- --calibrate` (docs/search-quality.md).
 */
export const MatchThresholds = z
  .object({
    duplicate: z.number().min(-1).max(1),
    similar: z.number().min(-1).max(1),
    calibratedOn: z.string(),
  })
  .refine((t) => t.similar <= t.duplicate, {
    message: 'the similar threshold must not exceed the duplicate one',
  });
export type MatchThresholds = z.infer<typeof MatchThresholds>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * How an int8 model was made from its fp32 source (`npm run model:quantize`, docs/models.md): what it
 * was quantized from and with, the quality gate it passed, and the speed measured on the machine that
 * made it (the automatic precision choice reads it).
 */
export const Quantization = z.object({
  /** The fp32 model it was made from: its file and SHA-256 (a mismatch refuses the int8 model at load). */
  source: z.object({ file: z.string().min(1), sha256: Sha256 }),
  tool: z.string().min(1),
  format: z.literal('QDQ'),
  weights: z.literal('int8, per channel'),
  activations: z.literal('uint8, per tensor'),
  calibration: z.object({
    method: z.string().min(1),
    images: z.array(z.string()).min(1),
    /** SHA-256 over the sorted `name sha256` lines of the calibration files. */
    sha256: Sha256,
  }),
  /** Scale and zero point of every quantized activation tensor, by tensor name. */
  parameters: z.record(z.string(), z.object({ scale: z.number().positive(), zeroPoint: z.number().int() })),
  /** The quality gate's figures (src/model/quality-gate.ts): `photos` of the `images` are indexed photos. */
  gate: z.object({
    images: z.number().int().positive(),
    photos: z.number().int().positive(),
    minCosine: z.number(),
    meanCosine: z.number(),
    copyMinCosine: z.number(),
    duplicate: z.number(),
    cosineBound: z.number(),
    recallAt1: z.object({
      fp32: z.number(),
      int8: z.number(),
      acrossPrecisions: z.number(),
      queries: z.number().int().positive(),
    }),
    maxRecallDrop: z.number(),
  }),
  speed: z.object({
    cpu: z.string(),
    flags: z.array(z.string()),
    threads: z.number().int().positive(),
    batch: z.number().int().positive(),
    fp32MsPerImage: z.number().positive(),
    int8MsPerImage: z.number().positive(),
  }),
});
export type Quantization = z.infer<typeof Quantization>;

const ManifestFields = z.object({
  /** Stable name stored with every vector, e.g. "vgg16-keras-imagenet" or "vgg16-seeded-42". */
  name: z.string().min(1),
  /** ONNX file, relative to the manifest. */
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** True only for weights trained on ImageNet; seeded weights say false, and the system says so. */
  pretrained: z.boolean(),
  source: z.string().min(1),
  input: z.object({
    name: z.string().min(1),
    layout: z.literal('NCHW'),
    size: z.number().int().positive(),
    colorOrder: z.enum(['RGB', 'BGR']),
    dataType: z.enum(['float32', 'float16']).default('float32'),
  }),
  normalisation: z.discriminatedUnion('kind', [CaffeNormalisation, MeanStdNormalisation]),
  profile: PreprocessProfile,
  output: z.object({
    name: z.string().min(1),
    /** Length of the stored vectors: the whitening's dimension when whitened, else the graph output's. */
    dimension: z.number().int().positive(),
    /** Manifests written before descriptors were configurable used max pooling: `mac`. */
    descriptor: Descriptor.default('mac'),
    l2Normalised: z.boolean(),
    whitening: Whitening.optional(),
  }),
  matchThresholds: MatchThresholds.optional(),
  /** Set on an int8 model made by `npm run model:quantize`; absent on fp32 and fp16 models. */
  quantization: Quantization.optional(),
});

export const ModelManifest = ManifestFields.superRefine((manifest, context) => {
  const { whitening, dimension } = manifest.output;
  if (whitening && whitening.dimension !== dimension) {
    context.addIssue({
      code: 'custom',
      path: ['output', 'whitening', 'dimension'],
      message: `the whitening projects to ${whitening.dimension} dimensions but output.dimension is ${dimension}`,
    });
  }
  if (whitening && whitening.dimension > whitening.inputDimension) {
    context.addIssue({
      code: 'custom',
      path: ['output', 'whitening', 'dimension'],
      message: `the whitening cannot project ${whitening.inputDimension} dimensions up to ${whitening.dimension}`,
    });
  }
});
export type ModelManifest = z.infer<typeof ModelManifest>;

/**
 * The model part of the index identity stored with every vector: the manifest's name, plus the
 * descriptor and whitening when they are not the classic recipe, so vectors of two heads on the same
 * weights never share an index (and classic indexes keep their identity).
 */
export function indexModelName(manifest: ModelManifest): string {
  const { descriptor, whitening } = manifest.output;
  if (descriptor === 'mac' && !whitening) return manifest.name;
  return `${manifest.name}+${descriptor}${whitening ? `-w${whitening.dimension}-${whitening.sha256.slice(0, 8)}` : ''}`;
}

/**
 * What an embedder of `manifest` on `provider` says of itself; also what the stack states for the
 * functions that never open the model (PIC_MODEL_IDENTITY).
 */
export function embedderInfoOf(
  manifest: ModelManifest,
  provider: string,
  profile: PreprocessProfile = manifest.profile,
): EmbedderInfo {
  return {
    model: indexModelName(manifest),
    profile,
    dimension: manifest.output.dimension,
    provider,
    pretrained: manifest.pretrained,
    ...(manifest.matchThresholds ? { matchThresholds: manifest.matchThresholds } : {}),
  };
}

export interface LoadedManifest {
  manifest: ModelManifest;
  /** Absolute path of the ONNX file. */
  modelPath: string;
  /** Read and checked at load when the manifest names one. */
  whitening?: WhiteningMatrix;
}

export interface WhiteningMatrix {
  mean: Float32Array;
  /** dimension × inputDimension, row-major. */
  projection: Float32Array;
  inputDimension: number;
  dimension: number;
}

export async function loadManifest(manifestPath: string): Promise<LoadedManifest> {
  const raw = JSON.parse(await readFile(manifestPath, 'utf8')) as unknown;
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`Invalid model manifest ${manifestPath}: ${z.prettifyError(parsed.error)}`);
  }
  const manifest = parsed.data;
  const loaded: LoadedManifest = { manifest, modelPath: resolve(dirname(manifestPath), manifest.file) };
  const spec = manifest.output.whitening;
  if (!spec) return loaded;
  return {
    ...loaded,
    whitening: await loadWhitening(resolve(dirname(manifestPath), spec.file), spec, manifestPath),
  };
}

async function loadWhitening(path: string, spec: Whitening, manifestPath: string): Promise<WhiteningMatrix> {
  const bytes = await readFile(path).catch((error: Error) => {
    throw new Error(
      `Invalid model manifest ${manifestPath}: cannot read its whitening file ${path}: ${error.message}`,
    );
  });
  const { inputDimension, dimension } = spec;
  const expected = 4 * inputDimension * (1 + dimension);
  if (bytes.length !== expected) {
    throw new Error(
      `Invalid model manifest ${manifestPath}: its whitening matrix does not fit the dimension: ${path} holds ` +
        `${bytes.length} bytes, but a mean of ${inputDimension} and a ${dimension}×${inputDimension} projection ` +
        `(float32) take ${expected}.`,
    );
  }
  if (sha256Of(bytes) !== spec.sha256) {
    throw new Error(`Invalid model manifest ${manifestPath}: ${path} does not match the whitening's sha256.`);
  }
  const values = new Float32Array(new Uint8Array(bytes).buffer);
  return {
    mean: values.subarray(0, inputDimension),
    projection: values.subarray(inputDimension),
    inputDimension,
    dimension,
  };
}
