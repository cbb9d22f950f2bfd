import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';

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

export const ModelManifest = z.object({
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
    dimension: z.number().int().positive(),
    pooling: z.enum(['max', 'avg']),
    l2Normalised: z.boolean(),
  }),
});
export type ModelManifest = z.infer<typeof ModelManifest>;

export interface LoadedManifest {
  manifest: ModelManifest;
  /** Absolute path of the ONNX file. */
  modelPath: string;
}

export async function loadManifest(manifestPath: string): Promise<LoadedManifest> {
  const raw = JSON.parse(await readFile(manifestPath, 'utf8')) as unknown;
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`Invalid model manifest ${manifestPath}: ${z.prettifyError(parsed.error)}`);
  }
  return { manifest: parsed.data, modelPath: resolve(dirname(manifestPath), parsed.data.file) };
}
