import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageError } from '../domain/errors.ts';
import { type LoadedManifest, loadManifest } from '../model/manifest.ts';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { OnnxEmbedder } from './onnx-embedder.ts';
import { maxDifference, vectorOf } from './test-support.ts';
import { dot } from './vectors.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const photos = SAMPLE_PHOTOS_DIR;

/** Fixture photos and the original each declared variant copies (sources.csv `variant_of`). */
async function readPhotos() {
  const csv = await readFile(resolve(photos, 'sources.csv'), 'utf8');
  const originalOf = new Map(
    csv
      .split('\n')
      .slice(1)
      .map((line) => line.split(','))
      .filter(([file, variantOf]) => file && variantOf)
      .map(([file, variantOf]) => [file as string, variantOf as string]),
  );
  const names = (await readdir(photos)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  const bytes = await Promise.all(names.map((name) => readFile(resolve(photos, name))));
  return { names, bytes, groupOf: (name: string) => originalOf.get(name) ?? name };
}

describe('OnnxEmbedder with the seeded VGG16', () => {
  let loaded: LoadedManifest;
  let embedder: OnnxEmbedder;
  let pizza: Buffer;
  let rabbit: Buffer;

  beforeAll(async () => {
    loaded = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));
    embedder = await OnnxEmbedder.create(loaded, { batchSize: 4 });
    pizza = await readFile(resolve(photos, 'pizza.jpg'));
    rabbit = await readFile(resolve(photos, 'lop-eared-rabbit.jpg'));
  });
  afterAll(async () => {
    await embedder?.close();
  });

  it('describes itself from the manifest, descriptor and whitening in the model identity', () => {
    expect(embedder.info).toEqual({
      model: expect.stringMatching(/^vgg16-seeded-42\+gem-w256-[0-9a-f]{8}$/),
      profile: loaded.manifest.profile,
      dimension: 256,
      provider: 'cpu',
      pretrained: false,
      matchThresholds: loaded.manifest.matchThresholds,
    });
  });

  it('gives unit-length whitened 256-d vectors, the same for a batch and for single images', async () => {
    const batch = await embedder.embed([pizza, rabbit]);
    const single = await embedder.embedOne(pizza);

    const [first, second] = batch.map(vectorOf) as [Float32Array, Float32Array];
    expect(first.length).toBe(256);
    expect(Math.hypot(...first)).toBeCloseTo(1, 5);
    expect(Math.hypot(...second)).toBeCloseTo(1, 5);
    expect(maxDifference(first, single.vector)).toBeLessThanOrEqual(1e-5);
    expect(dot(first, second)).toBeLessThan(0.9999);
    expect(single.timings.decodeMs).toBeGreaterThan(0);
    expect(single.timings.embedMs).toBeGreaterThan(0);
  });

  it('is deterministic and gives the same bytes the same vector in another instance', async () => {
    // Asking for CUDA where its libraries are absent (npm installs skip them) falls back to the CPU.
    const other = await OnnxEmbedder.create(loaded, {
      batchSize: 1,
      intraOpNumThreads: 1,
      executionProviders: ['cuda'],
    });
    try {
      expect(other.info.provider).toBe('cpu');
      const again = await embedder.embedOne(rabbit);
      const twice = await embedder.embedOne(rabbit);
      const elsewhere = await other.embedOne(Buffer.from(rabbit));

      expect(maxDifference(again.vector, twice.vector)).toBe(0);
      expect(maxDifference(again.vector, elsewhere.vector)).toBeLessThanOrEqual(1e-5);
    } finally {
      await other.close();
    }
  });

  it('reports bad images in place and still embeds the rest of the batch', async () => {
    const truncated = pizza.subarray(0, 2000);

    const outcomes = await embedder.embed([
      Buffer.alloc(0),
      pizza,
      Buffer.from('not an image'),
      truncated,
      rabbit,
    ]);

    expect(outcomes.map((o) => (o.ok ? 'ok' : o.code))).toEqual([
      'empty',
      'ok',
      'not_an_image',
      'corrupt',
      'ok',
    ]);
    expect(outcomes.every((o) => o.ok || o.reason.length > 10)).toBe(true);
    const single = await embedder.embedOne(rabbit);
    expect(maxDifference(vectorOf(outcomes[4]), single.vector)).toBeLessThanOrEqual(1e-5);
  });

  it('throws a typed ImageError from embedOne', async () => {
    await expect(embedder.embedOne(Buffer.from('GIF89a broken'))).rejects.toBeInstanceOf(ImageError);
  });

  it('finds near duplicates among the fixture photos: exact copies and 50% resized copies', async () => {
    const { names, bytes, groupOf } = await readPhotos();
    const halves = await Promise.all(
      bytes.map(async (b) => {
        // Upright first: sharp drops the EXIF orientation tag when it re-encodes.
        const { width, height } = (await sharp(b).metadata()).autoOrient;
        return sharp(b)
          .autoOrient()
          .resize(Math.round(width / 2), Math.round(height / 2))
          .jpeg({ quality: 90 })
          .toBuffer();
      }),
    );

    const originals = (await embedder.embed(bytes)).map(vectorOf);
    const resized = (await embedder.embed(halves)).map(vectorOf);
    const copy = await embedder.embedOne(Buffer.from(bytes[0] as Buffer));

    expect(dot(copy.vector, originals[0] as Float32Array)).toBeGreaterThanOrEqual(0.9999);
    const misses = resized.flatMap((query, i) => {
      const scores = originals.map((original) => dot(query, original));
      const best = scores.indexOf(Math.max(...scores));
      return groupOf(names[best] as string) === groupOf(names[i] as string)
        ? []
        : [`${names[i]} → ${names[best]}`];
    });
    expect(misses).toEqual([]);
  });
});

describe('OnnxEmbedder start-up checks', () => {
  it('refuses a model whose output dimension differs from the manifest', async () => {
    const loaded = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));
    const { whitening: _, ...output } = loaded.manifest.output;
    const wrong = {
      modelPath: loaded.modelPath,
      manifest: { ...loaded.manifest, output: { ...output, dimension: 128 } },
    };

    await expect(OnnxEmbedder.create(wrong)).rejects.toThrow(/512-dimensional.*says 128/);
  });

  it("refuses a whitening that does not take the model's descriptors", async () => {
    const loaded = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));
    const whitening = {
      mean: new Float32Array(4),
      projection: new Float32Array(8),
      inputDimension: 4,
      dimension: 2,
    };
    const wrong = {
      ...loaded,
      whitening,
      manifest: { ...loaded.manifest, output: { ...loaded.manifest.output, dimension: 2 } },
    };

    await expect(OnnxEmbedder.create(wrong)).rejects.toThrow(
      /512-dimensional descriptors; its whitening expects 4/,
    );
  });

  it('refuses a model file whose SHA-256 differs from its manifest, naming the file', async () => {
    const loaded = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));
    const dir = await mkdtemp(join(tmpdir(), 'pic-swapped-'));
    try {
      const bytes = await readFile(loaded.modelPath);
      bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 1; // one weight bit
      const modelPath = join(dir, 'vgg16-seeded.onnx');
      await writeFile(modelPath, bytes);

      const opening = OnnxEmbedder.create({ ...loaded, modelPath });

      await expect(opening).rejects.toMatchObject({ name: 'ModelError', kind: 'checksum_mismatch' });
      await expect(opening).rejects.toThrow(`Model file ${modelPath} has SHA-256`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start without a GPU when one is required', async () => {
    const loaded = await loadManifest(resolve(repoRoot, 'models/vgg16-seeded.manifest.json'));

    await expect(OnnxEmbedder.create(loaded, { requireGpu: true })).rejects.toThrow(/GPU is required.*cuda/);
  });
});
