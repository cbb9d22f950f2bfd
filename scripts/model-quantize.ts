/**
 * npm run model:quantize: the int8 QDQ model of the installed fp32 extractor, beside it as
 * <model>.int8.onnx with its manifest (docs/models.md, quantization). Steps: the pinned Python venv
 * (.cache/quantize-venv, scripts/quantize/requirements.txt), calibration tensors from samples/calibration
 * made by the project's own image pipeline, onnxruntime's static quantizer (scripts/quantize/quantize.py),
 * the quality gate against fp32 on the evaluation corpus of `npm run eval`, and one speed measurement on
 * this processor. A model that fails the gate is not written; the exit status is 1 with the reasons.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { loadConfig } from '../src/config.ts';
import { OnnxEmbedder } from '../src/embedder/onnx-embedder.ts';
import { DEFAULT_DECODE_LIMITS } from '../src/imaging/decode.ts';
import { SharpImageProcessor } from '../src/imaging/image-processor.ts';
import { tensorSpecOf } from '../src/imaging/preprocess.ts';
import { type LoadedManifest, loadManifest, type Quantization } from '../src/model/manifest.ts';
import { sha256Of, writeModelFiles } from '../src/model/model-files.ts';
import { cpuInfo, int8ModelPathFor } from '../src/model/precision.ts';
import { QUALITY_BOUNDS, qualityGate } from '../src/model/quality-gate.ts';
import { seededInt8Thresholds } from '../src/model/seeded.ts';
import { resolveModel } from '../src/wiring/embedded.ts';
import { median, round } from './bench-support.ts';
import { recall } from './eval-metrics.ts';
import { embedImages, offlineCorpus, scanAnswers } from './eval-offline.ts';
import { ensurePythonVenv, venvBinOf } from './python-venv.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const VENV = {
  dir: join(REPO_ROOT, '.cache/quantize-venv'),
  requirements: join(REPO_ROOT, 'scripts/quantize/requirements.txt'),
  purpose: 'int8 quantization (onnxruntime quantize_static)',
  marker: 'python',
};
const CALIBRATION_DIR = join(REPO_ROOT, 'samples/calibration');
const TOOL = 'onnxruntime 1.31.1 quantize_static';
const SPEED_RUNS = 5;

const options = new Command('model:quantize')
  .description('Write the int8 (QDQ) model of the installed fp32 extractor, if it passes the quality gate')
  .option('--manifest <path>', 'fp32 model manifest (default: the model `npm start` would use)')
  .parse()
  .opts<{ manifest?: string }>();

const log = (line: string) => console.log(line);
const started = performance.now();
const fp32 = options.manifest
  ? await loadManifest(resolve(options.manifest))
  : // Never a download from here: the model `npm start` resolves offline.
    await resolveModel(loadConfig({ ...process.env, PIC_MODEL_FETCH: 'false' }), { info: log, warn: log });
if (fp32.manifest.quantization || fp32.manifest.input.dataType !== 'float32') {
  console.error(`${fp32.modelPath} is not an fp32 model; quantize the fp32 model it was made from.`);
  process.exit(2);
}
await ensurePythonVenv(VENV, log);
const work = await mkdtemp(join(tmpdir(), 'pic-quantize-'));
try {
  const calibration = await calibrationTensors(fp32, join(work, 'calibration.f32'));
  log(`Calibrating on ${calibration.images.length} photos of samples/calibration…`);
  const quantizedPath = join(work, 'int8.onnx');
  const { stdout } = await promisify(execFile)(
    venvBinOf(VENV.dir, 'python'),
    [
      join(REPO_ROOT, 'scripts/quantize/quantize.py'),
      ...['--model', fp32.modelPath, '--output', quantizedPath, '--calibration', calibration.file],
      ...['--input-name', fp32.manifest.input.name, '--size', String(fp32.manifest.input.size)],
    ],
    { maxBuffer: 1 << 26 },
  );
  const quantized = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
    settings: { calibrateMethod: string };
    activations: Quantization['parameters'];
  };
  const bytes = await readFile(quantizedPath);
  const int8: LoadedManifest = {
    ...fp32,
    manifest: { ...fp32.manifest, file: basename(quantizedPath), sha256: sha256Of(bytes) },
    modelPath: quantizedPath,
  };
  log('Comparing int8 with fp32 on the evaluation corpus (npm run eval’s photos and edits)…');
  const gate = await compare(fp32, int8, join(work, 'corpus'));
  const result = qualityGate(gate);
  const summary = `cosine min ${result.minCosine.toFixed(5)} mean ${result.meanCosine.toFixed(5)} over ${gate.fp32.length} images; recall@1 fp32 ${gate.recallAt1.fp32.toFixed(3)} int8 ${gate.recallAt1.int8.toFixed(3)} (${gate.recallAt1.queries} queries)`;
  if (!result.ok) {
    console.error(`The int8 model is REFUSED and was not written: ${result.reasons.join('; ')}.`);
    console.error(summary);
    process.exitCode = 1;
  } else {
    log(`Quality gate passed: ${summary}`);
    const speed = await measureSpeed(fp32, int8);
    log(
      `Pure inference on ${speed.cpu} [${speed.flags.join(' ')}], 1 thread, batch 1: fp32 ${speed.fp32MsPerImage} ms, int8 ${speed.int8MsPerImage} ms an image (int8 ÷ fp32 speed ${round(speed.fp32MsPerImage / speed.int8MsPerImage)}); the machine may be shared`,
    );
    const { file: _file, sha256: _sha256, matchThresholds: _fp32Thresholds, ...manifest } = fp32.manifest;
    // int8 moves scores: the fp32 thresholds are not its own (docs/search-quality.md).
    const matchThresholds = seededInt8Thresholds(fp32.manifest);
    const written = await writeModelFiles(int8ModelPathFor(fp32.modelPath), bytes, {
      ...manifest,
      ...(matchThresholds ? { matchThresholds } : {}),
      source: `npm run model:quantize: int8 QDQ of ${fp32.manifest.source}`,
      quantization: {
        source: { file: basename(fp32.modelPath), sha256: fp32.manifest.sha256 },
        tool: TOOL,
        format: 'QDQ',
        weights: 'int8, per channel',
        activations: 'uint8, per tensor',
        calibration: {
          method: quantized.settings.calibrateMethod,
          images: calibration.images,
          sha256: calibration.sha256,
        },
        parameters: quantized.activations,
        gate: {
          images: gate.fp32.length,
          minCosine: round(result.minCosine, 6),
          meanCosine: round(result.meanCosine, 6),
          cosineBound: QUALITY_BOUNDS.minCosine,
          recallAt1: gate.recallAt1,
          maxRecallDrop: QUALITY_BOUNDS.maxRecallDrop,
        },
        speed,
      },
    });
    log(
      `Wrote ${written.manifestPath} (${(bytes.length / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

/** samples/calibration through the model's own preprocessing, as one raw float32 NCHW file. */
async function calibrationTensors(loaded: LoadedManifest, file: string) {
  const images = (await readdir(CALIBRATION_DIR)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  const processor = new SharpImageProcessor({
    tensor: tensorSpecOf(loaded.manifest),
    profile: loaded.manifest.profile,
    limits: DEFAULT_DECODE_LIMITS,
  });
  const lines: string[] = [];
  const tensors: Float32Array[] = [];
  for (const name of images) {
    const bytes = await readFile(join(CALIBRATION_DIR, name));
    lines.push(`${name} ${sha256Of(bytes)}`);
    tensors.push((await processor.process(bytes, { thumbnail: false })).tensor);
  }
  await writeFile(file, Buffer.concat(tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))));
  return { file, images, sha256: sha256Of(Buffer.from(`${lines.join('\n')}\n`)) };
}

/**
 * Both models on the evaluation corpus: the vectors of every indexed photo and every edited query (the
 * cosine gate), and recall@1 of the upright queries against each model's own index of the originals.
 */
async function compare(fp32Model: LoadedManifest, int8Model: LoadedManifest, dir: string) {
  const offline = await offlineCorpus(dir);
  const vectorsOf = (loaded: LoadedManifest) => embedImages(loaded, offline.images, offline.files);
  const recallOf = (vectors: Float32Array[]) => recall(scanAnswers(offline, vectors));
  const fp32 = await vectorsOf(fp32Model);
  const int8 = await vectorsOf(int8Model);
  const [before, after] = [recallOf(fp32), recallOf(int8)];
  return {
    fp32,
    int8,
    recallAt1: { fp32: round(before.recall1, 4), int8: round(after.recall1, 4), queries: before.queries },
  };
}

/** Pure inference, one thread (an ingest session's), batch 1: the median of SPEED_RUNS after a warm-up. */
async function measureSpeed(
  fp32Model: LoadedManifest,
  int8Model: LoadedManifest,
): Promise<Quantization['speed']> {
  const msOf = async (loaded: LoadedManifest) => {
    const embedder = await OnnxEmbedder.create(loaded, { intraOpNumThreads: 1 });
    try {
      const size = loaded.manifest.input.size;
      const tensor = new Float32Array(3 * size * size).map((_, i) => ((i * 37) % 255) - 120);
      await embedder.infer(tensor, 1);
      const runs: number[] = [];
      for (let i = 0; i < SPEED_RUNS; i++) {
        const t = performance.now();
        await embedder.infer(tensor, 1);
        runs.push(performance.now() - t);
      }
      return round(median(runs), 1);
    } finally {
      await embedder.close();
    }
  };
  const cpu = await cpuInfo();
  const fp32MsPerImage = await msOf(fp32Model);
  const int8MsPerImage = await msOf(int8Model);
  return { cpu: cpu.model, flags: cpu.flags, threads: 1, batch: 1, fp32MsPerImage, int8MsPerImage };
}
