import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/model/manifest.ts';
import { chooseModel, int8ManifestPathFor, int8ModelPathFor } from '../../src/model/precision.ts';
import { ensureSeededModel, seededInt8Thresholds, seededModelPath } from '../../src/model/seeded.ts';

/**
 * `npm run model:quantize` for real: the pinned venv, onnxruntime's quantizer and the quality gate on the
 * evaluation corpus (about 40 s a head on 2 cores, plus the venv's creation on a fresh clone).
 */
const QUANTIZE_TIMEOUT_MS = 600_000;
/** chooseModel's log: an error line (a refused int8 model) fails the test. */
const failOnError = { info: () => undefined, error: (line: string) => expect.fail(line) };

async function quantize(manifestPath: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/model-quantize.ts', '--manifest', manifestPath],
      { maxBuffer: 1 << 24 },
    );
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

describe('npm run model:quantize', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantize-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'makes the default head’s int8 model, which passes the gate, records it and is accepted at load',
    async () => {
      // Arrange
      const fp32 = await ensureSeededModel({ modelDir: join(dir, 'default') });

      // Act
      const result = await quantize(fp32.manifestPath);

      // Assess
      expect(result.code, result.output).toBe(0);
      expect(result.output).toMatch(/Quality gate passed: exact copies: cosine min 0\.9\d+ over 38 photos/);
      const int8 = await loadManifest(int8ManifestPathFor(seededModelPath(join(dir, 'default'))));
      const gate = int8.manifest.quantization?.gate;
      expect(gate?.copyMinCosine).toBeGreaterThanOrEqual(gate?.cosineBound ?? 2);
      expect(gate?.recallAt1.fp32 ?? 0).toBeLessThanOrEqual((gate?.recallAt1.acrossPrecisions ?? 0) + 0.01);
      expect(int8.manifest.matchThresholds).toEqual(seededInt8Thresholds(fp32.manifest));
      const chosen = await chooseModel(await loadManifest(fp32.manifestPath), {
        precision: 'int8',
        provider: 'cpu',
        log: failOnError,
      });
      expect(chosen.precision).toBe('int8');
    },
    QUANTIZE_TIMEOUT_MS,
  );

  it.each([
    ['MAC', 'mac', 0.9931],
    ['R-MAC', 'rmac', 0.9964],
    ['plain GeM', 'gem', 0.9984],
  ] as const)(
    'refuses %s’s int8 model, whose scores crowd too near 1 for its rounding, writes nothing and records why',
    async (_head, descriptor, duplicate) => {
      // Arrange
      const modelDir = join(dir, descriptor);
      const fp32 = await ensureSeededModel({ modelDir, descriptor, whitening: 0 });

      // Act
      const result = await quantize(fp32.manifestPath);

      // Assess
      expect(result.code, result.output).toBe(1);
      expect(result.output).toMatch(
        new RegExp(
          `REFUSED and was not written: indexed photo \\d+'s int8 vector has cosine 0\\.99\\d+ to its fp32 vector, under the 0\\.9999\\d+ an exact copy needs with this head's duplicate threshold ${duplicate}`,
        ),
      );
      await expect(stat(int8ModelPathFor(seededModelPath(modelDir)))).rejects.toThrow(/ENOENT/);
      // Recorded, so that npm start runs fp32 without quantizing this model again at every start.
      const chosen = await chooseModel(await loadManifest(fp32.manifestPath), {
        precision: 'auto',
        provider: 'cpu',
        log: failOnError,
      });
      expect(chosen.precision).toBe('fp32');
      expect(chosen).not.toHaveProperty('int8Missing');
      expect(chosen.reason).toMatch(/quality gate refused this model's int8 model \(indexed photo \d+/);
    },
    QUANTIZE_TIMEOUT_MS,
  );
});
