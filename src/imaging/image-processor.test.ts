import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { PreprocessProfile } from '../model/manifest.ts';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { DEFAULT_DECODE_LIMITS } from './decode.ts';
import { SharpImageProcessor } from './image-processor.ts';
import { type TensorSpec, THUMBNAIL_SIZE } from './preprocess.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const tensor: TensorSpec = {
  size: 224,
  colorOrder: 'BGR',
  normalisation: { kind: 'caffe', mean: [103.939, 116.779, 123.68] },
};
const processorOf = (profile: PreprocessProfile) =>
  new SharpImageProcessor({ tensor, profile, limits: DEFAULT_DECODE_LIMITS });

/** Mean absolute difference of two equally sized RGB renderings, in 0..255 levels. */
async function meanDifference(a: Uint8Array, b: Uint8Array): Promise<number> {
  const [x, y] = (await Promise.all([a, b].map((image) => sharp(image).removeAlpha().raw().toBuffer()))) as [
    Buffer,
    Buffer,
  ];
  expect(x.length).toBe(y.length);
  return x.reduce((sum, v, i) => sum + Math.abs(v - (y[i] as number)), 0) / x.length;
}

describe('SharpImageProcessor', () => {
  it.each(['quality', 'keras-compat'] as const)(
    'gives the same tensor with or without a thumbnail (%s), so a query finds its own ingested photo',
    async (profile) => {
      const photo = await readFile(join(SAMPLE_PHOTOS_DIR, 'chimpanzee.jpg'));
      const processor = processorOf(profile);

      const alone = await processor.process(photo, { thumbnail: false });
      const both = await processor.process(photo, { thumbnail: true });

      expect(alone.thumbnail).toBeUndefined();
      expect(both.tensor).toEqual(alone.tensor);
      expect(both.tensor.length).toBe(3 * 224 * 224);
    },
  );

  it.each(['quality', 'keras-compat'] as const)(
    'makes an upright WebP thumbnail of an EXIF-rotated photo from the same decode (%s)',
    async (profile) => {
      const photo = await readFile(join(SAMPLE_PHOTOS_DIR, 'hot-air-balloons-exif-orientation-6.jpg'));
      // What libvips' autorot gives: the reference the worker used to make on its own decode.
      const reference = await sharp(photo)
        .autoOrient()
        .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside' })
        .png()
        .toBuffer();

      const { thumbnail } = await processorOf(profile).process(photo, { thumbnail: true });

      const meta = await sharp(thumbnail).metadata();
      expect(meta.format).toBe('webp');
      expect([meta.width, meta.height]).toEqual([256, 164]);
      expect(await meanDifference(thumbnail as Uint8Array, reference)).toBeLessThan(6);
    },
  );

  it('refuses a corrupt file with a typed reason and makes nothing', async () => {
    const photo = await readFile(join(SAMPLE_PHOTOS_DIR, 'chimpanzee.jpg'));

    const result = processorOf('quality').process(photo.subarray(0, photo.length / 3), { thumbnail: true });

    await expect(result).rejects.toMatchObject({ name: 'ImageError', kind: 'corrupt' });
  });
});

describe('sharp stays inside the imaging adapter', () => {
  it('is imported by src/imaging/decode.ts alone among the product sources', async () => {
    const importers: string[] = [];
    for (const root of ['src', 'local', 'functions']) {
      const entries = await readdir(join(repoRoot, root), { recursive: true, withFileTypes: true });
      for (const entry of entries) {
        if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) continue;
        const path = join(entry.parentPath, entry.name);
        if (/from 'sharp'|import\('sharp'\)/.test(await readFile(path, 'utf8')))
          importers.push(relative(repoRoot, path));
      }
    }
    expect(importers).toEqual(['src/imaging/decode.ts']);
  });
});
