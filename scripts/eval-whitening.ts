/**
 * `npm run eval:whitening`: how whitening shapes trade recall for int8 robustness, measured offline
 * (docs/models.md, whitening and int8). Prepares the seeded GeM model without whitening and its int8 graph
 * (model:quantize's quantizer, ungated: it is measured here) in a temporary folder, embeds the calibration
 * views (fp32) and the evaluation corpus (fp32 and int8) once, then for every candidate learns the
 * whitening from the calibration views and prints the int8 quality gate's figures (exact copies' cosine to
 * fp32 against the bound the candidate's `duplicate` threshold sets, recall@1 drop) and the upright
 * recall@1, per edit, with the `duplicate` threshold and its held-out precision; then, across precisions
 * (int8 queries, fp32 index: GPU workers and an int8 search), upright recall@1 and how the indexed photos'
 * exact copies score. Several minutes on 2 cores.
 *
 *   npm run eval:whitening -- [--candidates 256:1:0.5,256:4:0.5,128:1:0.5,256:32:0.5:0.5]
 *
 * A candidate is dimension:shrinkage:power[:centring]; centring is the share of the calibration mean
 * subtracted (1, what the product does; less keeps part of the descriptors' common component), measured
 * here only. `0` alone is GeM without whitening.
 */
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeDataDir, removeDir } from '../local/service-process.ts';
import { l2Normalise, whiten } from '../src/embedder/vectors.ts';
import { calibrationImages } from '../src/model/calibration.ts';
import { loadManifest } from '../src/model/manifest.ts';
import { cpuInfo } from '../src/model/precision.ts';
import { qualityGate } from '../src/model/quality-gate.ts';
import { writeSeededModel } from '../src/model/seeded.ts';
import { principalComponents, type WhiteningShape, whiteningOf } from '../src/model/whitening.ts';
import { TRANSFORMS } from './eval-corpus.ts';
import { calibrate, heldOutDuplicatePrecision, recall } from './eval-metrics.ts';
import { embedImages, exactCopies, offlineCorpus, precisionAnswers } from './eval-offline.ts';
import { quantizeToInt8 } from './int8-quantizer.ts';

const DEFAULT_CANDIDATES = '0,256:1:0.5,256:4:0.5,256:16:0.5,256:1:0.25,128:1:0.5,64:1:0.5';

export interface Candidate {
  shape?: WhiteningShape;
  centring: number;
}

/** "256:4:0.5" → whitened to 256 at shrinkage 4, power ½, fully centred; "0" → no whitening. */
export function parseCandidate(spec: string): Candidate {
  if (spec === '0') return { centring: 1 };
  const [dimension, shrinkage, power, centring = 1, ...rest] = spec.split(':').map(Number);
  const valid = [dimension, shrinkage, power, centring].every(
    (n) => Number.isFinite(n) && (n as number) >= 0,
  );
  if (!valid || rest.length > 0 || !Number.isInteger(dimension) || !dimension)
    throw new Error(
      `Bad candidate '${spec}': use dimension:shrinkage:power[:centring], e.g. 256:4:0.5, or 0`,
    );
  return { shape: { dimension, shrinkage, power } as WhiteningShape, centring };
}

if (
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith('scripts/eval-whitening.ts')
) {
  const { values } = parseArgs({ options: { candidates: { type: 'string', default: DEFAULT_CANDIDATES } } });
  const candidates = (values.candidates as string)
    .split(',')
    .map((spec) => ({ spec, ...parseCandidate(spec) }));
  const cpu = await cpuInfo();
  console.log(
    `CPU: ${cpu.model} × ${cpus().length} [${cpu.flags.join(' ')}]; load average ${loadavg()[0]?.toFixed(1)}`,
  );
  const work = await makeDataDir();
  try {
    const { manifestPath } = await writeSeededModel({
      modelDir: join(work, 'gem'),
      descriptor: 'gem',
      whitening: 0,
    });
    console.log('quantizing GeM without whitening (npm run model:quantize’s quantizer, ungated) …');
    const fp32Model = await loadManifest(manifestPath);
    const int8Model = (await quantizeToInt8(fp32Model, await mkdtemp(join(work, 'int8-')), console.log))
      .loaded;
    console.log('embedding the corpus (fp32, int8) and the calibration views (fp32) …');
    const offline = await offlineCorpus(join(work, 'corpus'));
    const fp32Raw = await embedImages(fp32Model, offline.images, offline.files);
    const int8Raw = await embedImages(int8Model, offline.images, offline.files);
    const views = await calibrationImages();
    const components = principalComponents(
      await embedImages(
        fp32Model,
        views,
        views.map((_, i) => `view ${i}`),
      ),
    );
    console.log(
      `\n| dimension | shrinkage | power | centring | copy cos min | bound | cos min (all) | cos mean | recall@1 fp32 | int8 | ${TRANSFORMS.join(' | ')} | duplicate threshold | held out fp32 (n) | int8 (n) |`,
    );
    console.log(`|${' --- |'.repeat(13 + TRANSFORMS.length)}`);
    const acrossPrecisions: string[] = [];
    for (const { shape, centring } of candidates) {
      const learnt = shape && whiteningOf(components, shape);
      const apply = (vector: Float32Array) =>
        learnt
          ? l2Normalise(
              whiten(vector, {
                ...learnt,
                mean: learnt.mean.map((m) => m * centring),
                dimension: shape.dimension,
              }),
            )
          : vector;
      const fp32 = fp32Raw.map(apply);
      const int8 = int8Raw.map(apply);
      const answers = precisionAnswers(offline, fp32, int8);
      const [fp32Answers, int8Answers] = [answers.fp32, answers.int8];
      const [before, after, across] = [
        recall(fp32Answers),
        recall(int8Answers),
        recall(answers.acrossPrecisions),
      ];
      const indexed = offline.keys.length;
      const duplicate = calibrate(fp32Answers).duplicate;
      const gate = qualityGate({
        fp32,
        int8,
        photos: indexed,
        duplicate,
        recallAt1: {
          fp32: before.recall1,
          int8: after.recall1,
          acrossPrecisions: across.recall1,
          queries: before.queries,
        },
      });
      const perEdit = TRANSFORMS.map((t) =>
        recall(fp32Answers.filter((a) => a.query.transform === t)).recall1.toFixed(2),
      );
      const held = (answers: typeof fp32Answers) => {
        const { precision, count } = heldOutDuplicatePrecision(answers);
        return `${precision?.toFixed(3) ?? '—'} (${count})`;
      };
      const shapeCells = shape
        ? [shape.dimension, shape.shrinkage, shape.power, centring].join(' | ')
        : 'none | | |';
      const copies = exactCopies(fp32.slice(0, indexed), int8.slice(0, indexed), duplicate);
      acrossPrecisions.push(
        `| ${shapeCells} | ${across.recall1.toFixed(3)} | ${copies.first} / ${copies.photos} | ${copies.duplicates} / ${copies.photos} | ${copies.ownMin.toFixed(4)} | ${copies.impostorMax.toFixed(4)} | ${(copies.ownMin - copies.impostorMax).toFixed(4)} |`,
      );
      console.log(
        `| ${shapeCells} | ${gate.copyMinCosine.toFixed(4)} | ${gate.cosineBound.toFixed(4)}${gate.ok ? '' : ' ✗'} | ${gate.minCosine.toFixed(4)} | ${gate.meanCosine.toFixed(4)} | ${before.recall1.toFixed(3)} | ${after.recall1.toFixed(3)} | ${perEdit.join(' | ')} | ${duplicate} | ${held(fp32Answers)} | ${held(int8Answers)} |`,
      );
    }
    console.log(
      '\nint8 queries against the fp32 index; exact copies: each indexed photo searched with its int8 vector (duplicate: the fp32 threshold above)',
    );
    console.log(
      '| dimension | shrinkage | power | centring | recall@1 | copy first | copy labelled duplicate | copy score min | impostor max | gap |',
    );
    console.log(`|${' --- |'.repeat(10)}`);
    for (const row of acrossPrecisions) console.log(row);
  } finally {
    await removeDir(work);
  }
}
