/**
 * `npm run bench`: the embedded service's figures in one run, with the CPU model and its int8 flags.
 *   0. the model: the fp32 one `npm start` uses (or --manifest), its int8 model (made with
 *      `npm run model:quantize` when missing, as `npm start` would) and the precision the service picks;
 *   1. int8 ÷ fp32 pure inference, interleaved, at the best batch size (scripts/bench-int8.ts), and the
 *      embedding bench (scripts/bench-embed.ts --quick; not with --quick);
 *   2. ingest throughput of the running service, ÷ pure inference of the same model run as ingest runs it,
 *      and that ratio's ceiling when decoding and thumbnails take CPU from the same cores;
 *   3. vector search alone per index size (scripts/bench-index.ts);
 *   4. POST /search over HTTP at 100k vectors (upright, and orientation=any), and the service's peak RSS,
 *      for fp32 and int8 one after the other on the same data folder.
 * Prints the lines and a table, and writes bench-results/bench.json.
 *
 *   npm run bench                       # about 4 minutes on 2 free cores
 *   npm run bench -- --quick            # under 10 minutes (once the int8 model exists)
 *   npm run bench -- [--images 300] [--requests 50] [--any-requests 10] [--sizes 10000,100000,1000000]
 *                    [--search-vectors 100000] [--ingest-minutes 4] [--manifest models/x.manifest.json]
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
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
import { loadConfig } from '../src/config.ts';
import { vectorIdOf } from '../src/domain/ids.ts';
import type { IndexIdentity } from '../src/domain/ports.ts';
import { ingestSessions } from '../src/embedder/threaded-embedder.ts';
import { isImageKey } from '../src/imaging/formats.ts';
import { SharpImageProcessor } from '../src/imaging/image-processor.ts';
import { type LoadedManifest, loadManifest } from '../src/model/manifest.ts';
import { manifestPathFor } from '../src/model/model-files.ts';
import { type ChosenModel, chooseModel, cpuInfo, int8ManifestPathFor } from '../src/model/precision.ts';
import { createPrng } from '../src/model/prng.ts';
import { dataLayout, resolveModel } from '../src/wiring/embedded.ts';
import { benchIndex, type IndexBenchRow } from './bench-index.ts';
import { compareInt8, type Int8Comparison, int8Lines } from './bench-int8.ts';
import { percentile, round, unitVector } from './bench-support.ts';

export interface BenchSettings {
  quick: boolean;
  images: number;
  requests: number;
  anyRequests: number;
  sizes: number[];
  searchVectors: number;
  ingestMinutes: number;
  /** Runs of each model per setting in the int8 ÷ fp32 comparison. */
  int8Runs: number;
  manifest?: string;
}

/** The command line, with --quick's smaller defaults where a flag is not given. */
export function benchSettings(argv: string[]): BenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      images: { type: 'string' },
      requests: { type: 'string' },
      'any-requests': { type: 'string' },
      sizes: { type: 'string' },
      'search-vectors': { type: 'string', default: '100000' },
      'ingest-minutes': { type: 'string' },
      manifest: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const count = (flag: string, value: string | undefined, fallback: number) => {
    const n = Number(value ?? fallback);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, not '${value}'`);
    return n;
  };
  return {
    quick,
    images: count('images', values.images, quick ? 60 : 300),
    requests: count('requests', values.requests, quick ? 30 : 50),
    anyRequests: count('any-requests', values['any-requests'], quick ? 5 : 10),
    sizes: (values.sizes ?? (quick ? '10000,100000' : '10000,100000,1000000'))
      .split(',')
      .map((size) => count('sizes', size, 0)),
    searchVectors: count('search-vectors', values['search-vectors'], 100_000),
    ingestMinutes: count('ingest-minutes', values['ingest-minutes'], quick ? 2 : 4),
    int8Runs: quick ? 2 : 4,
    ...(values.manifest ? { manifest: resolve(values.manifest) } : {}),
  };
}

const resultsDir = resolve(repoRoot, 'bench-results');
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** 0. The int8 model beside the fp32 one, made (or remade) as `npm start` would; the reason when there is none. */
async function ensureInt8(fp32: LoadedManifest): Promise<string | undefined> {
  const quiet = { info: () => undefined, error: () => undefined };
  const outdated = async () =>
    (await chooseModel(fp32, { precision: 'int8', provider: 'cpu', log: quiet })).int8Outdated;
  if (existsSync(int8ManifestPathFor(fp32.modelPath)) && !(await outdated())) return undefined;
  log('no int8 model of the current recipe yet: npm run model:quantize (about a minute) …');
  return promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'scripts/model-quantize.ts', '--manifest', manifestPathFor(fp32.modelPath)],
    { cwd: repoRoot, maxBuffer: 1 << 26 },
  ).then(
    () => undefined,
    (error: { stdout?: string; stderr?: string }) =>
      `model:quantize refused or failed: ${(error.stderr || error.stdout || '').trim().split('\n').join(' ')}`,
  );
}

/**
 * Images/s of inference alone, run the way the service's ingest runs it: its sessions (one per core, one
 * thread each, on this CPU), each on a thread of its own (here a process: scripts/bench-session.ts), all
 * busy at once on batches of `batch`; the rate is timed to the last session's end.
 */
async function pureInferenceAsIngest(loaded: LoadedManifest, batch: number, runs: number) {
  const { sessions, intraOpNumThreads } = ingestSessions(availableParallelism(), ['cpu']);
  const children = Array.from({ length: sessions }, () =>
    spawn(
      process.execPath,
      [
        ...['--import', 'tsx', 'scripts/bench-session.ts', manifestPathFor(loaded.modelPath)],
        ...[String(batch), String(runs), String(intraOpNumThreads)],
      ],
      { cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  const lines = children.map((child) => {
    const reader = createInterface({ input: child.stdout });
    return reader[Symbol.asyncIterator]();
  });
  const nextLine = async (i: number) => {
    const { value, done } = await (lines[i] as AsyncIterator<string>).next();
    if (done) throw new Error(`bench-session ${i} ended early (exit ${children[i]?.exitCode})`);
    return value as string;
  };
  await Promise.all(children.map((_, i) => nextLine(i)));
  for (const child of children) child.stdin.write('go\n');
  const ms = await Promise.all(children.map(async (_, i) => Number(await nextLine(i))));
  const imagesPerSecond = (sessions * runs * batch * 1000) / Math.max(...ms);
  return {
    sessions,
    batch,
    imagesPerSecond: round(imagesPerSecond),
    // The cores the sessions keep busy, per image: what an image's inference costs ingest.
    cpuMsPerImage: round((sessions * intraOpNumThreads * 1000) / imagesPerSecond),
  };
}

/**
 * CPU milliseconds an image costs ingest besides inference, as the service's image processor does it
 * (decode, the model's pixels and tensor, the WebP thumbnail): the images one after another, the second
 * pass timed. On the ingest sessions' own cores this work bounds ingest ÷ pure inference at I ÷ (I + this).
 */
async function preprocessCpuMs(loaded: LoadedManifest, dir: string): Promise<number> {
  const processor = SharpImageProcessor.forModel(loaded.manifest);
  const images = await Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name))));
  let cpuMs = 0;
  for (let pass = 0; pass < 2; pass++) {
    const before = process.cpuUsage();
    for (const image of images) await processor.process(image, { thumbnail: true });
    const used = process.cpuUsage(before);
    cpuMs = (used.user + used.system) / 1000;
  }
  return round(cpuMs / images.length);
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
async function ingestThroughput(
  loaded: LoadedManifest,
  count: number,
  minutes: number,
  env: Record<string, string>,
) {
  const workDir = await makeDataDir();
  let service: Service | undefined;
  try {
    log(`generating ${count} images …`);
    await generateImages(join(workDir, 'images'), count);
    const preprocessMsPerImage = await preprocessCpuMs(loaded, join(workDir, 'images'));
    service = await startService(join(workDir, 'data'), { ...env, PIC_LOG_LEVEL: 'warn' });
    log(`ingesting ${count} images through ${service.url} …`);
    await fetch(`${service.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: join(workDir, 'images'), prefix: 'bench/' }),
    });
    const deadline = Date.now() + minutes * 60_000;
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
      preprocessMsPerImage,
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
      return { id: vectorIdOf(key), key, vector: unitVector(start + i, 11, identity.dimension) };
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

/** Resident and peak resident memory of a process, MiB (Linux /proc). */
async function memoryOf(pid: number | undefined): Promise<{ rssMiB: number; peakRssMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const mib = (field: string) =>
    round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) / 1024, 0);
  return { rssMiB: mib('VmRSS'), peakRssMiB: mib('VmHWM') };
}

const stat = (values: number[]) => ({
  p50: round(percentile(values, 50), 1),
  p99: round(percentile(values, 99), 1),
});

/**
 * 4. POST /search over HTTP on a filled data folder: client latency, the server's split, peak RSS; then
 * the API's latency while searches keep the search session busy: two clients search back to back (so a
 * search always waits for the session) and a third asks GET /health and GET /count in turn.
 */
async function searchLatency(
  dataDir: string,
  env: Record<string, string>,
  requests: number,
  anyRequests: number,
) {
  const service = await startService(dataDir, { ...env, PIC_LOG_LEVEL: 'warn', PIC_WATCH: 'false' });
  try {
    const query = await sharp(join(fixturesDir, 'chimpanzee.jpg')).resize({ width: 300 }).jpeg().toBuffer();
    const once = async (orientation: 'upright' | 'any') => {
      const started = performance.now();
      const response = await fetch(`${service.url}/search?topK=10&orientation=${orientation}`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: new Uint8Array(query),
      });
      const body = (await response.json()) as { results: unknown[]; timings: Record<string, number> };
      if (response.status !== 200 || body.results.length !== 10)
        throw new Error(`search failed: ${JSON.stringify(body)}`);
      return { ms: performance.now() - started, timings: body.timings };
    };
    const timedGet = async (path: string) => {
      const started = performance.now();
      const response = await fetch(`${service.url}${path}`);
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
      return performance.now() - started;
    };
    for (let i = 0; i < 3; i++) await once('upright');
    const samples = [];
    for (let i = 0; i < requests; i++) samples.push(await once('upright'));
    const anySamples = [];
    for (let i = 0; i < anyRequests; i++) anySamples.push(await once('any'));
    const busy = { searches: [] as number[], health: [] as number[], count: [] as number[] };
    let searching = true;
    const searcher = async () => {
      while (busy.searches.length < requests) busy.searches.push((await once('upright')).ms);
    };
    const prober = async () => {
      while (searching) {
        busy.health.push(await timedGet('/health'));
        busy.count.push(await timedGet('/count'));
        await sleep(10);
      }
    };
    const probing = prober();
    await Promise.all([searcher(), searcher()]);
    searching = false;
    await probing;
    return {
      requests,
      requestMs: stat(samples.map((s) => s.ms)),
      decodeMs: stat(samples.map((s) => s.timings.decodeMs ?? 0)),
      embedMs: stat(samples.map((s) => s.timings.embedMs ?? 0)),
      searchMs: stat(samples.map((s) => s.timings.searchMs ?? 0)),
      lookupMs: stat(samples.map((s) => s.timings.lookupMs ?? 0)),
      /** The server's own time (timings.totalMs): the rest of the request's is HTTP and the client. */
      serverMs: stat(samples.map((s) => s.timings.totalMs ?? 0)),
      any: { requests: anyRequests, requestMs: stat(anySamples.map((s) => s.ms)) },
      whileBusy: {
        searches: busy.searches.length,
        probes: busy.health.length,
        searchMs: stat(busy.searches),
        healthMs: stat(busy.health),
        countMs: stat(busy.count),
      },
      ...(await memoryOf(service.process.pid)),
    };
  } finally {
    await service.stop();
  }
}

type SearchFigures = Awaited<ReturnType<typeof searchLatency>>;

/** The search session's intra-op threads compared by the bench: one, and the service's default (PIC_THREADS). */
export function searchThreadsToCompare(defaultThreads: number): number[] {
  return [...new Set([1, defaultThreads])];
}

/**
 * Both precisions with the service's default search threads, then the chosen precision with each other
 * thread count, on one data folder filled once with `vectors` vectors; int8 only when there is one.
 */
async function searchBothPrecisions(
  settings: BenchSettings,
  env: Record<string, string>,
  int8: boolean,
  chosen: 'fp32' | 'int8',
) {
  const dataDir = await makeDataDir();
  try {
    const probe = await startService(dataDir, { ...env, PIC_LOG_LEVEL: 'warn', PIC_WATCH: 'false' });
    const { index } = await getJson<{ index: IndexIdentity }>(`${probe.url}/health`);
    await probe.stop();
    log(`filling the index with ${settings.searchVectors} random unit vectors and catalogue rows …`);
    await fillDataDir(dataDir, index, settings.searchVectors);
    const run = (precision: 'fp32' | 'int8', threads?: number) => {
      log(
        `${settings.requests} + ${settings.anyRequests} (orientation=any) searches, then ${settings.requests} from two clients with /health and /count probes, ${precision}${threads ? `, ${threads} search threads` : ''} …`,
      );
      return searchLatency(
        dataDir,
        {
          ...env,
          PIC_MODEL_PRECISION: precision,
          ...(threads ? { PIC_SEARCH_THREADS: String(threads) } : {}),
        },
        settings.requests,
        settings.anyRequests,
      );
    };
    const search: Partial<Record<'fp32' | 'int8', SearchFigures>> = {};
    for (const precision of int8 ? (['fp32', 'int8'] as const) : (['fp32'] as const))
      search[precision] = await run(precision);
    const defaultThreads = loadConfig({ ...process.env, ...env }).searchThreads;
    const byThreads: { threads: number; figures: SearchFigures }[] = [];
    for (const threads of searchThreadsToCompare(defaultThreads)) {
      const figures = threads === defaultThreads ? search[chosen] : await run(chosen, threads);
      if (figures) byThreads.push({ threads, figures });
    }
    return { search, searchThreads: { default: defaultThreads, rows: byThreads } };
  } finally {
    await removeDir(dataDir);
  }
}

export interface BenchReport {
  cpu: { model: string; flags: string[]; cores: number };
  chosen: { precision: 'fp32' | 'int8'; reason: string };
  int8?: Int8Comparison;
  int8Missing?: string;
  pure: {
    precision: 'fp32' | 'int8';
    sessions: number;
    batch: number;
    imagesPerSecond: number;
    cpuMsPerImage: number;
  };
  ingest: { images: number; measured: number; imagesPerSecond: number; preprocessMsPerImage: number };
  index: IndexBenchRow[];
  searchVectors: number;
  search: Partial<Record<'fp32' | 'int8', SearchFigures>>;
  /** The chosen precision's searches by the search session's intra-op threads (PIC_SEARCH_THREADS). */
  searchThreads: { default: number; rows: { threads: number; figures: SearchFigures }[] };
  loadAverage: [number, number];
  minutes: number;
}

const ms = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(1)} ms`);

/** The lines issue 16 asks for, then the table. */
export function benchLines(r: BenchReport): string[] {
  const n = r.searchVectors.toLocaleString('en');
  const chosen = r.search[r.chosen.precision];
  // Steady state needs at least two batches indexed; with fewer images there is no rate to divide.
  const ingestRatio =
    r.ingest.imagesPerSecond > 0 ? `${round(r.ingest.imagesPerSecond / r.pure.imagesPerSecond, 3)}` : '–';
  const ingestCeiling = round(
    r.pure.cpuMsPerImage / (r.pure.cpuMsPerImage + r.ingest.preprocessMsPerImage),
    3,
  );
  const lines = [
    r.int8
      ? `int8 ÷ fp32 pure inference  ${r.int8.best.ratio}  (batch ${r.int8.best.batch}, intra-op threads ${r.int8.best.threads})`
      : `int8 ÷ fp32 pure inference  –  (${r.int8Missing ?? 'no int8 model'})`,
    `service precision  ${r.chosen.precision}  (${r.chosen.reason})`,
    `service ingest ÷ ${r.pure.precision} pure inference  ${ingestRatio}  (${r.ingest.imagesPerSecond} ÷ ${r.pure.imagesPerSecond} images/s; ${r.pure.sessions} sessions, batch ${r.pure.batch})`,
    `its ceiling while decoding shares the cores  ${ingestCeiling}  (CPU an image: inference ${r.pure.cpuMsPerImage} ms, decoding and thumbnail ${r.ingest.preprocessMsPerImage} ms)`,
    `POST /search p50 / p99 at ${n} vectors, ${r.chosen.precision}, ${r.searchThreads.default} search threads  ${ms(chosen?.requestMs.p50)} / ${ms(chosen?.requestMs.p99)}`,
    `GET /health p50 / p99 while two clients search back to back, ${r.chosen.precision}  ${ms(chosen?.whileBusy.healthMs.p50)} / ${ms(chosen?.whileBusy.healthMs.p99)}  (GET /count ${ms(chosen?.whileBusy.countMs.p50)} / ${ms(chosen?.whileBusy.countMs.p99)}; ${chosen?.whileBusy.probes ?? 0} probes each)`,
    `search threads, ${r.chosen.precision}: POST /search p50 / p99 · GET /health p99 while busy  ${r.searchThreads.rows
      .map(
        ({ threads, figures: f }) =>
          `${threads}${threads === r.searchThreads.default ? ' (default)' : ''}: ${ms(f.requestMs.p50)} / ${ms(f.requestMs.p99)} · ${ms(f.whileBusy.healthMs.p99)}`,
      )
      .join('; ')}`,
    ...(['fp32', 'int8'] as const).map((p) => {
      const s = r.search[p];
      return `peak RSS of the service at ${n} vectors, ${p}  ${s ? `${s.peakRssMiB} MiB (RSS ${s.rssMiB} MiB after the searches)` : '–  (no int8 model)'}`;
    }),
    r.int8?.recallAt1
      ? `recall@1 int8 vs fp32 (model:quantize's gate, eval corpus, upright)  ${r.int8.recallAt1.int8} vs ${r.int8.recallAt1.fp32} (${r.int8.recallAt1.queries} queries; int8 queries on the fp32 index ${r.int8.recallAt1.acrossPrecisions}); per orientation: npm run eval -- --precisions fp32,int8`
      : 'recall@1 int8 vs fp32  –  (no int8 model)',
  ];
  const row = (figure: string, value: string, target = '') => `| ${figure} | ${value} | ${target} |`;
  const table = [
    '| figure | value | target |',
    '|---|---:|---|',
    row(
      `pure inference, ${r.pure.precision}, as ingest runs it (${r.pure.sessions} × batch ${r.pure.batch})`,
      `${r.pure.imagesPerSecond} img/s`,
    ),
    row(
      `service ingest (${r.ingest.measured} of ${r.ingest.images} images)`,
      `${r.ingest.imagesPerSecond} img/s`,
    ),
    row(`ingest ÷ ${r.pure.precision} pure inference`, ingestRatio, '≥ 0.9'),
    row(
      `  its ceiling: inference ÷ (inference + decoding and thumbnail), CPU an image`,
      `${ingestCeiling} (${r.pure.cpuMsPerImage} ÷ (${r.pure.cpuMsPerImage} + ${r.ingest.preprocessMsPerImage}) ms)`,
    ),
    ...r.index.map((i) =>
      row(
        `vector search alone p50 / p99 at ${i.vectors.toLocaleString('en')} × ${i.dimension}, ${i.candidate === 'int8-onnx' ? 'int8' : 'float32'} scan`,
        `${ms(i.p50Ms)} / ${ms(i.p99Ms)}`,
      ),
    ),
    ...(['fp32', 'int8'] as const).flatMap((p) => {
      const s = r.search[p];
      if (!s) return [];
      const mark = p === r.chosen.precision ? ' (the service’s choice)' : '';
      return [
        row(
          `POST /search p50 / p99 at ${n}, ${p}${mark} (HTTP, ${s.requests})`,
          `${ms(s.requestMs.p50)} / ${ms(s.requestMs.p99)}`,
          mark ? 'p50 ≤ 60 ms, p99 ≤ 120 ms' : '',
        ),
        row(
          `  of which server p50: decode / embed / vector search / lookup, ${p}`,
          `${ms(s.serverMs.p50)}: ${ms(s.decodeMs.p50)} / ${ms(s.embedMs.p50)} / ${ms(s.searchMs.p50)} / ${ms(s.lookupMs.p50)}`,
        ),
        row(
          `POST /search p50 / p99 from two clients at once, ${p} (${s.whileBusy.searches})`,
          `${ms(s.whileBusy.searchMs.p50)} / ${ms(s.whileBusy.searchMs.p99)}`,
        ),
        row(
          `GET /health · GET /count p50 / p99 meanwhile, ${p} (${s.whileBusy.probes} each)`,
          `${ms(s.whileBusy.healthMs.p50)} / ${ms(s.whileBusy.healthMs.p99)} · ${ms(s.whileBusy.countMs.p50)} / ${ms(s.whileBusy.countMs.p99)}`,
          mark ? '/health p99 < 100 ms' : '',
        ),
        row(
          `POST /search?orientation=any p50 / p99, ${p} (${s.any.requests})`,
          `${ms(s.any.requestMs.p50)} / ${ms(s.any.requestMs.p99)}`,
        ),
        row(`service peak RSS at ${n}, ${p}`, `${s.peakRssMiB} MiB`),
      ];
    }),
  ];
  return [...lines, '', ...table];
}

async function main(settings: BenchSettings): Promise<void> {
  const startedAt = performance.now();
  const loadBefore = loadavg()[0] ?? 0;
  const cpu = await cpuInfo();
  console.log(
    `CPU ${cpu.model} × ${availableParallelism()} [${cpu.flags.join(' ') || 'no avx2/avx512/vnni flags'}]; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const fp32 = settings.manifest
    ? await loadManifest(settings.manifest)
    : await resolveModel(loadConfig({ ...process.env, PIC_MODEL_FETCH: 'false' }), { info: log, warn: log });
  // The services measure the model as it is now: no background quantization while they run.
  const env: Record<string, string> = {
    PIC_INT8_PREPARE: 'false',
    PIC_MODEL_FETCH: 'false',
    ...(settings.manifest ? { PIC_MODEL_MANIFEST: settings.manifest } : {}),
  };
  const int8Missing = await ensureInt8(fp32);
  const choose = (precision: 'auto' | 'int8'): Promise<ChosenModel> =>
    chooseModel(fp32, { precision, provider: 'cpu', log: { info: () => undefined, error: log } });
  const chosen = await choose('auto');
  log(`the service picks ${chosen.precision}: ${chosen.reason}`);
  // An int8 model the service would refuse (corrupt, mismatched) is not measured as int8.
  const int8Usable = !int8Missing && (await choose('int8')).precision === 'int8';
  const int8 = int8Usable ? await compareInt8(fp32, { runs: settings.int8Runs, log }) : undefined;
  if (int8) console.log(int8Lines(int8).join('\n'));
  if (!settings.quick) {
    log('embedding bench (scripts/bench-embed.ts --quick) …');
    await promisify(execFile)(
      process.execPath,
      [
        ...['--import', 'tsx', 'scripts/bench-embed.ts', '--quick'],
        ...['--manifest', manifestPathFor(fp32.modelPath), '--out', join(resultsDir, 'embed.json')],
      ],
      { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 },
    );
  }
  const batch = loadConfig({ ...process.env }).batchSize;
  log(`pure inference of the ${chosen.precision} model as ingest runs it …`);
  const pure = {
    precision: chosen.precision,
    ...(await pureInferenceAsIngest(chosen.loaded, batch, settings.quick ? 3 : 6)),
  };
  const ingest = await ingestThroughput(chosen.loaded, settings.images, settings.ingestMinutes, env);
  // The embedded index scans float32 below PIC_INDEX_INT8_FROM (100k) and int8 from there: measure both.
  log('vector index bench (float32 and int8 scans, the model’s dimension) …');
  const index = await benchIndex({
    sizes: settings.sizes,
    dimensions: [fp32.manifest.output.dimension],
    candidates: ['exact-onnx', 'int8-onnx'],
    queries: 30,
    // Not index.json: that file holds the full candidate comparison from `tsx scripts/bench-index.ts`.
    outFile: join(resultsDir, 'bench-index.json'),
    log,
  });
  const { search, searchThreads } = await searchBothPrecisions(settings, env, int8Usable, chosen.precision);
  const report: BenchReport = {
    cpu: { ...cpu, cores: availableParallelism() },
    chosen: { precision: chosen.precision, reason: chosen.reason },
    ...(int8 ? { int8 } : {}),
    ...(int8Missing ? { int8Missing } : {}),
    pure,
    ingest,
    index,
    searchVectors: settings.searchVectors,
    search,
    searchThreads,
    loadAverage: [loadBefore, loadavg()[0] ?? 0],
    minutes: round((performance.now() - startedAt) / 60_000, 1),
  };
  await mkdir(resultsDir, { recursive: true });
  await writeFile(
    join(resultsDir, 'bench.json'),
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, ...report }, null, 2)}\n`,
  );
  console.log(
    `\n${benchLines(report).join('\n')}\n\nload average ${report.loadAverage.map((l) => l.toFixed(1)).join(' → ')} on ${report.cpu.cores} cores; ${report.minutes} min; written to bench-results/bench.json`,
  );
}

if (process.argv[1]?.endsWith('scripts/bench.ts')) await main(benchSettings(process.argv.slice(2)));
