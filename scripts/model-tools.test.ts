import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../src/model/manifest.ts';
import { smallClassifier } from '../src/model/test-support.ts';

const exec = promisify(execFile);

/** Runs a model script as `npm run` would, returning its exit code and output instead of throwing. */
async function run(
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [
      '--import',
      'tsx',
      `scripts/${script}.ts`,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('model scripts', () => {
  let dir: string;
  let classifierPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'model-scripts-'));
    classifierPath = join(dir, 'vgg16-full.onnx');
    await writeFile(classifierPath, smallClassifier());
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('model:generate writes the seed and profile asked for and says the weights are random', async () => {
    // Act
    const result = await run('model-generate', [
      '--seed',
      '3',
      '--profile',
      'keras-compat',
      '--model-dir',
      join(dir, 'g'),
    ]);

    // Assess
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Wrote vgg16-seeded-3 .*sha256 [0-9a-f]{64}/);
    expect(result.stdout).toContain('random, not pretrained');
    const { manifest } = await loadManifest(join(dir, 'g', 'vgg16-seeded.manifest.json'));
    expect(manifest).toMatchObject({ name: 'vgg16-seeded-3', profile: 'keras-compat', pretrained: false });
  });

  it('model:generate rejects a seed that is not an integer', async () => {
    // Act
    const result = await run('model-generate', ['--seed', 'abc', '--model-dir', join(dir, 'bad')]);

    // Assess
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('the seed must be an integer');
  });

  it('model:convert writes --out (adding .onnx) under --name with caffe normalisation when asked', async () => {
    // Act
    const result = await run('model-convert', [
      classifierPath,
      '--out',
      join(dir, 'c', 'mine'),
      '--name',
      'vgg16-mine',
      '--normalisation',
      'caffe',
    ]);

    // Assess
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Cut at block5_conv3; dropped 6 classifier initialisers.');
    expect(result.stdout).toContain('Labelled pretrained: false');
    const { manifest } = await loadManifest(join(dir, 'c', 'mine.manifest.json'));
    expect(manifest).toMatchObject({
      name: 'vgg16-mine',
      file: 'mine.onnx',
      input: { colorOrder: 'BGR' },
      normalisation: { kind: 'caffe' },
    });
  });

  it('model:convert and model:fetch --file exit non-zero with the reason for unusable files', async () => {
    // Act
    const missing = await run('model-convert', [join(dir, 'nope.onnx'), '--out', join(dir, 'x')]);
    const unverified = await run('model-fetch', ['--file', classifierPath, '--model-dir', join(dir, 'f')]);

    // Assess
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/model:convert failed: .*nope\.onnx/);
    expect(unverified.code).toBe(1);
    expect(unverified.stderr).toContain('is not ONNX Model Zoo vgg16-7.onnx');
    expect(unverified.stderr).toContain(`npm run model:convert -- ${classifierPath}`);
    expect(await readdir(dir)).not.toContain('f');
  });
});
