import type { ModelManifest, PreprocessProfile } from '../model/manifest.ts';
import { type DecodeLimits, decodeRgb, type RgbImage, resizeRgb } from './decode.ts';
import { resizeNearestLikePillow } from './resize.ts';

/** What the model expects of its input, read from the manifest (never hard-coded). */
export interface TensorSpec {
  size: number;
  colorOrder: ModelManifest['input']['colorOrder'];
  normalisation: ModelManifest['normalisation'];
}

export function tensorSpecOf(manifest: ModelManifest): TensorSpec {
  return {
    size: manifest.input.size,
    colorOrder: manifest.input.colorOrder,
    normalisation: manifest.normalisation,
  };
}

/** Longest side of the WebP thumbnail the worker stores beside each image. */
export const THUMBNAIL_SIZE = 256;

/**
 * The one decode of an image, by profile, from which both the model's pixels and the thumbnail are made:
 * - `keras-compat`: Keras `load_img`: full decode, EXIF orientation ignored, alpha dropped.
 * - `quality`: EXIF orientation applied, alpha flattened on white, shrunk on load (lanczos3) until the
 *   shorter side is THUMBNAIL_SIZE (or `size`, if larger); never enlarged.
 * Throws ImageError for bad input.
 */
export function decodeForModel(
  bytes: Uint8Array,
  profile: PreprocessProfile,
  size: number,
  limits: DecodeLimits,
): Promise<RgbImage> {
  if (profile === 'keras-compat') return decodeRgb(bytes, { orientation: 'ignore', alpha: 'drop' }, limits);
  const shrinkTo = Math.max(THUMBNAIL_SIZE, size);
  return decodeRgb(bytes, { orientation: 'apply', alpha: 'flatten', shrinkTo }, limits);
}

/**
 * A decoded image → size×size 8-bit RGB pixels (HWC): `keras-compat` squashes with Pillow's
 * nearest-neighbour (Keras `load_img(path, target_size=(size, size))`), `quality` with lanczos3.
 */
export async function modelPixelsOf(
  image: RgbImage,
  profile: PreprocessProfile,
  size: number,
): Promise<Uint8Array> {
  if (image.width === size && image.height === size) return image.data;
  if (profile === 'quality') return resizeRgb(image, size, size);
  return resizeNearestLikePillow(image.data, image.width, image.height, 3, size, size);
}

/** Image bytes → the model's size×size RGB pixels (decodeForModel, then modelPixelsOf). */
export async function toModelPixels(
  bytes: Uint8Array,
  profile: PreprocessProfile,
  size: number,
  limits: DecodeLimits,
): Promise<Uint8Array> {
  return modelPixelsOf(await decodeForModel(bytes, profile, size, limits), profile, size);
}

/**
 * Per model channel, the value each 0..255 level maps to: caffe subtracts the mean from 0..255;
 * mean-std scales to 0..1 first. Channel c of the model reads RGB channel `source[c]`.
 */
export interface TensorWriter {
  readonly spec: TensorSpec;
  /** Values per image: 3 × size × size. */
  readonly length: number;
  /** Writes one image (size×size RGB HWC) at `out[offset…]`, channels first (NCHW) in the model's order. */
  write(pixels: Uint8Array, out: Float32Array, offset: number): void;
}

export function createTensorWriter(spec: TensorSpec): TensorWriter {
  const plane = spec.size * spec.size;
  const source = spec.colorOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const { normalisation } = spec;
  const lookup = [0, 1, 2].map((c) => {
    const table = new Float32Array(256);
    const mean = normalisation.mean[c] as number;
    for (let level = 0; level < 256; level++) {
      table[level] =
        normalisation.kind === 'caffe'
          ? level - mean
          : (level / 255 - mean) / (normalisation.std[c] as number);
    }
    return table;
  });
  return {
    spec,
    length: 3 * plane,
    write(pixels, out, offset) {
      if (pixels.length !== 3 * plane) {
        throw new Error(`expected ${spec.size}×${spec.size} RGB pixels, got ${pixels.length} bytes`);
      }
      for (let c = 0; c < 3; c++) {
        const table = lookup[c] as Float32Array;
        const from = source[c] as number;
        const base = offset + c * plane;
        for (let i = 0; i < plane; i++) out[base + i] = table[pixels[i * 3 + from] as number] as number;
      }
    },
  };
}
