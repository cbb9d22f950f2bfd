/**
 * `npm run bench`: the embedded service's figures in one run (about 10–15 minutes on 2 cores).
 *   1. the embedding bench (scripts/bench-embed.ts --quick): pure inference throughput and the rest;
 *   2. ingest throughput of the running service over a folder of generated images, ÷ pure inference;
 *   3. vector search alone at 10k / 100k / 1M vectors, and the index's RSS at 1M (scripts/bench-index.ts);
 *   4. end-to-end POST /search latency over HTTP with 100k vectors stored, and the service's RSS.
 * Prints a table and writes bench-results/bench.json.
 *
 *   npm run bench -- [--images 300] [--requests 50] [--sizes 10000,100000,1000000] [--skip-embed]
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import sharp from 'sharp';
import {
  fixturesDir,
  getJson,
  makeDataDir,
  type ProgressBody,
  removeDir,
  repoRoot,
  type Service,
  startService,
} from '../local/service-process.ts';
import { ExactVectorIndex } from '../src/adapters/embedded/exact-vector-index.ts';
import { SqliteCatalogue } from '../src/adapters/embedded/sqlite-catalogue.ts';
import { vectorIdOf } from '../src/domain/ids.ts';
import type { IndexIdentity } from '../src/domain/ports.ts';
import { isImageKey } from '../src/imaging/formats.ts';
import { createPrng } from '../src/model/prng.ts';
import { dataLayout } from '../src/wiring/embedded.ts';
import { benchIndex, type IndexBenchRow } from './bench-index.ts';
import { percentile, round, unitVector } from './bench-support.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '300' },
    requests: { type: 'string', default: '50' },
    sizes: { type: 'string', default: '10000,100000,1000000' },
    'search-vectors': { type: 'string', default: '100000' },
    'ingest-minutes': { type: 'string', default: '4' },
    'skip-embed': { type: 'boolean', default: false },
  },
});
const resultsDir = resolve(repoRoot, 'bench-results');

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** 1. The embedding bench, as its own process (it is a script, not a library), read back from its JSON. */
async function embeddingBench(): Promise<{ pureImagesPerSecond: number; report: Record<string, unknown> }> {
  const out = join(resultsDir, 'embed.json');
  if (!args['skip-embed']) {
    log('embedding bench (scripts/bench-embed.ts --quick) …');
    await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench-embed.ts', '--quick', '--out', out],
      {
        cwd: repoRoot,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  }
  const report = JSON.parse(await readFile(out, 'utf8')) as {
    inference: { threads: number; batch: number; imagesPerSecond: number }[];
    defaults: { batchSize: number };
  };
  const cores = availableParallelism();
  const pure = report.inference.find((r) => r.threads === cores && r.batch === report.defaults.batchSize);
  if (!pure)
    throw new Error(
      `embed.json has no pure-inference row for ${cores} threads at batch ${report.defaults.batchSize}`,
    );
  return { pureImagesPerSecond: pure.imagesPerSecond, report };
}

/** Random crops and resizes of the fixtures: distinct images of ordinary photo sizes. */
async function generateImages(dir: string, count: number): Promise<void> {
  const names = (await readdir(fixturesDir)).filter(isImageKey);
  const sources = await Promise.all(names.map((name) => readFile(join(fixturesDir, name))));
  const random = createPrng(7);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const source = sources[i % sources.length] as Buffer;
    const { width = 1, height = 1 } = await sharp(source).metadata();
    const w = Math.max(32, Math.floor(width * (0.5 + random() * 0.5)));
    const h = Math.max(32, Math.floor(height * (0.5 + random() * 0.5)));
    const image = await sharp(source)
      .extract({
        left: Math.floor(random() * (width - w)),
        top: Math.floor(random() * (height - h)),
        width: w,
        height: h,
      })
      .resize({ width: Math.floor(300 + random() * 500) })
      .jpeg({ quality: 85 })
      .toBuffer();
    await writeFile(join(dir, `generated-${String(i).padStart(4, '0')}.jpg`), image);
  }
}

/** 2. Ingest throughput in steady state: from the first indexed batch to the last image (or the time cap). */
async function ingestThroughput(count: number) {
  const workDir = await makeDataDir();
  let service: Service | undefined;
  try {
    log(`generating ${count} images …`);
    await generateImages(join(workDir, 'images'), count);
    service = await startService(join(workDir, 'data'), { PIC_LOG_LEVEL: 'warn' });
    log(`ingesting ${count} images through ${service.url} …`);
    await fetch(`${service.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: join(workDir, 'images'), prefix: 'bench/' }),
    });
    const deadline = Date.now() + Number(args['ingest-minutes']) * 60_000;
    let first: { at: number; indexed: number } | undefined;
    let last: { at: number; indexed: number } = { at: performance.now(), indexed: 0 };
    while (Date.now() < deadline) {
      const progress = await getJson<ProgressBody>(`${service.url}/progress?failures=0`);
      last = { at: performance.now(), indexed: progress.indexed + progress.failed };
      if (!first && last.indexed > 0) first = last;
      if (last.indexed >= count) break;
      await sleep(200);
    }
    const imagesPerSecond =
      first && last.at > first.at ? (last.indexed - first.indexed) / ((last.at - first.at) / 1000) : 0;
    return {
      images: count,
      measured: last.indexed - (first?.indexed ?? 0),
      imagesPerSecond: round(imagesPerSecond),
    };
  } finally {
    await service?.stop();
    await removeDir(workDir);
  }
}

/** Fills the data folder's index and catalogue directly, as if `vectors` images had been ingested. */
async function fillDataDir(dataDir: string, identity: IndexIdentity, vectors: number): Promise<void> {
  const paths = dataLayout(dataDir);
  const index = new ExactVectorIndex(paths.index);
  const catalogue = new SqliteCatalogue(paths.catalogue);
  await index.ensure(identity);
  for (let start = 0; start < vectors; start += 1000) {
    const items = Array.from({ length: Math.min(1000, vectors - start) }, (_, i) => {
      const key = `bench/image-${start + i}.jpg`;
      return { id: vectorIdOf(key), key, vector: unitVector(start + i, 11) };
    });
    await index.upsert(items);
    await catalogue.markPending(items.map(({ id, key }) => ({ key, id })));
    await catalogue.markIndexed(
      items.map(({ id, key }) => ({ key, id, model: identity.model, profile: identity.profile })),
    );
  }
  await index.close();
  catalogue.close();
}

async function rssMiBOf(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return round(kb / 1024, 0);
}

/** 4. End-to-end POST /search over HTTP with `vectors` stored: client latency and the server's split. */
async function searchLatency(vectors: number, requests: number) {
  const dataDir = await makeDataDir();
  let service: Service | undefined;
  try {
    service = await startService(dataDir, { PIC_LOG_LEVEL: 'warn', PIC_WATCH: 'false' });
    const { index } = await getJson<{ index: IndexIdentity }>(`${service.url}/health`);
    await service.stop();
    log(`filling the index with ${vectors} random unit vectors and catalogue rows …`);
    await fillDataDir(dataDir, index, vectors);
    service = await startService(dataDir, { PIC_LOG_LEVEL: 'warn', PIC_WATCH: 'false' });
    const query = await sharp(join(fixturesDir, 'chimpanzee.jpg')).resize({ width: 300 }).jpeg().toBuffer();
    const once = async () => {
      const started = performance.now();
      const response = await fetch(`${service?.url}/search?topK=10`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: new Uint8Array(query),
      });
      const body = (await response.json()) as { results: unknown[]; timings: Record<string, number> };
      if (response.status !== 200 || body.results.length !== 10)
        throw new Error(`search failed: ${JSON.stringify(body)}`);
      return { ms: performance.now() - started, timings: body.timings };
    };
    for (let i = 0; i < 3; i++) await once();
    log(`${requests} searches at ${vectors} vectors …`);
    const samples = [];
    for (let i = 0; i < requests; i++) samples.push(await once());
    const stat = (values: number[]) => ({
      p50: round(percentile(values, 50), 1),
      p99: round(percentile(values, 99), 1),
    });
    return {
      vectors,
      requests,
      requestMs: stat(samples.map((s) => s.ms)),
      embedMs: stat(samples.map((s) => s.timings.embedMs ?? 0)),
      searchMs: stat(samples.map((s) => s.timings.searchMs ?? 0)),
      serviceRssMiB: await rssMiBOf(service.process.pid),
    };
  } finally {
    await service?.stop();
    await removeDir(dataDir);
  }
}

function table(rows: string[][]): string {
  return ['| figure | value | target |', '|---|---:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  );
}

const startedAt = performance.now();
const loadBefore = loadavg()[0] ?? 0;
const embed = await embeddingBench();
const ingest = await ingestThroughput(Number(args.images));
const ratio = round(ingest.imagesPerSecond / embed.pureImagesPerSecond, 3);
log('vector index bench (exact-onnx, the adapter in use) …');
const indexRows: IndexBenchRow[] = await benchIndex({
  sizes: (args.sizes as string).split(',').map(Number),
  candidates: ['exact-onnx'],
  queries: 30,
  // Not index.json: that file holds the full candidate comparison from `tsx scripts/bench-index.ts`.
  outFile: join(resultsDir, 'bench-index.json'),
  log,
});
const search = await searchLatency(Number(args['search-vectors']), Number(args.requests));
const loadAfter = loadavg()[0] ?? 0;

const rowAt = (n: number) => indexRows.find((r) => r.vectors === n);
const ms = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(1)} ms`);
const rows: string[][] = [
  ['pure inference (batch 8, all cores)', `${embed.pureImagesPerSecond} img/s`, ''],
  [`service ingest (${ingest.measured} of ${ingest.images} images)`, `${ingest.imagesPerSecond} img/s`, ''],
  ['ingest ÷ pure inference', `${ratio}`, '≥ 0.9'],
  ...indexRows.map((r) => [
    `vector search p50 / p99 at ${r.vectors.toLocaleString('en')}`,
    `${ms(r.p50Ms)} / ${ms(r.p99Ms)}`,
    r.vectors === 100_000 ? 'p50 ≤ 20 ms' : r.vectors === 1_000_000 ? 'p50 ≤ 200 ms' : '',
  ]),
  [
    `POST /search p50 / p99 at ${search.vectors.toLocaleString('en')} (HTTP, ${search.requests} requests)`,
    `${ms(search.requestMs.p50)} / ${ms(search.requestMs.p99)}`,
    '',
  ],
  ['  of which embed p50 / search p50', `${ms(search.embedMs.p50)} / ${ms(search.searchMs.p50)}`, ''],
  [`service RSS at ${search.vectors.toLocaleString('en')} vectors`, `${search.serviceRssMiB} MiB`, ''],
  [
    'index RSS at 1,000,000 vectors',
    rowAt(1_000_000) ? `${Math.round(rowAt(1_000_000)?.rssMiB ?? 0)} MiB` : '–',
    '',
  ],
];
const result = {
  date: new Date().toISOString(),
  machine: {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model,
    node: process.version,
    loadAverage1m: [loadBefore, loadAfter],
  },
  minutes: round((performance.now() - startedAt) / 60_000, 1),
  pureInferenceImagesPerSecond: embed.pureImagesPerSecond,
  ingest: { ...ingest, ratioToPureInference: ratio },
  index: indexRows,
  search,
};
await mkdir(resultsDir, { recursive: true });
await writeFile(join(resultsDir, 'bench.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `\n${table(rows)}\n\nload average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)} on ${availableParallelism()} cores; ${result.minutes} min; written to bench-results/bench.json`,
);
