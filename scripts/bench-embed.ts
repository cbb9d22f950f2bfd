/**
 * Embedding benchmark: pure inference (batch × threads), ONNX Runtime settings, decode + preprocess,
 * the overlapped pipeline, single-query latency, near-duplicate recall@1, peak RSS and model load time.
 * Prints a table and writes bench-results/embed.json.
 *
 *   npm run bench:embed                 # full run (≈ 4–6 min on 2 cores)
 *   npm run bench:embed -- --quick      # short run, fewer repetitions, no settings sweep
 *   npm run bench:embed -- --manifest models/other.manifest.json --providers cuda
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import sharp, { type Sharp } from 'sharp';
import {
  DEFAULT_EMBEDDER_OPTIONS,
  type ExecutionProvider,
  OnnxEmbedder,
  type OnnxEmbedderOptions,
} from '../src/embedder/onnx-embedder.ts';
import { dot } from '../src/embedder/vectors.ts';
import { DEFAULT_DECODE_LIMITS } from '../src/imaging/decode.ts';
import { createTensorWriter, tensorSpecOf, toModelPixels } from '../src/imaging/preprocess.ts';
import { type LoadedManifest, loadManifest, type PreprocessProfile } from '../src/model/manifest.ts';
import { SAMPLE_PHOTOS_DIR } from '../src/sample-photos.ts';
import { compareInt8, int8Lines } from './bench-int8.ts';
import { median, percentile, round } from './bench-support.ts';

const repoRoot = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    manifest: { type: 'string', default: resolve(repoRoot, 'models/vgg16-seeded.manifest.json') },
    providers: { type: 'string', default: 'cpu' },
    out: { type: 'string', default: resolve(repoRoot, 'bench-results/embed.json') },
  },
});
const quick = args.quick === true;
const providers = (args.providers as string).split(',') as ExecutionProvider[];
const cores = availableParallelism();

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

/** Process CPU time (all threads) since `since`: unlike wall time, it hardly moves when neighbours load the machine. */
function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

function log(message: string): void {
  process.stderr.write(`[bench:embed] ${message}\n`);
}

/** A tensor of plausible caffe-range values: inference time does not depend on the content. */
function randomTensor(length: number): Float32Array {
  const tensor = new Float32Array(length);
  let seed = 12345;
  for (let i = 0; i < length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    tensor[i] = (seed / 0x7fffffff) * 255 - 120;
  }
  return tensor;
}

async function create(loaded: LoadedManifest, options: OnnxEmbedderOptions) {
  const { ms, value } = await timed(() =>
    OnnxEmbedder.create(loaded, { executionProviders: providers, ...options }),
  );
  return { embedder: value, loadMs: ms };
}

/** Images per second of inference alone, at `batch`, from the median of `runs` timed runs after a warm-up. */
async function pureInference(embedder: OnnxEmbedder, imageLength: number, batch: number, runs: number) {
  const tensor = randomTensor(imageLength * batch);
  await embedder.infer(tensor, batch);
  const times: number[] = [];
  const cpu = process.cpuUsage();
  for (let r = 0; r < runs; r++) times.push((await timed(() => embedder.infer(tensor, batch))).ms);
  return {
    batch,
    runs,
    medianMs: round(median(times), 1),
    imagesPerSecond: round((batch * 1000) / median(times)),
    cpuMsPerImage: round(cpuMs(cpu) / (batch * runs), 1),
  };
}

async function photos() {
  const dir = SAMPLE_PHOTOS_DIR;
  const csv = await readFile(resolve(dir, 'sources.csv'), 'utf8');
  const originalOf = new Map(
    csv
      .split('\n')
      .slice(1)
      .map((line) => line.split(','))
      .filter(([file, variantOf]) => file && variantOf)
      .map(([file, variantOf]) => [file as string, variantOf as string]),
  );
  const names = (await readdir(dir)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  const bytes = await Promise.all(names.map((name) => readFile(resolve(dir, name))));
  return { names, bytes, groupOf: (name: string) => originalOf.get(name) ?? name };
}

/** JPEGs of one size made from the fixtures (upright, squashed to exactly width × height). */
function jpegsOf(sources: Buffer[], width: number, height: number, count: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      sharp(sources[i % sources.length])
        .autoOrient()
        .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
        .jpeg({ quality: 90 })
        .toBuffer(),
    ),
  );
}

async function decodeThroughput(images: Buffer[], profile: PreprocessProfile, loaded: LoadedManifest) {
  const writer = createTensorWriter(tensorSpecOf(loaded.manifest));
  const size = loaded.manifest.input.size;
  const one = async (image: Buffer) => {
    const tensor = new Float32Array(writer.length);
    writer.write(await toModelPixels(image, profile, size, DEFAULT_DECODE_LIMITS), tensor, 0);
  };
  await one(images[0] as Buffer);
  const { ms } = await timed(() => Promise.all(images.map(one)));
  return round((images.length * 1000) / ms);
}

const TRANSFORMS: Record<string, (image: Sharp, width: number, height: number) => Sharp> = {
  'crop 70%': (image, w, h) =>
    image.extract({
      left: Math.round(w * 0.15),
      top: Math.round(h * 0.15),
      width: Math.round(w * 0.7),
      height: Math.round(h * 0.7),
    }),
  'resize 50%': (image, w, h) => image.resize(Math.round(w / 2), Math.round(h / 2)),
  flip: (image) => image.flop(),
  'rotate 90°': (image) => image.rotate(90),
  'JPEG q30': (image) => image,
  'brightness +30%': (image) => image.modulate({ brightness: 1.3 }),
};

async function transformed(source: Buffer, name: string): Promise<Buffer> {
  // Upright pixels first (the transform acts on what a person sees), then materialised so the
  // transform sees the upright size.
  const upright = await sharp(source).autoOrient().png().toBuffer();
  const { width, height } = await sharp(upright).metadata();
  const transform = TRANSFORMS[name] as (typeof TRANSFORMS)[string];
  return transform(sharp(upright), width, height)
    .jpeg({ quality: name === 'JPEG q30' ? 30 : 90 })
    .toBuffer();
}

function table(rows: (string | number)[][]): string {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((row) => String(row[c] ?? '').length)));
  return rows
    .map((row) => row.map((cell, c) => String(cell).padEnd(widths[c] as number)).join('  '))
    .join('\n');
}

async function main(): Promise<void> {
  const loaded = await loadManifest(args.manifest as string);
  const imageLength = 3 * loaded.manifest.input.size ** 2;
  const fixtures = await photos();
  const load = [loadavg()[0] as number];
  const runsFor = (batch: number) => (quick ? 1 : batch === 1 ? 8 : batch === 8 ? 3 : 2);
  log(`${loaded.manifest.name} on ${cores} cores (${cpus()[0]?.model}), ${quick ? 'quick' : 'full'} run`);

  // 0. int8 against fp32, interleaved in one run, when `npm run model:quantize` made the int8 model.
  const int8 = await compareInt8(loaded, { runs: quick ? 2 : 4, log });
  if (int8) console.log(int8Lines(int8).join('\n'));
  else log('no int8 model beside the fp32 one: run npm run model:quantize to compare');

  // 1. Pure inference, batch × intra-op threads.
  const loadTimes: number[] = [];
  const inference: {
    threads: number;
    batch: number;
    imagesPerSecond: number;
    medianMs: number;
    cpuMsPerImage: number;
  }[] = [];
  for (const threads of [...new Set([1, cores])]) {
    const { embedder, loadMs } = await create(loaded, { intraOpNumThreads: threads });
    loadTimes.push(loadMs);
    for (const batch of [1, 8, 32]) {
      const result = await pureInference(embedder, imageLength, batch, runsFor(batch));
      inference.push({ threads, ...result });
      log(`inference threads=${threads} batch=${batch}: ${result.imagesPerSecond} img/s`);
    }
    await embedder.close();
  }

  // 2. ONNX Runtime settings, one change at a time from the defaults, at batch 8 and one thread per core.
  const settings: { setting: string; imagesPerSecond: number; cpuMsPerImage: number; loadMs: number }[] = [];
  if (!quick) {
    const variants: [string, OnnxEmbedderOptions][] = [
      ['defaults', {}],
      ['graphOptimizationLevel=disabled', { graphOptimizationLevel: 'disabled' }],
      ['graphOptimizationLevel=basic', { graphOptimizationLevel: 'basic' }],
      ['graphOptimizationLevel=extended', { graphOptimizationLevel: 'extended' }],
      ['executionMode=parallel, interOp=2', { executionMode: 'parallel', interOpNumThreads: 2 }],
      ['enableCpuMemArena=false', { enableCpuMemArena: false }],
      ['enableMemPattern=false', { enableMemPattern: false }],
      ['allowSpinning=false', { allowSpinning: false }],
    ];
    for (const [setting, options] of variants) {
      const { embedder, loadMs } = await create(loaded, { intraOpNumThreads: cores, ...options });
      loadTimes.push(loadMs);
      const result = await pureInference(embedder, imageLength, 8, 2);
      settings.push({
        setting,
        imagesPerSecond: result.imagesPerSecond,
        cpuMsPerImage: result.cpuMsPerImage,
        loadMs: Math.round(loadMs),
      });
      log(`settings ${setting}: ${result.imagesPerSecond} img/s`);
      await embedder.close();
    }
  }

  // 3. Decode + preprocess alone, per source size and profile.
  const small = await jpegsOf(fixtures.bytes, 500, 375, quick ? 16 : 48);
  const large = await jpegsOf(fixtures.bytes, 4000, 3000, quick ? 4 : 12);
  const decode: { source: string; profile: PreprocessProfile; imagesPerSecond: number }[] = [];
  for (const [source, images] of [
    ['500×375 JPEG', small],
    ['4000×3000 JPEG', large],
  ] as const) {
    for (const profile of ['quality', 'keras-compat'] as const) {
      decode.push({ source, profile, imagesPerSecond: await decodeThroughput(images, profile, loaded) });
      log(`decode ${source} ${profile}: ${decode.at(-1)?.imagesPerSecond} img/s`);
    }
  }

  // 4. The overlapped pipeline (embed()) against pure inference at the same batch size, same embedder.
  const best = inference
    .filter((r) => r.threads === cores)
    .sort((a, b) => b.imagesPerSecond - a.imagesPerSecond)[0];
  const batchSize = best?.batch ?? DEFAULT_EMBEDDER_OPTIONS.batchSize;
  const { embedder, loadMs } = await create(loaded, { batchSize });
  loadTimes.push(loadMs);
  const pipeline: {
    source: string;
    batch: number;
    pureImagesPerSecond: number;
    pipelineImagesPerSecond: number;
    ratio: number;
    pureCpuMsPerImage: number;
    pipelineCpuMsPerImage: number;
  }[] = [];
  const pure = await pureInference(embedder, imageLength, batchSize, quick ? 1 : 2);
  for (const [source, images] of [
    ['500×375 JPEG', quick ? small.slice(0, 16) : small],
    ['4000×3000 JPEG', large],
  ] as const) {
    const cpu = process.cpuUsage();
    const { ms, value } = await timed(() => embedder.embed(images));
    const pipelineCpuMsPerImage = round(cpuMs(cpu) / images.length, 1);
    if (!value.every((o) => o.ok)) throw new Error('pipeline images failed to embed');
    const pipelineImagesPerSecond = (images.length * 1000) / ms;
    pipeline.push({
      source,
      batch: batchSize,
      pureImagesPerSecond: pure.imagesPerSecond,
      pipelineImagesPerSecond: round(pipelineImagesPerSecond),
      ratio: round(pipelineImagesPerSecond / pure.imagesPerSecond, 3),
      pureCpuMsPerImage: pure.cpuMsPerImage,
      pipelineCpuMsPerImage,
    });
    log(`pipeline ${source}: ${round(pipelineImagesPerSecond)} img/s vs pure ${pure.imagesPerSecond}`);
  }

  // 5. Single-query latency: decode + embed of one 500×375 JPEG at batch 1.
  const totals: number[] = [];
  const decodes: number[] = [];
  const embeds: number[] = [];
  await embedder.embedOne(small[0] as Buffer);
  for (const image of small.slice(0, quick ? 8 : 30)) {
    const { ms, value } = await timed(() => embedder.embedOne(image));
    totals.push(ms);
    decodes.push(value.timings.decodeMs);
    embeds.push(value.timings.embedMs);
  }
  const latency = {
    samples: totals.length,
    p50Ms: round(percentile(totals, 50), 1),
    p99Ms: round(percentile(totals, 99), 1),
    decodeP50Ms: round(median(decodes), 1),
    embedP50Ms: round(median(embeds), 1),
  };
  log(`latency p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms`);

  // 6. Near-duplicate recall@1: each transformed photo queries all originals; its own original (or the
  // photo it is a declared variant of) must come first.
  const count = quick ? 10 : fixtures.names.length;
  const names = fixtures.names.slice(0, count);
  const originals = (await embedder.embed(fixtures.bytes.slice(0, count))).map((o) =>
    o.ok ? o.vector : undefined,
  );
  const recall: { transform: string; queries: number; recallAt1: number }[] = [];
  for (const name of Object.keys(TRANSFORMS)) {
    const queries = await Promise.all(fixtures.bytes.slice(0, count).map((b) => transformed(b, name)));
    const vectors = await embedder.embed(queries);
    let hits = 0;
    for (const [i, outcome] of vectors.entries()) {
      if (!outcome.ok) continue;
      const scores = originals.map((original) => (original ? dot(outcome.vector, original) : -2));
      const top = scores.indexOf(Math.max(...scores));
      if (fixtures.groupOf(names[top] as string) === fixtures.groupOf(names[i] as string)) hits++;
    }
    recall.push({ transform: name, queries: queries.length, recallAt1: round(hits / queries.length, 3) });
    log(`recall@1 ${name}: ${hits}/${queries.length}`);
  }
  await embedder.close();
  load.push(loadavg()[0] as number);

  const result = {
    date: new Date().toISOString(),
    quick,
    model: loaded.manifest.name,
    pretrained: loaded.manifest.pretrained,
    profile: loaded.manifest.profile,
    providers,
    machine: { cores, cpu: cpus()[0]?.model, loadAverage1m: load.map((l) => round(l)) },
    versions: { node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips },
    defaults: DEFAULT_EMBEDDER_OPTIONS,
    modelLoadMs: { median: Math.round(median(loadTimes)), samples: loadTimes.length },
    inference,
    ...(int8 ? { int8 } : {}),
    settings,
    decode,
    pipeline,
    latency,
    recall,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  await mkdir(dirname(args.out as string), { recursive: true });
  await writeFile(args.out as string, `${JSON.stringify(result, null, 2)}\n`);

  const rows: (string | number)[][] = [['measure', 'setting', 'value', 'CPU ms/image']];
  for (const r of inference) {
    rows.push([
      'pure inference',
      `threads ${r.threads}, batch ${r.batch}`,
      `${r.imagesPerSecond} img/s`,
      r.cpuMsPerImage,
    ]);
  }
  for (const r of settings)
    rows.push(['ORT setting (batch 8)', r.setting, `${r.imagesPerSecond} img/s`, r.cpuMsPerImage]);
  for (const r of decode)
    rows.push(['decode + preprocess', `${r.source}, ${r.profile}`, `${r.imagesPerSecond} img/s`]);
  for (const r of pipeline) {
    rows.push([
      'pipeline embed()',
      `${r.source}, batch ${r.batch}`,
      `${r.pipelineImagesPerSecond} img/s`,
      r.pipelineCpuMsPerImage,
    ]);
    rows.push([
      'pipeline ÷ pure inference',
      `${r.source}, batch ${r.batch}`,
      `${r.ratio}`,
      `pure ${r.pureCpuMsPerImage}`,
    ]);
  }
  rows.push([
    'single query (decode+embed)',
    `p50 / p99 of ${latency.samples}`,
    `${latency.p50Ms} / ${latency.p99Ms} ms`,
  ]);
  for (const r of recall)
    rows.push(['near-duplicate recall@1', `${r.transform} (${r.queries})`, `${r.recallAt1}`]);
  rows.push(['model load', `median of ${loadTimes.length}`, `${result.modelLoadMs.median} ms`]);
  rows.push(['peak RSS', '', `${result.peakRssMb} MB`]);
  rows.push(['load average (1 min)', 'start / end', load.map((l) => round(l)).join(' / ')]);
  process.stdout.write(`${table(rows)}\n\nwritten ${args.out}\n`);
}

await main();
