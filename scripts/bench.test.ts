import { describe, expect, it } from 'vitest';
import { type BenchReport, benchLines, benchSettings, searchThreadsToCompare } from './bench.ts';

const search = (p50: number, peakRssMiB: number) => ({
  requests: 10,
  requestMs: { p50, p99: p50 * 2 },
  decodeMs: { p50: 2, p99: 3 },
  embedMs: { p50: p50 / 2, p99: p50 },
  searchMs: { p50: 5, p99: 9 },
  lookupMs: { p50: 1, p99: 2 },
  serverMs: { p50: p50 - 4, p99: p50 * 2 - 4 },
  any: { requests: 3, requestMs: { p50: p50 * 8, p99: p50 * 9 } },
  whileBusy: {
    searches: 10,
    probes: 40,
    searchMs: { p50: p50 * 2, p99: p50 * 3 },
    healthMs: { p50: 2, p99: 12 },
    countMs: { p50: 3, p99: 15 },
  },
  rssMiB: peakRssMiB - 100,
  peakRssMiB,
});

const report: BenchReport = {
  cpu: { model: 'Xeon', flags: ['avx512_vnni'], cores: 2 },
  chosen: { precision: 'int8', reason: 'faster here' },
  int8: {
    cpu: 'Xeon',
    flags: ['avx512_vnni'],
    rows: [],
    best: { threads: 1, batch: 8, ratio: 3.5 },
    recallAt1: { fp32: 0.871, int8: 0.864, acrossPrecisions: 0.857, queries: 140 },
  },
  pure: { precision: 'int8', sessions: 2, batch: 8, imagesPerSecond: 20, cpuMsPerImage: 100 },
  ingest: { images: 300, measured: 290, imagesPerSecond: 19, preprocessMsPerImage: 25 },
  index: [],
  searchVectors: 100_000,
  search: { fp32: search(190, 1100), int8: search(50, 800) },
  searchThreads: {
    default: 2,
    rows: [
      { threads: 1, figures: search(80, 800) },
      { threads: 2, figures: search(50, 800) },
    ],
  },
  loadAverage: [1, 1],
  minutes: 12,
};

describe('npm run bench', () => {
  it('takes --quick defaults where no flag says otherwise, and refuses a non-number', () => {
    expect(benchSettings(['--quick', '--requests', '7'])).toMatchObject({
      quick: true,
      images: 60,
      requests: 7,
      sizes: [10_000, 100_000],
      searchVectors: 100_000,
    });
    expect(benchSettings([])).toMatchObject({ images: 300, sizes: [10_000, 100_000, 1_000_000] });
    expect(() => benchSettings(['--images', 'many'])).toThrow(
      "--images must be a positive number, not 'many'",
    );
  });

  it("prints issue 16's lines: int8 ÷ fp32, ingest ÷ the chosen model's inference, search, /health meanwhile and peak RSS", () => {
    expect(benchLines(report).slice(0, 10)).toEqual([
      'int8 ÷ fp32 pure inference  3.5  (batch 8, intra-op threads 1)',
      'service precision  int8  (faster here)',
      'service ingest ÷ int8 pure inference  0.95  (19 ÷ 20 images/s; 2 sessions, batch 8)',
      'its ceiling while decoding shares the cores  0.8  (CPU an image: inference 100 ms, decoding and thumbnail 25 ms)',
      'POST /search p50 / p99 at 100,000 vectors, int8, 2 search threads  50.0 ms / 100.0 ms',
      'GET /health p50 / p99 while two clients search back to back, int8  2.0 ms / 12.0 ms  (GET /count 3.0 ms / 15.0 ms; 40 probes each)',
      'search threads, int8: POST /search p50 / p99 · GET /health p99 while busy  1: 80.0 ms / 160.0 ms · 12.0 ms; 2 (default): 50.0 ms / 100.0 ms · 12.0 ms',
      'peak RSS of the service at 100,000 vectors, fp32  1100 MiB (RSS 1000 MiB after the searches)',
      'peak RSS of the service at 100,000 vectors, int8  800 MiB (RSS 700 MiB after the searches)',
      "recall@1 int8 vs fp32 (model:quantize's gate, eval corpus, upright)  0.864 vs 0.871 (140 queries; int8 queries on the fp32 index 0.857); per orientation: npm run eval -- --precisions fp32,int8",
    ]);
  });

  it('says why there are no int8 figures when the quantizer refused the model', () => {
    const { int8: _int8, ...fp32Only } = report;
    const lines = benchLines({
      ...fp32Only,
      chosen: { precision: 'fp32', reason: 'no int8 model' },
      int8Missing: 'model:quantize refused or failed: cosine 0.956',
      pure: { ...report.pure, precision: 'fp32' },
      search: { fp32: search(190, 1100) },
      searchThreads: { default: 2, rows: [{ threads: 2, figures: search(190, 1100) }] },
    });
    expect(lines[0]).toBe('int8 ÷ fp32 pure inference  –  (model:quantize refused or failed: cosine 0.956)');
    expect(lines[8]).toBe('peak RSS of the service at 100,000 vectors, int8  –  (no int8 model)');
  });

  it('compares one search thread with the default, once when they are the same', () => {
    expect(searchThreadsToCompare(2)).toEqual([1, 2]);
    expect(searchThreadsToCompare(1)).toEqual([1]);
  });

  it('prints no ingest ratio when too few images were indexed to time a steady state', () => {
    const lines = benchLines({
      ...report,
      ingest: { ...report.ingest, images: 8, measured: 0, imagesPerSecond: 0 },
    });
    expect(lines[2]).toBe('service ingest ÷ int8 pure inference  –  (0 ÷ 20 images/s; 2 sessions, batch 8)');
  });
});
