/**
 * npm run model:quantize: the int8 QDQ model of the installed fp32 extractor, beside it as
 * <model>.int8.onnx with its manifest (docs/models.md, quantization). Steps: the pinned Python venv
 * (.cache/quantize-venv, scripts/quantize/requirements.txt), calibration tensors from samples/calibration
 * made by the project's own image pipeline, onnxruntime's static quantizer (scripts/quantize/quantize.py),
 * the quality gate against fp32 on the evaluation corpus of `npm run eval`, and one speed measurement on
 * this processor. A model that fails the gate is not written; the exit status is 1 with the reasons, which
 * are recorded beside the model (<model>.int8.refused.json) so that `npm start` does not try again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { loadConfig } from '../src/config.ts';
import { OnnxEmbedder } from '../src/embedder/onnx-embedder.ts';
import { type LoadedManifest, loadManifest, type Quantization } from '../src/model/manifest.ts';
import { writeFileAtomically, writeModelFiles } from '../src/model/model-files.ts';
import {
  cpuInfo,
  INT8_RECIPE,
  type Int8Refusal,
  int8ModelPathFor,
  int8RefusalPathFor,
} from '../src/model/precision.ts';
import { QUALITY_BOUNDS, qualityGate } from '../src/model/quality-gate.ts';
import { seededInt8Thresholds } from '../src/model/seeded.ts';
import { resolveModel } from '../src/wiring/embedded.ts';
import { imagesPerSecond } from './bench-int8.ts';
import { round, syntheticInput } from './bench-support.ts';
import { calibrate, recall } from './eval-metrics.ts';
import { embedImages, offlineCorpus, precisionAnswers } from './eval-offline.ts';
import { quantizeToInt8 } from './int8-quantizer.ts';

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
const work = await mkdtemp(join(tmpdir(), 'pic-quantize-'));
try {
  const int8 = await quantizeToInt8(fp32, work, log);
  log('Comparing int8 with fp32 on the evaluation corpus (npm run eval’s photos and edits)…');
  const gate = await compare(fp32, int8.loaded, join(work, 'corpus'));
  const result = qualityGate(gate);
  const { recallAt1 } = gate;
  const summary = `exact copies: cosine min ${result.copyMinCosine.toFixed(6)} over ${gate.photos} photos, bound ${result.cosineBound.toFixed(6)} (duplicate threshold ${gate.duplicate}, ${gate.duplicateFrom}); all images: cosine min ${result.minCosine.toFixed(5)} mean ${result.meanCosine.toFixed(5)} over ${gate.fp32.length}; recall@1 fp32 ${recallAt1.fp32.toFixed(3)}, int8 ${recallAt1.int8.toFixed(3)}, int8 queries on the fp32 index ${recallAt1.acrossPrecisions.toFixed(3)} (${recallAt1.queries} queries)`;
  const refusalPath = int8RefusalPathFor(fp32.modelPath);
  if (!result.ok) {
    console.error(`The int8 model is REFUSED and was not written: ${result.reasons.join('; ')}.`);
    console.error(summary);
    const whitening = fp32.manifest.output.whitening;
    const refusal: Int8Refusal = {
      sourceSha256: fp32.manifest.sha256,
      ...(whitening ? { whiteningSha256: whitening.sha256 } : {}),
      reasons: result.reasons,
    };
    await writeFileAtomically(refusalPath, `${JSON.stringify(refusal, null, 2)}\n`);
    console.error(`Recorded in ${refusalPath}: npm start runs fp32 and does not quantize this model again.`);
    process.exitCode = 1;
  } else {
    await rm(refusalPath, { force: true });
    log(`Quality gate passed: ${summary}`);
    const speed = await measureSpeed(fp32, int8.loaded);
    log(
      `Pure inference on ${speed.cpu} [${speed.flags.join(' ')}], 1 thread, batch 1: fp32 ${speed.fp32MsPerImage} ms, int8 ${speed.int8MsPerImage} ms an image (int8 ÷ fp32 speed ${round(speed.fp32MsPerImage / speed.int8MsPerImage)}); the machine may be shared`,
    );
    const { file: _file, sha256: _sha256, matchThresholds: _fp32Thresholds, ...manifest } = fp32.manifest;
    // int8 moves scores: the fp32 thresholds are not its own (docs/search-quality.md).
    const matchThresholds = seededInt8Thresholds(fp32.manifest);
    const written = await writeModelFiles(int8ModelPathFor(fp32.modelPath), int8.bytes, {
      ...manifest,
      ...(matchThresholds ? { matchThresholds } : {}),
      source: `npm run model:quantize: int8 QDQ of ${fp32.manifest.source}`,
      quantization: {
        source: { file: basename(fp32.modelPath), sha256: fp32.manifest.sha256 },
        tool: INT8_RECIPE,
        format: 'QDQ',
        weights: 'int8, per channel',
        activations: 'uint8, per tensor',
        calibration: int8.calibration,
        parameters: int8.parameters,
        gate: {
          images: gate.fp32.length,
          photos: gate.photos,
          minCosine: round(result.minCosine, 6),
          meanCosine: round(result.meanCosine, 6),
          copyMinCosine: round(result.copyMinCosine, 6),
          duplicate: gate.duplicate,
          cosineBound: round(result.cosineBound, 6),
          recallAt1,
          maxRecallDrop: QUALITY_BOUNDS.maxRecallDrop,
        },
        speed,
      },
    });
    log(
      `Wrote ${written.manifestPath} (${(int8.bytes.length / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

/**
 * Both models on the evaluation corpus: the vectors of every indexed photo and every edited query (the
 * cosine gate), and recall@1 of the upright queries against each model's own index of the originals and
 * with int8 queries against the fp32 index. The `duplicate` threshold that sets the cosine bound: the fp32
 * model's own where it was calibrated, else the one this corpus calibrates for it (`npm run eval`'s rule).
 */
async function compare(fp32Model: LoadedManifest, int8Model: LoadedManifest, dir: string) {
  const offline = await offlineCorpus(dir);
  const vectorsOf = (loaded: LoadedManifest) => embedImages(loaded, offline.images, offline.files);
  const fp32 = await vectorsOf(fp32Model);
  const int8 = await vectorsOf(int8Model);
  const answers = precisionAnswers(offline, fp32, int8);
  const [before, after, across] = [
    recall(answers.fp32),
    recall(answers.int8),
    recall(answers.acrossPrecisions),
  ];
  const calibrated = fp32Model.manifest.matchThresholds?.duplicate;
  return {
    fp32,
    int8,
    photos: offline.keys.length,
    duplicate: calibrated ?? calibrate(answers.fp32).duplicate,
    duplicateFrom: calibrated === undefined ? 'calibrated on this corpus' : 'the fp32 manifest’s',
    recallAt1: {
      fp32: round(before.recall1, 4),
      int8: round(after.recall1, 4),
      acrossPrecisions: round(across.recall1, 4),
      queries: before.queries,
    },
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
      const perSecond = await imagesPerSecond(
        embedder,
        syntheticInput(loaded.manifest.input.size),
        1,
        SPEED_RUNS,
      );
      return round(1000 / perSecond, 1);
    } finally {
      await embedder.close();
    }
  };
  const cpu = await cpuInfo();
  const fp32MsPerImage = await msOf(fp32Model);
  const int8MsPerImage = await msOf(int8Model);
  return { cpu: cpu.model, flags: cpu.flags, threads: 1, batch: 1, fp32MsPerImage, int8MsPerImage };
}
