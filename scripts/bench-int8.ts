/**
 * int8 against fp32 in one run (part of `npm run bench:embed`; alone: `npx tsx scripts/bench-int8.ts`):
 * pure inference of both models, interleaved, per intra-op thread count and batch size, with the CPU
 * model and its VNNI/AVX-512 flags; the ratio at the best batch size; recall@1 of both as the quality
 * gate measured it when the int8 model was made.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { OnnxEmbedder } from '../src/embedder/onnx-embedder.ts';
import { type LoadedManifest, loadManifest, type Quantization } from '../src/model/manifest.ts';
import { cpuInfo, int8ManifestPathFor } from '../src/model/precision.ts';
import { median, round, syntheticInput } from './bench-support.ts';

export interface Int8Comparison {
  cpu: string;
  flags: string[];
  rows: { threads: number; batch: number; fp32: number; int8: number; ratio: number }[];
  /** int8 ÷ fp32 images/s where int8 is fastest (batch size and intra-op threads). */
  best: { threads: number; batch: number; ratio: number };
  recallAt1?: Quantization['gate']['recallAt1'];
}

/** Images/s of `embedder` on `tensor`: one warm-up, then the median of `runs` timed runs. */
export async function imagesPerSecond(
  embedder: OnnxEmbedder,
  tensor: Float32Array,
  batch: number,
  runs: number,
) {
  await embedder.infer(tensor, batch);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    await embedder.infer(tensor, batch);
    times.push(performance.now() - started);
  }
  return (batch * 1000) / median(times);
}

/** undefined when no int8 model sits beside the fp32 one (`npm run model:quantize` makes it). */
export async function compareInt8(
  fp32: LoadedManifest,
  options: { batches?: number[]; runs?: number; log?: (line: string) => void } = {},
): Promise<Int8Comparison | undefined> {
  const manifestPath = int8ManifestPathFor(fp32.modelPath);
  if (!existsSync(manifestPath)) return undefined;
  const int8 = await loadManifest(manifestPath);
  const { batches = [1, 8], runs = 3, log = () => undefined } = options;
  const size = fp32.manifest.input.size;
  const cores = availableParallelism();
  const rows: Int8Comparison['rows'] = [];
  for (const threads of [...new Set([1, cores])]) {
    const [a, b] = await Promise.all(
      [fp32, int8].map((loaded) => OnnxEmbedder.create(loaded, { intraOpNumThreads: threads })),
    );
    for (const batch of batches) {
      const tensor = syntheticInput(size, batch);
      // Interleaved, so a neighbour's load falls on both alike.
      const fp32Rates: number[] = [];
      const int8Rates: number[] = [];
      for (let r = 0; r < runs; r++) {
        fp32Rates.push(await imagesPerSecond(a as OnnxEmbedder, tensor, batch, 1));
        int8Rates.push(await imagesPerSecond(b as OnnxEmbedder, tensor, batch, 1));
      }
      const row = {
        threads,
        batch,
        fp32: round(median(fp32Rates)),
        int8: round(median(int8Rates)),
        ratio: 0,
      };
      row.ratio = round(row.int8 / row.fp32);
      rows.push(row);
      log(`int8 vs fp32 threads=${threads} batch=${batch}: ${row.int8} vs ${row.fp32} img/s (${row.ratio}×)`);
    }
    await Promise.all([a?.close(), b?.close()]);
  }
  // Ingest runs one single-threaded session per core: the fastest int8 setting, whatever its thread count.
  const best = [...rows].sort((x, y) => y.int8 - x.int8)[0] as Int8Comparison['rows'][number];
  const cpu = await cpuInfo();
  const recallAt1 = int8.manifest.quantization?.gate.recallAt1;
  return {
    cpu: cpu.model,
    flags: cpu.flags,
    rows,
    best: { threads: best.threads, batch: best.batch, ratio: best.ratio },
    ...(recallAt1 ? { recallAt1 } : {}),
  };
}

/** The lines the benchmarks print. */
export function int8Lines(result: Int8Comparison): string[] {
  const lines = [
    `CPU ${result.cpu} [${result.flags.join(' ')}]`,
    ...result.rows.map(
      (row) =>
        `  threads ${row.threads} batch ${row.batch}: fp32 ${row.fp32} img/s, int8 ${row.int8} img/s (${row.ratio}×)`,
    ),
    `int8 ÷ fp32 pure inference  ${result.best.ratio}  (batch ${result.best.batch}, ${result.best.threads} threads)`,
  ];
  if (result.recallAt1)
    lines.push(
      `recall@1 on the eval corpus (model:quantize gate): fp32 ${result.recallAt1.fp32}, int8 ${result.recallAt1.int8}, int8 queries on the fp32 index ${result.recallAt1.acrossPrecisions} (${result.recallAt1.queries} queries)`,
    );
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const manifest = process.argv[2] ?? resolve(import.meta.dirname, '../models/vgg16-seeded.manifest.json');
  const result = await compareInt8(await loadManifest(manifest), {
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(result ? int8Lines(result).join('\n') : 'No int8 model: run npm run model:quantize first.');
}
