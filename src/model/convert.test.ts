import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertClassifier, convertModelFile } from './convert.ts';
import { loadManifest } from './manifest.ts';
import { tensorValue } from './onnx-builder.ts';
import { DataType, decodeModel, encodeModel, type OnnxModel } from './onnx-proto.ts';
import { createPrng } from './prng.ts';
import { generateSeededModel } from './seeded.ts';
import { buildVgg16, VGG16_BLOCK5_FEATURES } from './vgg16.ts';

const IMAGE = 3 * 224 * 224;
const BATCH = 3;
// FC widths shrunk from 4096/1000: same classifier topology, small test files.
const head = { hidden: 16, classes: 10 } as const;

/** Model Zoo vgg16-7 (MXNet export): opset 7, IR 3, input "data" of batch 1, weights in float_data and listed as graph inputs. */
function zooClassifier(): OnnxModel {
  const model = buildVgg16({
    seed: 3,
    head: { kind: 'classifier', style: 'zoo', ...head },
    opset: 7,
    inputName: 'data',
    batch: 1,
  });
  for (const tensor of model.graph.initializer) {
    tensor.float_data = tensor.raw_data;
    delete tensor.raw_data;
    model.graph.input.push(tensorValue(tensor.name, tensor.data_type, tensor.dims));
  }
  return model;
}

/** torchvision export: AveragePool (adaptive 7×7) before Flatten, a symbolic batch, a recent opset. */
function torchvisionClassifier(): OnnxModel {
  return buildVgg16({
    seed: 4,
    head: { kind: 'classifier', style: 'torchvision', ...head },
    opset: 18,
    inputName: 'input.1',
    batch: 'batch_size',
  });
}

/** The classifier with block 5's last ReLU as an extra output, pooled and normalised here in float64. */
async function referenceEmbeddings(
  classifier: OnnxModel,
  images: Float32Array,
  perImage: boolean,
): Promise<Float64Array[]> {
  const model = structuredClone(classifier);
  model.graph.output.push(
    tensorValue(VGG16_BLOCK5_FEATURES, DataType.FLOAT, [perImage ? 1 : 'batch_size', 512, 14, 14]),
  );
  const session = await ort.InferenceSession.create(encodeModel(model));
  const inputName = model.graph.input[0]?.name ?? '';
  const features: Float32Array[] = [];
  for (const [start, count] of perImage ? [0, 1, 2].map((i) => [i, 1]) : [[0, BATCH]]) {
    const data = images.slice((start ?? 0) * IMAGE, ((start ?? 0) + (count ?? 0)) * IMAGE);
    const out = await session.run({
      [inputName]: new ort.Tensor('float32', data, [count ?? 0, 3, 224, 224]),
    });
    features.push((out[VGG16_BLOCK5_FEATURES] as ort.Tensor).data as Float32Array);
  }
  const all = Float32Array.from(features.flatMap((f) => [...f]));
  return [0, 1, 2].map((image) => {
    const pooled = new Float64Array(512);
    for (let c = 0; c < 512; c++) {
      const plane = all.subarray((image * 512 + c) * 196, (image * 512 + c + 1) * 196);
      pooled[c] = Math.max(...plane);
    }
    const norm = Math.hypot(...pooled);
    return pooled.map((v) => v / norm);
  });
}

async function runExtractor(bytes: Uint8Array, images: Float32Array, count: number): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({
    input: new ort.Tensor('float32', images.subarray(0, count * IMAGE), [count, 3, 224, 224]),
  });
  return out.embedding as ort.Tensor;
}

function maxAbsDifference(actual: Float32Array, expected: Float64Array): number {
  return Math.max(...expected.map((v, i) => Math.abs(v - (actual[i] ?? Number.NaN))));
}

describe('convertClassifier', () => {
  const random = createPrng(11);
  // Caffe-normalised pixel range.
  const images = Float32Array.from({ length: BATCH * IMAGE }, () => (random() - 0.5) * 255);

  it.each([
    ['Model Zoo', zooClassifier, true],
    ['torchvision', torchvisionClassifier, false],
  ] as const)(
    'with --descriptor mac turns a %s classifier into block 5 max-pooled and L2-normalised, for batches of 1 and 3',
    async (_, make, perImage) => {
      // Prepare
      const classifier = make();
      const expected = await referenceEmbeddings(classifier, images, perImage);

      // Act
      const converted = convertClassifier(encodeModel(classifier), { descriptor: 'mac' });
      const batch = await runExtractor(converted.bytes, images, BATCH);
      const single = await runExtractor(converted.bytes, images, 1);

      // Assess
      expect(converted.cutAt).toBe(VGG16_BLOCK5_FEATURES);
      expect(batch.dims).toEqual([BATCH, 512]);
      expect(single.dims).toEqual([1, 512]);
      const rows = batch.data as Float32Array;
      expected.forEach((row, i) => {
        expect(maxAbsDifference(rows.subarray(i * 512, (i + 1) * 512), row)).toBeLessThan(1e-5);
      });
      expect(maxAbsDifference(single.data as Float32Array, expected[0] ?? new Float64Array())).toBeLessThan(
        1e-5,
      );
    },
  );

  it('drops the fully connected weights and makes the batch symbolic', () => {
    // Prepare
    const classifier = zooClassifier();

    // Act
    const converted = convertClassifier(encodeModel(classifier));
    const { graph, ir_version } = decodeModel(converted.bytes);

    // Assess
    expect(converted.droppedInitializers.sort()).toEqual(
      ['fc1', 'fc2', 'predictions'].flatMap((l) => [`${l}/bias`, `${l}/kernel`]).sort(),
    );
    expect(graph.initializer.filter((t) => /^(fc|predictions)/.test(t.name))).toEqual([]);
    expect(
      graph.node.filter((n) => ['Gemm', 'Dropout', 'Flatten'].includes(n.op_type)).map((n) => n.op_type),
    ).toEqual(['Flatten']);
    expect(graph.input.map((v) => v.name)).toEqual(['input']);
    expect(graph.input[0]?.type?.tensor_type?.shape?.dim?.[0]).toEqual({ dim_param: 'batch' });
    expect(graph.output[0]?.type?.tensor_type?.shape?.dim).toEqual([
      { dim_param: 'batch' },
      { dim_value: 512 },
    ]);
    expect(ir_version).toBeGreaterThanOrEqual(4);
  });

  it('with fp16 keeps a float32 interface, halves the file and stays within cosine 0.999 of fp32', async () => {
    // Prepare
    const bytes = encodeModel(torchvisionClassifier());
    const fp32 = convertClassifier(bytes);

    // Act
    const fp16 = convertClassifier(bytes, { fp16: true });
    const [full, half] = await Promise.all([
      runExtractor(fp32.bytes, images, BATCH),
      runExtractor(fp16.bytes, images, BATCH),
    ]);

    // Assess
    expect(half.type).toBe('float32');
    expect(fp16.bytes.length).toBeLessThan(fp32.bytes.length * 0.55);
    for (let i = 0; i < BATCH; i++) {
      const a = (full.data as Float32Array).subarray(i * 512, (i + 1) * 512);
      const b = (half.data as Float32Array).subarray(i * 512, (i + 1) * 512);
      const cosine =
        a.reduce((sum, v, k) => sum + v * (b[k] ?? 0), 0) / (Math.hypot(...a) * Math.hypot(...b));
      expect(cosine).toBeGreaterThanOrEqual(0.999);
    }
  });

  it('refuses a graph without a classifier and bytes that are not ONNX, saying why', () => {
    // Act + Assess
    expect(() => convertClassifier(generateSeededModel(1))).toThrow(/No fully connected layer/);
    expect(() => convertClassifier(new TextEncoder().encode('<html>not a model</html>'))).toThrow(/ONNX/);
  });
});

describe('convertModelFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'convert-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the extractor (GeM by default) and a manifest with ImageNet normalisation that does not claim pretrained weights', async () => {
    // Prepare
    const inputPath = join(dir, 'vgg16-full.onnx');
    await writeFile(inputPath, encodeModel(zooClassifier()));

    // Act
    const { manifestPath } = await convertModelFile({
      inputPath,
      outPath: join(dir, 'vgg16-converted.onnx'),
      name: 'vgg16-converted',
      source: inputPath,
    });
    const { manifest, modelPath } = await loadManifest(manifestPath);

    // Assess
    expect(manifest).toMatchObject({
      name: 'vgg16-converted',
      file: 'vgg16-converted.onnx',
      pretrained: false,
      profile: 'quality',
      input: { name: 'input', size: 224, colorOrder: 'RGB', dataType: 'float32' },
      normalisation: { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      output: { name: 'embedding', dimension: 512, descriptor: 'gem', l2Normalised: true },
    });
    const { graph } = decodeModel(await readFile(modelPath));
    expect(graph.output[0]?.name).toBe('embedding');
    expect(
      graph.node.some((n) => n.op_type === 'GlobalAveragePool' && n.name?.startsWith('embedding/')),
    ).toBe(true);
  });
});
