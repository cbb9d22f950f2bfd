import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertWithinLambdaLimit,
  buildModelLayer,
  buildRuntimeLayer,
  directorySize,
  FUNCTION_BUNDLE_ALLOWANCE_BYTES,
  LAMBDA_UNZIPPED_LIMIT_BYTES,
  LambdaSizeError,
  type LayerSize,
} from './build.ts';

const MB = 1024 * 1024;
const SEEDED_MANIFEST = resolve('models/vgg16-seeded.manifest.json');

/**
 * Loads the layers the way Lambda does (from a folder outside the repo, so nothing can fall back on the
 * repo's node_modules), runs one inference and one resize, and lists every module file it loaded.
 */
const PROBE = `
const { createRequire } = require('node:module');
const fs = require('node:fs');
const [runtimeDir, manifestPath] = process.argv.slice(1);
const layerRequire = createRequire(runtimeDir + '/nodejs/node_modules/');
(async () => {
  const ort = layerRequire('onnxruntime-node');
  const sharp = layerRequire('sharp');
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const size = manifest.input.size;
  const pixels = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#3a7' } })
    .resize(size, size, { fit: 'fill' }).raw().toBuffer();
  const input = new Float32Array(3 * size * size);
  for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) input[c * size * size + i] = pixels[i * 3 + c];
  const session = await ort.InferenceSession.create(require('node:path').join(require('node:path').dirname(manifestPath), manifest.file));
  const out = await session.run({ [manifest.input.name]: new ort.Tensor('float32', input, [1, 3, size, size]) });
  const modules = Object.keys(require.cache).filter((file) => !file.startsWith('node:'));
  console.log(JSON.stringify({ dims: out[manifest.output.name].dims, modules, loadedNative: process.report.getReport().sharedObjects.filter((so) => so.includes(runtimeDir)) }));
})().catch((error) => { console.error(error); process.exit(1); });
`;

describe('Lambda layers', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'pic-search-layers-'));
  const runtimeDir = join(scratch, 'runtime');
  const modelDir = join(scratch, 'model');
  let runtime: LayerSize;
  let model: LayerSize & { manifestInLambda: string };

  beforeAll(async () => {
    runtime = buildRuntimeLayer(runtimeDir);
    model = await buildModelLayer(SEEDED_MANIFEST, modelDir);
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('keeps the runtime layer to linux-x64 binaries, well under the limit', () => {
    // Measured: ~64 MB (ORT linux-x64 46 MB + sharp/libvips 19 MB); the full onnxruntime-node is 288 MB.
    expect(runtime.bytes).toBeGreaterThan(40 * MB);
    expect(runtime.bytes).toBeLessThan(80 * MB);
    const ortBin = join(runtimeDir, 'nodejs/node_modules/onnxruntime-node/bin/napi-v6');
    expect(directorySize(ortBin)).toBe(directorySize(join(ortBin, 'linux/x64')));
  });

  it('puts the model, its manifest and its whitening under /opt/model', () => {
    expect(model.manifestInLambda).toBe('/opt/model/vgg16-seeded.manifest.json');
    expect(readdirSync(join(modelDir, 'model'))).toContain('vgg16-seeded.whitening-256.f32');
    expect(model.bytes).toBeGreaterThan(50 * MB);
  });

  it('carries the int8 model beside the fp32 one when model:quantize made it', async () => {
    // A copy of the seeded model with an "int8" pair beside it (the layer copies files; chooseModel checks them).
    const source = join(scratch, 'source');
    const layer = join(scratch, 'with-int8');
    mkdirSync(source);
    for (const file of ['vgg16-seeded.onnx', 'vgg16-seeded.manifest.json', 'vgg16-seeded.whitening-256.f32'])
      copyFileSync(join(dirname(SEEDED_MANIFEST), file), join(source, file));
    writeFileSync(join(source, 'vgg16-seeded.int8.onnx'), 'int8 model');
    writeFileSync(join(source, 'vgg16-seeded.int8.manifest.json'), '{}');

    await buildModelLayer(join(source, 'vgg16-seeded.manifest.json'), layer);

    expect(readdirSync(join(layer, 'model')).sort()).toEqual([
      'vgg16-seeded.int8.manifest.json',
      'vgg16-seeded.int8.onnx',
      'vgg16-seeded.manifest.json',
      'vgg16-seeded.onnx',
      'vgg16-seeded.whitening-256.f32',
    ]);
  });

  it('leaves room for a function bundle under the 250 MB unzipped limit', () => {
    const total = assertWithinLambdaLimit([
      runtime,
      model,
      { name: 'function bundle allowance', bytes: FUNCTION_BUNDLE_ALLOWANCE_BYTES },
    ]);
    expect(total).toBeLessThan(LAMBDA_UNZIPPED_LIMIT_BYTES);
  });

  it('refuses a function plus layers over the limit, naming the parts', () => {
    const parts = [runtime, model, { name: 'search bundle', bytes: 140 * MB }];
    expect(() => assertWithinLambdaLimit(parts)).toThrow(LambdaSizeError);
    expect(() => assertWithinLambdaLimit(parts)).toThrow(
      /runtime layer .* \+ model layer .* \+ search bundle 140\.0 MB/,
    );
  });

  it('runs the model and sharp from the layers alone', () => {
    const manifestPath = join(modelDir, 'model/vgg16-seeded.manifest.json');
    const report = JSON.parse(
      execFileSync(process.execPath, ['-e', PROBE, runtimeDir, manifestPath], {
        cwd: scratch,
        encoding: 'utf8',
      }),
    ) as { dims: number[]; modules: string[]; loadedNative: string[] };

    expect(report.dims).toEqual([1, 512]);
    const outside = report.modules.filter((file) => !file.startsWith(runtimeDir));
    expect(outside).toEqual([]);
    expect(report.loadedNative.some((so) => so.endsWith('libonnxruntime.so.1'))).toBe(true);
    expect(report.loadedNative.some((so) => so.includes('libvips-cpp'))).toBe(true);
  });
});
