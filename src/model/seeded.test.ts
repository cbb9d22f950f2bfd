import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { WHITENING_STRENGTH } from './descriptors.ts';
import { indexModelName, loadManifest } from './manifest.ts';
import { sha256Of } from './model-files.ts';
import { decodeModel } from './onnx-proto.ts';
import { int8ManifestPathFor, int8ModelPathFor } from './precision.ts';
import { ensureSeededModel, generateSeededModel, seededInt8Thresholds, seededModelPath } from './seeded.ts';

/** SHA-256 of seed 42's file as generated on the project machine; pins cross-machine determinism. */
const SEED_42_SHA256 = '266a717fba1540bb181859fe6bc7d822d479cd67dfca1db75e0f71f15f534ec8';
const photos = SAMPLE_PHOTOS_DIR;

describe('seeded VGG16 generation', () => {
  it('writes byte-identical models for the same seed and different ones for another seed', () => {
    // Act
    const first = sha256Of(generateSeededModel(42, 'mac'));
    const again = sha256Of(generateSeededModel(42, 'mac'));
    const other = sha256Of(generateSeededModel(7, 'mac'));

    // Assess
    expect(first).toBe(again);
    expect(first).toBe(SEED_42_SHA256);
    expect(other).not.toBe(first);
  });

  it('has the 13 VGG16 convolutions, five max pools and a dynamic batch on input and output', () => {
    // Act
    const { graph } = decodeModel(generateSeededModel(42, 'mac'));

    // Assess
    const convs = graph.node.filter((n) => n.op_type === 'Conv');
    expect(convs.map((n) => graph.initializer.find((t) => t.name === n.input[1])?.dims[0])).toEqual([
      64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
    ]);
    expect(graph.node.filter((n) => n.op_type === 'MaxPool')).toHaveLength(5);
    expect(graph.input[0]?.type?.tensor_type?.shape?.dim?.[0]).toEqual({ dim_param: 'batch' });
    expect(graph.output[0]?.type?.tensor_type?.shape?.dim).toEqual([
      { dim_param: 'batch' },
      { dim_value: 512 },
    ]);
  });
});

describe('ensureSeededModel', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'seeded-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates when missing, reuses a matching file and regenerates a corrupted one', async () => {
    // Act
    const classic = { modelDir: dir, descriptor: 'mac', whitening: 0 } as const;
    const created = await ensureSeededModel(classic);
    const reused = await ensureSeededModel(classic);
    await writeFile(seededModelPath(dir), 'truncated');
    const repaired = await ensureSeededModel(classic);

    // Assess
    expect([created.generated, reused.generated, repaired.generated]).toEqual([true, false, true]);
    expect(repaired.manifest.sha256).toBe(SEED_42_SHA256);
    expect(repaired.manifest).toMatchObject({
      name: 'vgg16-seeded-42',
      pretrained: false,
      profile: 'quality',
    });
  });

  it('removes the int8 model of the files it replaces, so that it is made again rather than refused', async () => {
    // Prepare
    const classic = { modelDir: join(dir, 'stale'), descriptor: 'mac', whitening: 0 } as const;
    await ensureSeededModel(classic);
    const int8Files = [
      int8ModelPathFor(seededModelPath(classic.modelDir)),
      int8ManifestPathFor(seededModelPath(classic.modelDir)),
    ];
    for (const file of int8Files) await writeFile(file, 'an int8 model of the previous files');
    await writeFile(seededModelPath(classic.modelDir), 'truncated');

    // Act
    await ensureSeededModel(classic);

    // Assess
    for (const file of int8Files) await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it('records thresholds per precision: the default head’s int8 model gets its own, other heads none', async () => {
    // Act
    const mac = await ensureSeededModel({ modelDir: join(dir, 'mac'), descriptor: 'mac', whitening: 0 });
    const gem = await ensureSeededModel({ modelDir: join(dir, 'default') });

    // Assess
    expect(gem.manifest.matchThresholds).toMatchObject({ duplicate: 0.6318, similar: 0.2142 });
    expect(seededInt8Thresholds(gem.manifest)).toMatchObject({
      duplicate: 0.6332,
      similar: 0.2194,
      calibratedOn: expect.stringMatching(/int8/),
    });
    expect(mac.manifest.matchThresholds).toMatchObject({ duplicate: 0.9931, similar: 0.9864 });
    expect(seededInt8Thresholds(mac.manifest)).toBeUndefined();
    expect(
      seededInt8Thresholds({ ...gem.manifest, source: 'model:convert of vgg16-7.onnx' }),
    ).toBeUndefined();
  });

  it('prepares the default model, GeM whitened to 256 with the shipped whitening, calibrated labels', async () => {
    // Act
    const { manifest, manifestPath } = await ensureSeededModel({ modelDir: join(dir, 'default') });
    const loaded = await loadManifest(manifestPath);

    // Assess
    expect(manifest.output).toMatchObject({ descriptor: 'gem', dimension: 256 });
    expect(manifest.output.whitening).toMatchObject({
      inputDimension: 512,
      dimension: 256,
      ...WHITENING_STRENGTH,
    });
    // The shipped whitening is unchanged: indexes built with the default keep their identity.
    expect(indexModelName(manifest)).toBe('vgg16-seeded-42+gem-w256-60a088e5');
    expect(manifest.output.whitening?.learntOn).toMatch(/samples\/calibration/);
    expect(manifest.matchThresholds?.duplicate).toBeGreaterThan(manifest.matchThresholds?.similar ?? 1);
    expect(loaded.whitening?.projection).toHaveLength(256 * 512);
  });
});

describe('the generated model in onnxruntime', () => {
  let session: ort.InferenceSession;
  let batch: Float32Array;
  const size = 3 * 224 * 224;
  beforeAll(async () => {
    const { modelPath, manifest } = await loadManifest(resolve('models/vgg16-seeded.manifest.json'));
    session = await ort.InferenceSession.create(modelPath);
    batch = await caffeTensor(['backlit-leaves.jpg', 'cheetah-in-grass.jpg'], manifest.normalisation.mean);
  });

  it('turns real photos into finite, non-zero unit vectors of 512, for any batch size', async () => {
    // Act
    const pair = await embed(session, batch, 2);
    const single = await embed(session, batch.subarray(size, 2 * size), 1);

    // Assess
    expect(pair.dims).toEqual([2, 512]);
    const vectors = [pair.data.subarray(0, 512), pair.data.subarray(512)];
    for (const v of vectors) {
      expect(v.every(Number.isFinite)).toBe(true);
      expect(v.filter((x) => x > 0).length).toBeGreaterThan(100);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(Math.max(...single.data.map((x, i) => Math.abs(x - (vectors[1]?.[i] ?? 0))))).toBeLessThan(1e-5);
  });
});

async function embed(session: ort.InferenceSession, data: Float32Array, n: number) {
  const out = await session.run({ input: new ort.Tensor('float32', data, [n, 3, 224, 224]) });
  const tensor = out.embedding as ort.Tensor;
  return { dims: tensor.dims, data: tensor.data as Float32Array };
}

/** Keras caffe preprocessing without the app's embedder: squash to 224², RGB → BGR, minus means. */
async function caffeTensor(files: string[], mean: readonly number[]): Promise<Float32Array> {
  const plane = 224 * 224;
  const out = new Float32Array(files.length * 3 * plane);
  for (const [i, file] of files.entries()) {
    const pixels = await sharp(join(photos, file))
      .removeAlpha()
      .resize(224, 224, { fit: 'fill' })
      .raw()
      .toBuffer();
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++)
        out[(i * 3 + c) * plane + p] = (pixels[p * 3 + 2 - c] ?? 0) - (mean[c] ?? 0);
    }
  }
  return out;
}
