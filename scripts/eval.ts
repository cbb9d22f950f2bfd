/**
 * `npm run eval`: how well search finds the originals of edited copies, through the product's API.
 * For every descriptor configuration and precision it prepares the seeded model (or takes --manifest;
 * int8: quantizes it unless its int8 model exists), starts the embedded service on it (`npm start`'s entry,
 * a temporary data folder), ingests the corpus of scripts/eval-corpus.ts, searches with every edited copy
 * in each orientation mode, and prints recall@1, recall@5 and MRR per transform, the duplicate label's
 * precision, the thresholds the corpus calibrates, search latency, and issue 15/16's targets checked.
 * Nothing outside the repository is read. docs/search-quality.md has the results.
 *
 *   npm run eval -- [--descriptors all|gem-w256,mac,gem,rmac] [--orientations all|upright,any]
 *                   [--precisions fp32,int8] [--json runs.json] [--report runs.json …]
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { makeDataDir, removeDir, startService, waitForSettled } from '../local/service-process.ts';
import { ORIENTATIONS, type Orientation, type SearchResponse } from '../src/app/operations.ts';
import { DEFAULT_DESCRIPTOR, DEFAULT_SEEDED_WHITENING } from '../src/model/descriptors.ts';
import { type Descriptor, loadManifest, ModelManifest } from '../src/model/manifest.ts';
import { chooseModel, cpuInfo, int8ManifestPathFor } from '../src/model/precision.ts';
import { writeSeededModel } from '../src/model/seeded.ts';
import { buildCorpus, type Corpus, TRANSFORMS } from './eval-corpus.ts';
import { type Answer, calibrate } from './eval-metrics.ts';
import {
  type ConfigResult,
  type EvalConfig,
  type EvalPrecision,
  report,
  targetChecks,
  targetLines,
} from './eval-report.ts';

/** The seeded model's default head, as `npm start` prepares it. */
export const DEFAULT_CONFIG = `${DEFAULT_DESCRIPTOR}-w${DEFAULT_SEEDED_WHITENING}`;
/** `--descriptors all`: the default first, then the heads it was chosen against. */
export const ALL_CONFIGS = [DEFAULT_CONFIG, 'mac', 'gem', 'rmac'];
const PRECISIONS: readonly EvalPrecision[] = ['fp32', 'int8'];

/** "gem" → GeM; "gem-w256" → GeM whitened to 256 dimensions. */
export function parseConfig(spec: string): EvalConfig {
  const match = /^(mac|gem|rmac)(?:-w(\d+))?$/.exec(spec);
  if (!match)
    throw new Error(`Unknown configuration '${spec}': use mac, gem or rmac, optionally -wN (e.g. gem-w256)`);
  return {
    label: spec,
    descriptor: match[1] as Descriptor,
    ...(match[2] ? { whitening: Number(match[2]) } : {}),
  };
}

/** A comma-separated flag value, `all` standing for every allowed value; anything else unknown is refused. */
export function listOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value === 'all' ? [...allowed] : value.split(',').map((item) => item.trim());
  const unknown = items.filter((item) => !allowed.includes(item as T));
  if (unknown.length > 0 || items.length === 0)
    throw new Error(`--${flag}: unknown '${unknown.join(',')}'; use ${allowed.join(', ')} or all`);
  return items as T[];
}

/** The runs a command line asks for: each configuration at each precision, in that order. */
export function planRuns(values: {
  descriptors: string;
  manifest?: string[];
  orientations: string;
  precisions: string;
}): { configs: EvalConfig[]; orientations: Orientation[]; precisions: EvalPrecision[] } {
  const configs = values.manifest?.length
    ? values.manifest.map((path) => ({ label: path, manifestPath: resolve(path) }))
    : (values.descriptors === 'all' ? ALL_CONFIGS : values.descriptors.split(',')).map(parseConfig);
  return {
    configs,
    orientations: listOf('orientations', values.orientations, ORIENTATIONS),
    precisions: listOf('precisions', values.precisions, PRECISIONS),
  };
}

async function manifestFor(config: EvalConfig, modelRoot: string): Promise<string> {
  if (config.manifestPath) return config.manifestPath;
  const { manifestPath } = await writeSeededModel({
    modelDir: join(modelRoot, config.label),
    ...(config.descriptor ? { descriptor: config.descriptor } : {}),
    ...(config.whitening ? { whitening: config.whitening } : {}),
  });
  return manifestPath;
}

/**
 * Makes the int8 model beside `manifestPath`'s fp32 one with `npm run model:quantize` (several minutes, its
 * quality gate included) when there is none. Resolves why there is no usable int8 model (the quantizer
 * refused it, or the service would not load it), or undefined when there is one.
 */
async function int8Refusal(manifestPath: string): Promise<string | undefined> {
  const fp32 = await loadManifest(manifestPath);
  if (!existsSync(int8ManifestPathFor(fp32.modelPath))) {
    console.log(`quantizing ${manifestPath} (npm run model:quantize) …`);
    const refused = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/model-quantize.ts', '--manifest', manifestPath],
      { cwd: resolve(import.meta.dirname, '..'), maxBuffer: 1 << 26 },
    ).then(
      () => undefined,
      (error: { stdout?: string; stderr?: string }) =>
        `model:quantize: ${(error.stderr || error.stdout || '').trim().split('\n').join(' ')}`,
    );
    if (refused) return refused;
  }
  const errors: string[] = [];
  const chosen = await chooseModel(fp32, {
    precision: 'int8',
    provider: 'cpu',
    log: { info: () => undefined, error: (line) => errors.push(line) },
  });
  return chosen.precision === 'int8' ? undefined : errors.join('; ');
}

/** Runs one configuration at one precision through a fresh embedded service. */
export async function evaluate(
  config: EvalConfig,
  manifestPath: string,
  precision: EvalPrecision,
  corpus: Corpus,
  orientations: readonly Orientation[],
): Promise<ConfigResult> {
  const dataDir = await makeDataDir();
  const service = await startService(dataDir, {
    PIC_MODEL_MANIFEST: manifestPath,
    PIC_MODEL_PRECISION: precision,
    // The service would otherwise quantize in the background while it is being measured.
    PIC_INT8_PREPARE: 'false',
    PIC_MODEL_FETCH: 'false',
    PIC_WATCH: 'false',
    PIC_LOG_LEVEL: 'warn',
  });
  try {
    const ingest = await fetch(`${service.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: corpus.indexDir, prefix: 'corpus/' }),
    });
    if (!ingest.ok) throw new Error(`ingest: ${ingest.status} ${await ingest.text()}`);
    await waitForSettled(service, (p) => p.indexed + p.failed >= corpus.indexed, 3_600_000);
    const answers: ConfigResult['answers'] = {};
    let model = '';
    for (const orientation of orientations) {
      const list: Answer[] = [];
      for (const query of corpus.queries) {
        const response = await fetch(`${service.url}/search?topK=5&orientation=${orientation}`, {
          method: 'POST',
          headers: { 'content-type': 'image/jpeg' },
          body: await readFile(query.file),
        });
        if (!response.ok)
          throw new Error(`search ${query.file}: ${response.status} ${await response.text()}`);
        const body = (await response.json()) as SearchResponse;
        model = body.model;
        list.push({ query, hits: body.results, totalMs: body.timings.totalMs });
      }
      answers[orientation] = list;
    }
    return { config, precision, model, answers };
  } finally {
    await service.stop();
    await removeDir(dataDir);
  }
}

const tablesAndTargets = (results: ConfigResult[]) =>
  `${report(results)}\n\n${targetLines(targetChecks(results, DEFAULT_CONFIG), DEFAULT_CONFIG).join('\n')}`;

/** Writes thresholds calibrated at a precision into its model's manifest (for models given with --manifest). */
async function writeThresholds(manifestPath: string, result: ConfigResult): Promise<void> {
  const { manifest } = await loadManifest(manifestPath);
  const thresholds = calibrate(Object.values(result.answers).flat());
  const updated = ModelManifest.parse({
    ...manifest,
    matchThresholds: {
      ...thresholds,
      calibratedOn: `npm run eval (${result.precision}, ${new Date().toISOString().slice(0, 10)})`,
    },
  });
  await writeFile(manifestPath, `${JSON.stringify(updated, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('scripts/eval.ts')) {
  const { values } = parseArgs({
    options: {
      descriptors: { type: 'string', default: 'all' },
      manifest: { type: 'string', multiple: true },
      orientations: { type: 'string', default: 'all' },
      precisions: { type: 'string', default: 'fp32' },
      calibrate: { type: 'boolean', default: false },
      json: { type: 'string' },
      report: { type: 'string', multiple: true },
    },
  });
  if (values.report?.length) {
    const saved = await Promise.all(
      values.report.map(async (path) => JSON.parse(await readFile(path, 'utf8')) as ConfigResult[]),
    );
    console.log(tablesAndTargets(saved.flat()));
    process.exit(0);
  }
  const { configs, orientations, precisions } = planRuns(values);
  const cpu = await cpuInfo();
  const work = await makeDataDir();
  try {
    const started = performance.now();
    const corpus = await buildCorpus(join(work, 'corpus'));
    console.log(
      `Corpus: ${corpus.indexed} indexed photos, ${corpus.queries.length} edited copies (${TRANSFORMS.join(', ')}); CPU: ${cpu.model} × ${cpus().length} [${cpu.flags.join(' ')}]; load average ${loadavg()[0]?.toFixed(1)}`,
    );
    const results: ConfigResult[] = [];
    const refusals: string[] = [];
    for (const config of configs) {
      const manifestPath = await manifestFor(config, join(work, 'models'));
      for (const precision of precisions) {
        const refusal = precision === 'int8' ? await int8Refusal(manifestPath) : undefined;
        if (refusal) {
          refusals.push(`${config.label} int8 not measured: ${refusal}`);
          console.log(refusals.at(-1));
          continue;
        }
        const result = await evaluate(config, manifestPath, precision, corpus, orientations);
        results.push(result);
        console.log(
          `${config.label} ${precision} (${result.model}) done after ${((performance.now() - started) / 1000).toFixed(0)} s; load average ${loadavg()[0]?.toFixed(1)}`,
        );
        if (values.calibrate && config.manifestPath)
          await writeThresholds(
            precision === 'int8'
              ? int8ManifestPathFor((await loadManifest(manifestPath)).modelPath)
              : manifestPath,
            result,
          );
        // After every run, so a long run stopped halfway keeps what it measured (--report prints it).
        if (values.json) await writeFile(values.json, JSON.stringify(results, null, 2));
      }
    }
    console.log(`\n${tablesAndTargets(results)}${refusals.map((line) => `\n${line}`).join('')}`);
  } finally {
    await removeDir(work);
  }
}
