/**
 * `npm run eval`: how well search finds the originals of edited copies, through the product's API.
 * For every descriptor configuration it prepares the seeded model (or takes --manifest), starts the
 * embedded service on it (`npm start`'s entry, a temporary data folder), ingests the corpus of
 * scripts/eval-corpus.ts, searches with every edited copy in each orientation mode, and prints recall@1,
 * recall@5 and MRR per transform, the duplicate label's precision, the thresholds the corpus calibrates,
 * and search latency. Nothing outside the repository is read. docs/search-quality.md has the results.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeDataDir, removeDir, startService, waitForSettled } from '../local/service-process.ts';
import { ORIENTATIONS, type Orientation, type SearchResponse } from '../src/app/operations.ts';
import { type Descriptor, loadManifest, ModelManifest } from '../src/model/manifest.ts';
import { writeSeededModel } from '../src/model/seeded.ts';
import { buildCorpus, type Corpus, TRANSFORMS } from './eval-corpus.ts';
import {
  type Answer,
  calibrate,
  heldOutDuplicatePrecision,
  labelPrecision,
  median,
  recall,
} from './eval-metrics.ts';

export interface EvalConfig {
  label: string;
  /** A model to evaluate as it is; otherwise the seeded model with `descriptor` (and `whitening`). */
  manifestPath?: string;
  descriptor?: Descriptor;
  whitening?: number;
}

export interface ConfigResult {
  config: EvalConfig;
  model: string;
  answers: Record<Orientation, Answer[]>;
}

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

async function manifestFor(config: EvalConfig, modelRoot: string): Promise<string> {
  if (config.manifestPath) return config.manifestPath;
  const { manifestPath } = await writeSeededModel({
    modelDir: join(modelRoot, config.label),
    ...(config.descriptor ? { descriptor: config.descriptor } : {}),
    ...(config.whitening ? { whitening: config.whitening } : {}),
  });
  return manifestPath;
}

/** Runs one configuration through a fresh embedded service. */
export async function evaluate(
  config: EvalConfig,
  corpus: Corpus,
  orientations: readonly Orientation[],
  modelRoot: string,
): Promise<ConfigResult> {
  const manifestPath = await manifestFor(config, modelRoot);
  const dataDir = await makeDataDir();
  const service = await startService(dataDir, {
    PIC_MODEL_MANIFEST: manifestPath,
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
    const answers = {} as Record<Orientation, Answer[]>;
    let model = '';
    for (const orientation of orientations) {
      answers[orientation] = [];
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
        answers[orientation].push({ query, hits: body.results, totalMs: body.timings.totalMs });
      }
    }
    return { config, model, answers };
  } finally {
    await service.stop();
    await removeDir(dataDir);
  }
}

const f2 = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(2));
const f3 = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(3));

/** Markdown tables: recall@1 per transform, then recall@5 / MRR / labels / latency per run. */
export function report(results: ConfigResult[]): string {
  const lines: string[] = [];
  lines.push(`| configuration | orientation | overall | ${TRANSFORMS.join(' | ')} |`);
  lines.push(`|---|---|---|${TRANSFORMS.map(() => '---').join('|')}|`);
  for (const { config, answers } of results) {
    for (const [orientation, list] of Object.entries(answers)) {
      const per = TRANSFORMS.map((t) => f2(recall(list.filter((a) => a.query.transform === t)).recall1));
      lines.push(`| ${config.label} | ${orientation} | ${f3(recall(list).recall1)} | ${per.join(' | ')} |`);
    }
  }
  lines.push(
    '',
    '| configuration | orientation | recall@1 | recall@5 | MRR | duplicate precision, served labels (n) | duplicate precision, held out (n) | calibrated duplicate / similar | median total ms |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const { config, answers } of results) {
    const thresholds = calibrate(Object.values(answers).flat());
    for (const [orientation, list] of Object.entries(answers)) {
      const r = recall(list);
      const duplicate = labelPrecision(list, 'duplicate');
      const heldOut = heldOutDuplicatePrecision(list);
      lines.push(
        `| ${config.label} | ${orientation} | ${f3(r.recall1)} | ${f3(r.recall5)} | ${f3(r.mrr)} | ${f3(duplicate.precision)} (${duplicate.count}) | ${f3(heldOut.precision)} (${heldOut.count}) | ${thresholds.duplicate} / ${thresholds.similar} | ${median(list.map((a) => a.totalMs)).toFixed(0)} |`,
      );
    }
  }
  return lines.join('\n');
}

/** Writes calibrated thresholds into a manifest (for models given with --manifest). */
async function writeThresholds(manifestPath: string, result: ConfigResult): Promise<void> {
  const { manifest } = await loadManifest(manifestPath);
  const thresholds = calibrate(Object.values(result.answers).flat());
  const updated = ModelManifest.parse({
    ...manifest,
    matchThresholds: {
      ...thresholds,
      calibratedOn: `npm run eval (${new Date().toISOString().slice(0, 10)})`,
    },
  });
  await writeFile(manifestPath, `${JSON.stringify(updated, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('scripts/eval.ts')) {
  const { values } = parseArgs({
    options: {
      configs: { type: 'string', default: 'mac,gem,rmac' },
      manifest: { type: 'string', multiple: true },
      orientations: { type: 'string', default: ORIENTATIONS.join(',') },
      calibrate: { type: 'boolean', default: false },
      json: { type: 'string' },
      report: { type: 'string', multiple: true },
    },
  });
  if (values.report?.length) {
    const saved = await Promise.all(
      values.report.map(async (path) => JSON.parse(await readFile(path, 'utf8')) as ConfigResult[]),
    );
    console.log(report(saved.flat()));
    process.exit(0);
  }
  const orientations = (values.orientations ?? '').split(',') as Orientation[];
  for (const o of orientations) if (!ORIENTATIONS.includes(o)) throw new Error(`Unknown orientation '${o}'`);
  const configs: EvalConfig[] = values.manifest?.length
    ? values.manifest.map((path) => ({ label: path, manifestPath: resolve(path) }))
    : (values.configs ?? '').split(',').map(parseConfig);
  const work = await makeDataDir();
  try {
    const started = performance.now();
    const corpus = await buildCorpus(join(work, 'corpus'));
    console.log(
      `Corpus: ${corpus.indexed} indexed photos, ${corpus.queries.length} edited copies (${TRANSFORMS.join(', ')}); CPU: ${cpus()[0]?.model} × ${cpus().length}`,
    );
    const results: ConfigResult[] = [];
    for (const config of configs) {
      const result = await evaluate(config, corpus, orientations, join(work, 'models'));
      results.push(result);
      console.log(
        `${config.label} (${result.model}) done after ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
      if (values.calibrate && config.manifestPath) await writeThresholds(config.manifestPath, result);
    }
    console.log(`\n${report(results)}`);
    if (values.json) await writeFile(values.json, JSON.stringify(results, null, 2));
  } finally {
    await removeDir(work);
  }
}
