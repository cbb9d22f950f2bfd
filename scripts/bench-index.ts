/**
 * Vector search alone, for the embedded index: each candidate at 100k and 1M seeded random unit vectors
 * (256 and 512 dimensions), top-10. Every candidate × size × dimension runs in a fresh child process so
 * its RSS is its own.
 *
 *   npm run bench:index -- [--sizes 100000,1000000] [--dimensions 256,512] [--queries 50] [--candidates a,b]
 *
 * Candidates: the embedded adapter (src/adapters/embedded/exact-vector-index.ts) as `exact-onnx` (the
 * float32 scan) and `int8-onnx` (its int8 scan with float32 re-scoring, whose recall@10 against the
 * float32 scan's answers is measured); `sqlite-vec` (vec0 virtual table, cosine, k-NN query) and
 * `js-scan` (a plain loop over a Float32Array, one thread), measured when the float32 scan was chosen.
 * Prints a table and writes bench-results/index.json.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { ExactVectorIndex } from '../src/adapters/embedded/exact-vector-index.ts';
import { percentile, unitVector } from './bench-support.ts';

const TOP_K = 10;
const BATCH = 1000;
/** Queries whose top-k is checked against a float64 brute force. */
const CHECKED_QUERIES = 2;

export const CANDIDATES = ['exact-onnx', 'int8-onnx', 'sqlite-vec', 'js-scan'] as const;
export type Candidate = (typeof CANDIDATES)[number];

export interface IndexBenchRow {
  candidate: Candidate;
  vectors: number;
  dimension: number;
  queries: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time (all threads) per query: steadier than wall time when other work shares the cores. */
  cpuMsPerQuery: number;
  /** Vectors written per second, batches of 1000, persisted where the candidate persists. */
  insertPerSecond: number | null;
  /** The first search after the inserts: it makes the scorer, and the int8 codes (their build time). */
  firstSearchMs: number;
  /** Time to reopen the persisted index and answer its first search (start-up cost). */
  reopenMs: number | null;
  /** Resident memory after inserting and searching, MiB. */
  rssMiB: number;
  peakRssMiB: number;
  /** Top-k ids equal to a float64 brute force for the checked queries. */
  exact: boolean;
  /** Share of the float32 scan's top-k ids found, over every query; null where not measured (exact candidates). */
  recall: number | null;
  /** 1-minute load average when the searches ended: other work on the machine skews every figure. */
  loadAverage: number;
}

export interface IndexBenchOptions {
  sizes?: number[];
  /** @default [512] */
  dimensions?: number[];
  queries?: number;
  candidates?: Candidate[];
  outFile?: string;
  log?: (line: string) => void;
}

/** Runs every candidate at every size (each in its own process) and writes the JSON results. */
export async function benchIndex(options: IndexBenchOptions = {}): Promise<IndexBenchRow[]> {
  const sizes = options.sizes ?? [10_000, 100_000, 1_000_000];
  const dimensions = options.dimensions ?? [512];
  const candidates = options.candidates ?? [...CANDIDATES];
  const log = options.log ?? console.log;
  const rows: IndexBenchRow[] = [];
  for (const vectors of sizes) {
    for (const dimension of dimensions) {
      for (const candidate of candidates) {
        // The slow candidates take ~1 s a query at 1M; 10 queries tell their median well enough.
        const slow = candidate === 'sqlite-vec' || candidate === 'js-scan';
        const queries = slow && vectors >= 1_000_000 ? 10 : (options.queries ?? 50);
        log(`… ${candidate} at ${vectors} vectors of ${dimension} dimensions`);
        const row = await runChild(candidate, vectors, dimension, queries);
        rows.push(row);
        log(formatRow(row));
      }
    }
  }
  const outFile = options.outFile ?? resolve('bench-results', 'index.json');
  await mkdir(resolve(outFile, '..'), { recursive: true });
  await writeFile(outFile, `${JSON.stringify({ machine: machineInfo(), topK: TOP_K, rows }, null, 2)}\n`);
  log(`\n${formatTable(rows)}\nwritten to ${outFile}`);
  return rows;
}

export function formatTable(rows: IndexBenchRow[]): string {
  const header =
    '| index | vectors | dim | search p50 | search p99 | CPU/query | recall@10 | insert/s | first search | reopen | RSS (peak) | = float64 top-10 | load avg |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|';
  return [header, ...rows.map(formatRow)].join('\n');
}

function formatRow(r: IndexBenchRow): string {
  const ms = (x: number | null) => (x === null ? '–' : `${x.toFixed(1)} ms`);
  return (
    `| ${r.candidate} | ${r.vectors.toLocaleString('en')} | ${r.dimension} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.cpuMsPerQuery)} | ` +
    `${r.recall === null ? '–' : r.recall.toFixed(4)} | ` +
    `${r.insertPerSecond === null ? '–' : Math.round(r.insertPerSecond).toLocaleString('en')} | ` +
    `${(r.firstSearchMs / 1000).toFixed(1)} s | ${r.reopenMs === null ? '–' : `${(r.reopenMs / 1000).toFixed(1)} s`} | ` +
    `${Math.round(r.rssMiB)} MiB (${Math.round(r.peakRssMiB)}) | ${r.exact ? 'yes' : 'NO'} | ${r.loadAverage.toFixed(1)} |`
  );
}

function machineInfo() {
  return { node: process.version, cpus: availableParallelism(), cpuModel: cpus()[0]?.model };
}

async function runChild(
  candidate: Candidate,
  vectors: number,
  dimension: number,
  queries: number,
): Promise<IndexBenchRow> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      candidate,
      String(vectors),
      String(dimension),
      String(queries),
    ],
    { maxBuffer: 1 << 20, encoding: 'utf8' },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as IndexBenchRow;
}

interface Engine {
  insert(start: number, vectors: Float32Array[]): Promise<void>;
  search(query: Float32Array): Promise<number[]>;
  /** Closes and reopens the persisted index, ready to search. */
  reopen?(): Promise<void>;
  /** The float32 scan's answers over the persisted vectors, for the recall of an approximate candidate. */
  exactAnswers?(queries: Float32Array[]): Promise<number[][]>;
  close(): Promise<void>;
}

/** The embedded adapter with its float32 scan (`int8From` Infinity) or its int8 scan (1). */
async function embeddedIndex(dir: string, dimension: number, int8From: number): Promise<Engine> {
  const path = join(dir, 'vectors.db');
  const identity = { model: 'bench', profile: 'bench', dimension };
  let index = new ExactVectorIndex(path, { int8From });
  await index.ensure(identity);
  const search = async (query: Float32Array) =>
    (await index.search(query, { topK: TOP_K })).map((h) => Number(h.id));
  return {
    insert: (start, vectors) =>
      index.upsert(
        vectors.map((vector, j) => ({ id: String(start + j), key: `bench/${start + j}.jpg`, vector })),
      ),
    search,
    reopen: async () => {
      await index.close();
      index = new ExactVectorIndex(path, { int8From });
      await search(unitVector(0, 3, dimension));
    },
    exactAnswers: async (queries) => {
      await index.close();
      index = new ExactVectorIndex(path, { int8From: Number.POSITIVE_INFINITY });
      const answers: number[][] = [];
      for (const query of queries) answers.push(await search(query));
      return answers;
    },
    close: () => index.close(),
  };
}

async function sqliteVecEngine(dir: string, dimension: number): Promise<Engine> {
  const db = new Database(join(dir, 'vec.db'));
  db.pragma('journal_mode = WAL');
  sqliteVec.load(db);
  db.exec(
    `CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, embedding float[${dimension}] distance_metric=cosine)`,
  );
  const insert = db.prepare('INSERT INTO v (id, embedding) VALUES (?, ?)');
  const knn = db.prepare('SELECT id FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance');
  const blob = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return {
    insert: async (start, vectors) => {
      db.transaction(() => {
        for (const [j, v] of vectors.entries()) insert.run(BigInt(start + j), blob(v));
      })();
    },
    search: async (query) => (knn.all(blob(query), TOP_K) as { id: number }[]).map((r) => Number(r.id)),
    close: async () => {
      db.close();
    },
  };
}

async function jsScan(dimension: number): Promise<Engine> {
  let matrix = new Float32Array(0);
  let rows = 0;
  return {
    insert: async (start, vectors) => {
      if ((start + vectors.length) * dimension > matrix.length) {
        const grown = new Float32Array(Math.max(matrix.length * 2, (start + vectors.length) * dimension));
        grown.set(matrix);
        matrix = grown;
      }
      vectors.forEach((v, j) => {
        matrix.set(v, (start + j) * dimension);
      });
      rows = start + vectors.length;
    },
    search: async (query) => {
      const best: { id: number; score: number }[] = [];
      for (let r = 0; r < rows; r++) {
        const o = r * dimension;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let d = 0; d < dimension; d += 4) {
          s0 += (matrix[o + d] as number) * (query[d] as number);
          s1 += (matrix[o + d + 1] as number) * (query[d + 1] as number);
          s2 += (matrix[o + d + 2] as number) * (query[d + 2] as number);
          s3 += (matrix[o + d + 3] as number) * (query[d + 3] as number);
        }
        const score = s0 + s1 + s2 + s3;
        if (best.length === TOP_K && score <= (best[TOP_K - 1] as { score: number }).score) continue;
        best.push({ id: r, score });
        best.sort((a, b) => b.score - a.score);
        if (best.length > TOP_K) best.pop();
      }
      return best.map((b) => b.id);
    },
    close: async () => {},
  };
}

/** Float64 brute force over the regenerated stream, for all check queries in one pass. */
function referenceTopK(vectors: number, dimension: number, queries: Float32Array[]): number[][] {
  const best = queries.map(() => [] as { id: number; score: number }[]);
  for (let i = 0; i < vectors; i++) {
    const v = unitVector(i, 1, dimension);
    queries.forEach((q, qi) => {
      let score = 0;
      for (let d = 0; d < dimension; d++) score += (v[d] as number) * (q[d] as number);
      const list = best[qi] as { id: number; score: number }[];
      if (list.length === TOP_K && score <= (list[TOP_K - 1] as { score: number }).score) return;
      list.push({ id: i, score });
      list.sort((a, b) => b.score - a.score);
      if (list.length > TOP_K) list.pop();
    });
  }
  return best.map((list) => list.map((b) => b.id));
}

async function child(
  candidate: Candidate,
  vectors: number,
  dimension: number,
  queries: number,
): Promise<IndexBenchRow> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-index-'));
  try {
    const engine =
      candidate === 'exact-onnx'
        ? await embeddedIndex(dir, dimension, Number.POSITIVE_INFINITY)
        : candidate === 'int8-onnx'
          ? await embeddedIndex(dir, dimension, 1)
          : candidate === 'sqlite-vec'
            ? await sqliteVecEngine(dir, dimension)
            : await jsScan(dimension);
    let insertMs = 0;
    for (let start = 0; start < vectors; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, vectors - start) }, (_, j) =>
        unitVector(start + j, 1, dimension),
      );
      const t = performance.now();
      await engine.insert(start, batch);
      insertMs += performance.now() - t;
    }
    const queryVectors = Array.from({ length: queries }, (_, q) => unitVector(q, 7, dimension));
    const firstSearchAt = performance.now();
    await engine.search(queryVectors[0] as Float32Array);
    const firstSearchMs = performance.now() - firstSearchAt;
    const times: number[] = [];
    const answers: number[][] = [];
    const cpuBefore = process.cpuUsage();
    for (const query of queryVectors) {
      const t = performance.now();
      answers.push(await engine.search(query));
      times.push(performance.now() - t);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const rssMiB = process.memoryUsage().rss / 2 ** 20;
    const loadAverage = loadavg()[0] as number;
    let reopenMs: number | null = null;
    if (engine.reopen) {
      const t = performance.now();
      await engine.reopen();
      reopenMs = performance.now() - t;
    }
    const exactAnswers = candidate === 'int8-onnx' ? await engine.exactAnswers?.(queryVectors) : undefined;
    await engine.close();
    const reference = referenceTopK(vectors, dimension, queryVectors.slice(0, CHECKED_QUERIES));
    const exact = reference.every((ids, q) => JSON.stringify(ids) === JSON.stringify(answers[q]));
    return {
      candidate,
      vectors,
      dimension,
      queries,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
      cpuMsPerQuery: (cpu.user + cpu.system) / 1000 / queries,
      insertPerSecond: candidate === 'js-scan' ? null : vectors / (insertMs / 1000),
      firstSearchMs,
      reopenMs,
      rssMiB,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      exact,
      recall: exactAnswers ? recallOf(answers, exactAnswers) : null,
      loadAverage,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Share of the reference's ids found in the answers, over every query. */
function recallOf(answers: number[][], reference: number[][]): number {
  let found = 0;
  let wanted = 0;
  reference.forEach((ids, q) => {
    const answer = new Set(answers[q]);
    found += ids.filter((id) => answer.has(id)).length;
    wanted += ids.length;
  });
  return found / wanted;
}

function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const childAt = process.argv.indexOf('--child');
  if (childAt !== -1) {
    const [candidate, vectors, dimension, queries] = process.argv.slice(childAt + 1);
    const row = await child(candidate as Candidate, Number(vectors), Number(dimension), Number(queries));
    process.stdout.write(`${JSON.stringify(row)}\n`);
  } else {
    const sizes = (argValue('--sizes') ?? '100000,1000000').split(',').map(Number);
    const dimensions = (argValue('--dimensions') ?? '256,512').split(',').map(Number);
    const queries = argValue('--queries');
    const candidates = (argValue('--candidates') ?? 'exact-onnx,int8-onnx').split(',') as Candidate[];
    await benchIndex({
      sizes,
      dimensions,
      candidates,
      ...(queries ? { queries: Number(queries) } : {}),
    });
  }
}
