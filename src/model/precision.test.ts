import { copyFile, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxEmbedder } from '../embedder/onnx-embedder.ts';
import { type LoadedManifest, loadManifest, type ModelManifest, type Quantization } from './manifest.ts';
import { sha256Of } from './model-files.ts';
import {
  chooseModel,
  cpuInfo,
  INT8_RECIPE,
  int8ManifestPathFor,
  int8ModelPathFor,
  int8RefusalPathFor,
} from './precision.ts';

const SEEDED = resolve(import.meta.dirname, '../../models/vgg16-seeded.manifest.json');

/** A log that keeps its lines. */
function memoryLog() {
  const lines: { level: 'info' | 'error'; message: string }[] = [];
  return {
    lines,
    info: (message: string) => lines.push({ level: 'info', message }),
    error: (message: string) => lines.push({ level: 'error', message }),
  };
}

describe('chooseModel', () => {
  let dir: string;
  let fp32: LoadedManifest;

  /**
   * Writes the "int8" model beside the fp32 copy: `bytes` (the fp32 file itself unless given: a valid
   * model, which is all these checks need) with a manifest changed by `change`.
   */
  async function writeInt8(
    change: (manifest: ModelManifest) => ModelManifest = (m) => m,
    speed: Partial<Quantization['speed']> = {},
    bytes?: Buffer,
  ): Promise<void> {
    const model = bytes ?? (await readFile(fp32.modelPath));
    const here = await cpuInfo();
    const quantization = {
      source: { file: 'vgg16-seeded.onnx', sha256: fp32.manifest.sha256 },
      tool: INT8_RECIPE,
      format: 'QDQ',
      weights: 'int8, per channel',
      activations: 'uint8, per tensor',
      calibration: { method: 'MinMax', images: ['a.jpg'], sha256: 'a'.repeat(64) },
      parameters: {},
      gate: {
        images: 1,
        photos: 1,
        minCosine: 1,
        meanCosine: 1,
        copyMinCosine: 1,
        duplicate: 0.63,
        cosineBound: 0.9495,
        recallAt1: { fp32: 1, int8: 1, acrossPrecisions: 1, queries: 1 },
        maxRecallDrop: 0.01,
      },
      speed: {
        cpu: here.model,
        flags: here.flags,
        threads: 1,
        batch: 1,
        fp32MsPerImage: 100,
        int8MsPerImage: 40,
        ...speed,
      },
    } satisfies Quantization;
    const manifest = change({
      ...fp32.manifest,
      file: 'vgg16-seeded.int8.onnx',
      sha256: sha256Of(model),
      quantization,
    });
    await writeFile(int8ModelPathFor(fp32.modelPath), model);
    await writeFile(int8ManifestPathFor(fp32.modelPath), JSON.stringify(manifest));
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pic-precision-'));
    const seeded = await loadManifest(SEEDED);
    await copyFile(seeded.modelPath, join(dir, 'vgg16-seeded.onnx'));
    await copyFile(SEEDED, join(dir, 'vgg16-seeded.manifest.json'));
    const whitening = seeded.manifest.output.whitening?.file;
    if (whitening) await copyFile(resolve(dirname(SEEDED), whitening), join(dir, whitening));
    fp32 = await loadManifest(join(dir, 'vgg16-seeded.manifest.json'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes the int8 model measured faster on this processor, with the fp32 model to fall back on', async () => {
    await writeInt8();
    const log = memoryLog();

    const chosen = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log });

    expect(chosen.precision).toBe('int8');
    expect(chosen.loaded.modelPath).toBe(int8ModelPathFor(fp32.modelPath));
    expect(chosen.fallback?.modelPath).toBe(fp32.modelPath);
    expect(log.lines).toEqual([
      {
        level: 'info',
        message: expect.stringMatching(/int8 .*measured 2\.50× faster than fp32 on this processor/),
      },
    ]);
  });

  it('keeps fp32 where int8 was measured slower here, and on CUDA, and when told to', async () => {
    await writeInt8((m) => m, { int8MsPerImage: 120 });

    const slower = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log: memoryLog() });
    const cuda = await chooseModel(fp32, { precision: 'int8', provider: 'cuda', log: memoryLog() });
    const told = await chooseModel(fp32, { precision: 'fp32', provider: 'cpu', log: memoryLog() });
    const forced = await chooseModel(fp32, { precision: 'int8', provider: 'cpu', log: memoryLog() });

    expect([slower, cuda, told, forced].map((c) => c.precision)).toEqual(['fp32', 'fp32', 'fp32', 'int8']);
    expect(slower.reason).toMatch(/int8 measured 0\.83× the speed of fp32/);
  });

  it('decides by VNNI/AMX when the int8 model was measured on another processor', async () => {
    await writeInt8((m) => m, { cpu: 'another processor' });
    const vnni = (await cpuInfo()).flags.some((flag) => /vnni|amx/.test(flag));

    const chosen = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log: memoryLog() });

    expect(chosen.precision).toBe(vnni ? 'int8' : 'fp32');
    expect(chosen.reason).toMatch(vnni ? /has avx512_vnni|has avx_vnni|has amx/ : /no VNNI or AMX/);
  });

  it.each([
    [
      'made from another fp32 file',
      (m: ModelManifest) => ({
        ...m,
        quantization: { ...(m.quantization as Quantization), source: { file: 'x', sha256: 'b'.repeat(64) } },
      }),
      /quantized from a model with SHA-256 b{64}, not from the installed/,
    ],
    [
      'of another dimension',
      (m: ModelManifest) => ({
        ...m,
        output: { ...m.output, whitening: undefined, dimension: m.output.dimension * 2 },
      }),
      /differs from its fp32 model in output/,
    ],
    [
      'with other input names',
      (m: ModelManifest) => ({ ...m, input: { ...m.input, name: 'pixels' } }),
      /differs from its fp32 model in input/,
    ],
  ])('refuses an int8 model %s, loudly, and uses fp32', async (_case, change, reason) => {
    await writeInt8(change);
    const log = memoryLog();

    const chosen = await chooseModel(fp32, { precision: 'int8', provider: 'cpu', log });

    expect(chosen).toMatchObject({ precision: 'fp32', loaded: fp32 });
    expect(log.lines[0]).toEqual({ level: 'error', message: expect.stringMatching(/^INT8 MODEL REFUSED: /) });
    expect(log.lines[0]?.message).toMatch(reason);
  });

  it('does not ask for an int8 model the quality gate refused for this very fp32 file, and asks again for another', async () => {
    await Promise.all(
      [int8ModelPathFor, int8ManifestPathFor].map((pathFor) =>
        unlink(pathFor(fp32.modelPath)).catch(() => undefined),
      ),
    );
    const refusal = (sourceSha256: string, whiteningSha256 = fp32.manifest.output.whitening?.sha256) =>
      writeFile(
        int8RefusalPathFor(fp32.modelPath),
        JSON.stringify({
          sourceSha256,
          whiteningSha256,
          reasons: ['indexed photo 13 has cosine 0.99931, under 0.99998'],
        }),
      );
    try {
      await refusal(fp32.manifest.sha256);
      const refused = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log: memoryLog() });
      await refusal('c'.repeat(64));
      const other = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log: memoryLog() });
      await refusal(fp32.manifest.sha256, 'd'.repeat(64));
      const otherWhitening = await chooseModel(fp32, {
        precision: 'auto',
        provider: 'cpu',
        log: memoryLog(),
      });

      expect(refused.precision).toBe('fp32');
      expect(refused).not.toHaveProperty('int8Missing');
      expect(refused.reason).toMatch(/quality gate refused this model's int8 model \(indexed photo 13/);
      expect(other).toMatchObject({ precision: 'fp32', int8Missing: int8ManifestPathFor(fp32.modelPath) });
      expect(otherWhitening.int8Missing).toBe(int8ManifestPathFor(fp32.modelPath));
    } finally {
      await rm(int8RefusalPathFor(fp32.modelPath), { force: true });
    }
  });

  it('runs an int8 model an earlier recipe made and asks for its remake, unless the gate refused the remake', async () => {
    const earlier = (m: ModelManifest): ModelManifest => ({
      ...m,
      quantization: { ...(m.quantization as Quantization), tool: 'onnxruntime 1.31.1 quantize_static' },
    });
    const choose = () => chooseModel(fp32, { precision: 'auto', provider: 'cpu', log: memoryLog() });
    const manifestPath = int8ManifestPathFor(fp32.modelPath);
    try {
      await writeInt8(earlier);
      const current = await choose();
      await writeInt8(earlier, { int8MsPerImage: 150 });
      const slower = await choose();
      await writeInt8(earlier);
      await writeFile(
        int8RefusalPathFor(fp32.modelPath),
        JSON.stringify({
          sourceSha256: fp32.manifest.sha256,
          whiteningSha256: fp32.manifest.output.whitening?.sha256,
          reasons: ['recall@1 dropped by 0.02'],
        }),
      );
      const refused = await choose();

      expect(current).toMatchObject({ precision: 'int8', int8Outdated: manifestPath });
      expect(current).not.toHaveProperty('int8Missing');
      expect(slower).toMatchObject({ precision: 'fp32', int8Outdated: manifestPath });
      expect(refused.precision).toBe('int8');
      expect(refused).not.toHaveProperty('int8Outdated');
    } finally {
      await rm(int8RefusalPathFor(fp32.modelPath), { force: true });
    }
    await writeInt8();
    const remade = await choose();
    expect(remade.precision).toBe('int8');
    expect(remade).not.toHaveProperty('int8Outdated');
  });

  it('refuses an int8 file whose SHA-256 differs from its manifest', async () => {
    await writeInt8();
    const bytes = await readFile(int8ModelPathFor(fp32.modelPath));
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 1;
    await writeFile(int8ModelPathFor(fp32.modelPath), bytes);
    const log = memoryLog();

    const chosen = await chooseModel(fp32, { precision: 'auto', provider: 'cpu', log });

    expect(chosen.precision).toBe('fp32');
    expect(log.lines[0]?.message).toMatch(
      /INT8 MODEL REFUSED: Model file .*vgg16-seeded\.int8\.onnx has SHA-256/,
    );
  });

  it('opens the fp32 model, saying so in the log, when the int8 file is no model at all', async () => {
    await writeInt8((m) => m, {}, Buffer.from('not an onnx graph'));
    const chosen = await chooseModel(fp32, { precision: 'int8', provider: 'cpu', log: memoryLog() });
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });

    const embedder = await OnnxEmbedder.create(chosen.loaded, {
      fallback: fp32,
      logger,
      intraOpNumThreads: 1,
    });
    await embedder.close();

    expect(chosen.precision).toBe('int8');
    expect(lines.find((line) => line.level === 50)?.msg).toMatch(
      /^INT8 MODEL REFUSED at load: .* Using the fp32 model .*vgg16-seeded\.onnx instead\.$/,
    );
    expect(lines.find((line) => line.msg.startsWith('embedder ready'))).toMatchObject({
      file: fp32.modelPath,
    });
  });
});
