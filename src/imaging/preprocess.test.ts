import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadManifest, type ModelManifest } from '../model/manifest.ts';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { DEFAULT_DECODE_LIMITS } from './decode.ts';
import { createTensorWriter, type TensorSpec, tensorSpecOf, toModelPixels } from './preprocess.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const photos = SAMPLE_PHOTOS_DIR;
const goldenDir = resolve(repoRoot, 'test/golden');

/**
 * Parity tolerance against the Pillow goldens, in 0..255 levels (= tensor units: caffe does not scale).
 * Different JPEG decoders (libjpeg-turbo in Pillow wheels, mozjpeg in sharp's libvips) may round IDCT
 * output differently by a level or two; the resize itself must pick the same pixels. Measured with
 * sharp 0.35.5 and Pillow 11.3.0: max 0, mean 0 (bit-identical) on all 27 fixture photos.
 */
const PARITY_MAX_LEVELS = 2;
const PARITY_MIN_IDENTICAL = 0.99;

interface GoldenImage {
  file: string;
  fileSha256: string;
  pixels: string;
  samples: [number, number, number, number][];
}

describe('createTensorWriter', () => {
  // 2×1 image: pixel 0 = (R 10, G 20, B 30), pixel 1 = (R 255, G 0, B 128).
  const pixels = Uint8Array.from([10, 20, 30, 255, 0, 128]);

  it('subtracts the caffe means in BGR order, channels first', () => {
    const spec: TensorSpec = {
      size: 1,
      colorOrder: 'BGR',
      normalisation: { kind: 'caffe', mean: [103.939, 116.779, 123.68] },
    };
    const writer = createTensorWriter({ ...spec, size: 1 });
    const out = new Float32Array(2 + 3);

    writer.write(pixels.subarray(3), out, 2);

    // B 128 − 103.939, G 0 − 116.779, R 255 − 123.68, after the 2-value offset.
    expect([...out.subarray(0, 2)]).toEqual([0, 0]);
    expect(out[2]).toBeCloseTo(24.061, 4);
    expect(out[3]).toBeCloseTo(-116.779, 4);
    expect(out[4]).toBeCloseTo(131.32, 4);
  });

  it('lays planes out as NCHW and scales for mean/std in RGB order', () => {
    const writer = createTensorWriter({
      size: 2,
      colorOrder: 'RGB',
      normalisation: { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    });
    const square = Uint8Array.from([...pixels, ...pixels]); // rows: [p0 p1], [p0 p1]
    const out = new Float32Array(writer.length);

    writer.write(square, out, 0);

    expect(writer.length).toBe(12);
    // R plane: (10/255 − 0.485)/0.229 = −1.94666…, (255/255 − 0.485)/0.229 = 2.24890…
    expect(out[0]).toBeCloseTo(-1.946656, 5);
    expect(out[1]).toBeCloseTo(2.248908, 5);
    expect(out[2]).toBeCloseTo(-1.946656, 5);
    // G plane starts at 4: (20/255 − 0.456)/0.224 = −1.68557…; B plane at 8: (128/255 − 0.406)/0.225 = 0.42649…
    expect(out[4]).toBeCloseTo(-1.685574, 5);
    expect(out[9]).toBeCloseTo(0.426492, 5);
  });

  it('rejects pixels of the wrong size', () => {
    const writer = createTensorWriter({
      size: 2,
      colorOrder: 'RGB',
      normalisation: { kind: 'caffe', mean: [0, 0, 0] },
    });
    expect(() => writer.write(pixels, new Float32Array(12), 0)).toThrow(/2×2 RGB/);
  });
});

describe('toModelPixels', () => {
  let manifest: ModelManifest;
  beforeAll(async () => {
    ({ manifest } = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json')));
  });

  it('carries known pixels through squash, normalisation and layout (keras-compat)', async () => {
    // 448×300: left half red, right half blue, squashed to 224×224 without keeping the aspect ratio.
    const left = {
      input: { create: { width: 224, height: 300, channels: 3, background: '#ff0000' } },
    } as const;
    const image = await sharp({ create: { width: 448, height: 300, channels: 3, background: '#0000ff' } })
      .composite([{ ...left, left: 0, top: 0 }])
      .png()
      .toBuffer();
    const spec = tensorSpecOf(manifest);
    const writer = createTensorWriter(spec);
    const tensor = new Float32Array(writer.length);

    writer.write(await toModelPixels(image, 'keras-compat', spec.size, DEFAULT_DECODE_LIMITS), tensor, 0);

    const plane = spec.size * spec.size;
    const at = (c: number, y: number, x: number) => tensor[c * plane + y * spec.size + x];
    // BGR planes: red pixel → (0 − 103.939, 0 − 116.779, 255 − 123.68); blue → (255 − 103.939, …, 0 − 123.68).
    expect([at(0, 10, 5), at(1, 10, 5), at(2, 10, 5)].map((v) => v?.toFixed(3))).toEqual([
      '-103.939',
      '-116.779',
      '131.320',
    ]);
    expect([at(0, 200, 200), at(1, 200, 200), at(2, 200, 200)].map((v) => v?.toFixed(3))).toEqual([
      '151.061',
      '-116.779',
      '-123.680',
    ]);
    // Column 111 samples source x = trunc(111.5 × 2) = 223 (red); column 112 samples 225 (blue).
    expect(at(2, 0, 111)).toBeCloseTo(131.32, 3);
    expect(at(2, 0, 112)).toBeCloseTo(-123.68, 3);
  });

  it('applies EXIF orientation in the quality profile only', async () => {
    const rotated = await readFile(resolve(photos, 'hot-air-balloons-exif-orientation-6.jpg'));
    const upright = await readFile(resolve(photos, 'hot-air-balloons.jpg'));
    const meanDifference = (a: Uint8Array, b: Uint8Array) =>
      a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] as number)), 0) / a.length;

    const quality = await toModelPixels(rotated, 'quality', 224, DEFAULT_DECODE_LIMITS);
    const reference = await toModelPixels(upright, 'quality', 224, DEFAULT_DECODE_LIMITS);
    const keras = await toModelPixels(rotated, 'keras-compat', 224, DEFAULT_DECODE_LIMITS);

    expect(meanDifference(quality, reference)).toBeLessThan(4);
    expect(meanDifference(keras, reference)).toBeGreaterThan(20);
  });

  it('flattens alpha on white in the quality profile and drops it in keras-compat', async () => {
    // Fully transparent green: the stored colour survives a drop; flattening shows the white behind it.
    const transparent = await sharp(Buffer.from([0, 255, 0, 0]), {
      raw: { width: 1, height: 1, channels: 4 },
    })
      .png()
      .toBuffer();

    const quality = await toModelPixels(transparent, 'quality', 2, DEFAULT_DECODE_LIMITS);
    const keras = await toModelPixels(transparent, 'keras-compat', 2, DEFAULT_DECODE_LIMITS);

    expect([...quality.subarray(0, 3)]).toEqual([255, 255, 255]);
    expect([...keras.subarray(0, 3)]).toEqual([0, 255, 0]);
  });
});

describe('keras-compat parity with Keras load_img + preprocess_input (Pillow goldens)', async () => {
  const golden = JSON.parse(await readFile(resolve(goldenDir, 'keras-compat.json'), 'utf8')) as {
    size: number;
    images: GoldenImage[];
  };

  it.each(golden.images.map((image) => [image.file, image] as const))('matches %s', async (_file, image) => {
    const { manifest } = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));
    const spec = tensorSpecOf(manifest);
    expect(spec.size).toBe(golden.size);
    const writer = createTensorWriter(spec);
    const reference = gunzipSync(await readFile(resolve(goldenDir, image.pixels)));

    const pixels = await toModelPixels(
      await readFile(resolve(photos, image.file)),
      'keras-compat',
      spec.size,
      DEFAULT_DECODE_LIMITS,
    );
    const tensor = new Float32Array(writer.length);
    writer.write(pixels, tensor, 0);

    let max = 0;
    let identical = 0;
    for (let i = 0; i < reference.length; i++) {
      const difference = Math.abs((reference[i] as number) - (pixels[i] as number));
      max = Math.max(max, difference);
      if (difference === 0) identical++;
    }
    expect(max).toBeLessThanOrEqual(PARITY_MAX_LEVELS);
    expect(identical / reference.length).toBeGreaterThanOrEqual(PARITY_MIN_IDENTICAL);
    // preprocess_input values computed by numpy, compared in the model's NCHW layout.
    const plane = spec.size * spec.size;
    for (const [c, y, x, value] of image.samples) {
      expect(Math.abs((tensor[c * plane + y * spec.size + x] as number) - value)).toBeLessThanOrEqual(
        PARITY_MAX_LEVELS + 1e-4,
      );
    }
  });
});
