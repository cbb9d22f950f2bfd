import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexModelName, loadManifest, type ModelManifest } from './manifest.ts';
import { sha256Of } from './model-files.ts';

const base: ModelManifest = {
  name: 'test-model',
  file: 'test.onnx',
  sha256: '0'.repeat(64),
  pretrained: false,
  source: 'test',
  input: { name: 'input', layout: 'NCHW', size: 224, colorOrder: 'BGR', dataType: 'float32' },
  normalisation: { kind: 'caffe', mean: [1, 2, 3] },
  profile: 'quality',
  output: { name: 'embedding', dimension: 512, descriptor: 'mac', l2Normalised: true },
};

describe('model manifest', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'manifest-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(manifest: unknown): Promise<unknown> {
    const path = join(dir, `m${Math.random()}.manifest.json`);
    await writeFile(path, JSON.stringify(manifest));
    return loadManifest(path);
  }

  async function whiteningFile(floats: number): Promise<{ file: string; sha256: string }> {
    const bytes = new Uint8Array(new Float32Array(floats).fill(0.5).buffer);
    await writeFile(join(dir, `w${floats}.f32`), bytes);
    return { file: `w${floats}.f32`, sha256: sha256Of(bytes) };
  }

  it('reads a manifest written before descriptors existed as the classic mac head', async () => {
    const { descriptor: _, ...legacyOutput } = base.output;
    const loaded = (await load({ ...base, output: { ...legacyOutput, pooling: 'max' } })) as {
      manifest: ModelManifest;
    };
    expect(loaded.manifest.output.descriptor).toBe('mac');
    expect(indexModelName(loaded.manifest)).toBe('test-model');
  });

  it('loads a whitening that fits: a mean of 8 and a 4 × 8 projection', async () => {
    const file = await whiteningFile(8 + 4 * 8);
    const whitening = { ...file, inputDimension: 8, dimension: 4, learntOn: 'test' };
    const loaded = (await load({ ...base, output: { ...base.output, dimension: 4, whitening } })) as {
      whitening: { mean: Float32Array; projection: Float32Array };
    };
    expect(loaded.whitening.mean).toHaveLength(8);
    expect(loaded.whitening.projection).toHaveLength(32);
  });

  it('refuses at load a whitening matrix that does not fit the dimension', async () => {
    const file = await whiteningFile(8 + 3 * 8);
    const whitening = { ...file, inputDimension: 8, dimension: 4, learntOn: 'test' };
    await expect(load({ ...base, output: { ...base.output, dimension: 4, whitening } })).rejects.toThrow(
      /whitening matrix does not fit the dimension: .* holds 128 bytes, but a mean of 8 and a 4×8 projection \(float32\) take 160/,
    );
  });

  it('refuses a whitening whose dimension is not the output dimension', async () => {
    const file = await whiteningFile(8 + 4 * 8);
    const whitening = { ...file, inputDimension: 8, dimension: 4, learntOn: 'test' };
    await expect(load({ ...base, output: { ...base.output, dimension: 8, whitening } })).rejects.toThrow(
      'the whitening projects to 4 dimensions but output.dimension is 8',
    );
  });

  it('puts the descriptor and the whitening into the index identity, so their vectors never mix', () => {
    const gem = { ...base, output: { ...base.output, descriptor: 'gem' as const } };
    const whitened = {
      ...gem,
      output: {
        ...gem.output,
        dimension: 256,
        whitening: { file: 'w', sha256: 'ab'.repeat(32), inputDimension: 512, dimension: 256, learntOn: 'x' },
      },
    };
    expect(new Set([indexModelName(base), indexModelName(gem), indexModelName(whitened)]).size).toBe(3);
    expect(indexModelName(whitened)).toBe('test-model+gem-w256-abababab');
  });
});
