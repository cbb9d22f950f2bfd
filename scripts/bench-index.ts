/**
 * Vector search alone, for the embedded index: each candidate at 10k, 100k and 1M random unit vectors
 * (512 dimensions), top-10. Every candidate × size runs in a fresh child process so its RSS is its own.
 *
 *   npx tsx scripts/bench-index.ts [--sizes 10000,100000,1000000] [--queries 50] [--candidates a,b]
 *
 * Candidates: `exact-onnx` (the adapter in use, src/adapters/embedded/exact-vector-index.ts),
 * `sqlite-vec` (vec0 virtual table, cosine, k-NN query), `js-scan` (a plain loop over a Float32Array,
 * one thread). Prints a table and writes bench-results/index.json.
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

const DIMENSION = 512;
const TOP_K = 10;
const BATCH = 1000;
/** Queries whose top-k is checked against a float64 brute force. */
const CHECKED_QUERIES = 2;

export const CANDIDATES = ['exact-onnx', 'sqlite-vec', 'js-scan'] as const;
export type Candidate = (typeof CANDIDATES)[number];

export interface IndexBenchRow {
  candidate: Candidate;
  vectors: number;
  queries: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time (all threads) per query: steadier than wall time when other work shares the cores. */
  cpuMsPerQuery: number;
  /** Vectors written per second, batches of 1000, persisted where the candidate persists. */
  insertPerSecond: number | null;
  /** Time to reopen the persisted index and answer count() (start-up cost). */
  reopenMs: number | null;
  /** Resident memory after inserting and searching, MiB. */
  rssMiB: number;
  peakRssMiB: number;
  /** Top-k ids equal to a float64 brute force for the checked queries. */
  exact: boolean;
  /** 1-minute load average when the searches ended: other work on the machine skews every figure. */
  loadAverage: number;
}

export interface IndexBenchOptions {
  sizes?: number[];
  queries?: number;
  candidates?: Candidate[];
  outFile?: string;
  log?: (line: string) => void;
}

/** Runs every candidate at every size (each in its own process) and writes the JSON results. */
export async function benchIndex(options: IndexBenchOptions = {}): Promise<IndexBenchRow[]> {
  const sizes = options.sizes ?? [10_000, 100_000, 1_000_000];
  const candidates = options.candidates ?? [...CANDIDATES];
  const log = options.log ?? console.log;
  const rows: IndexBenchRow[] = [];
  for (const vectors of sizes) {
    for (const candidate of candidates) {
      // The slow candidates take ~1 s a query at 1M; 10 queries tell their median well enough.
      const queries = candidate !== 'exact-onnx' && vectors >= 1_000_000 ? 10 : (options.queries ?? 50);
      log(`… ${candidate} at ${vectors} vectors`);
      const row = await runChild(candidate, vectors, queries);
      rows.push(row);
      log(formatRow(row));
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
    '| index | vectors | search p50 | search p99 | CPU/query | insert/s | reopen | RSS (peak) | exact top-10 | load avg |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|';
  return [header, ...rows.map(formatRow)].join('\n');
}

function formatRow(r: IndexBenchRow): string {
  const ms = (x: number | null) => (x === null ? '–' : `${x.toFixed(1)} ms`);
  return (
    `| ${r.candidate} | ${r.vectors.toLocaleString('en')} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.cpuMsPerQuery)} | ` +
    `${r.insertPerSecond === null ? '–' : Math.round(r.insertPerSecond).toLocaleString('en')} | ` +
    `${r.reopenMs === null ? '–' : `${(r.reopenMs / 1000).toFixed(1)} s`} | ` +
    `${Math.round(r.rssMiB)} MiB (${Math.round(r.peakRssMiB)}) | ${r.exact ? 'yes' : 'NO'} | ${r.loadAverage.toFixed(1)} |`
  );
}

function machineInfo() {
  return { node: process.version, cpus: availableParallelism(), cpuModel: cpus()[0]?.model };
}

async function runChild(candidate: Candidate, vectors: number, queries: number): Promise<IndexBenchRow> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      candidate,
      String(vectors),
      String(queries),
    ],
    { maxBuffer: 1 << 20, encoding: 'utf8' },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as IndexBenchRow;
}

interface Engine {
  insert(start: number, vectors: Float32Array[]): Promise<void>;
  search(query: Float32Array): Promise<number[]>;
  reopen?(): Promise<void>;
  close(): Promise<void>;
}

async function exactOnnx(dir: string): Promise<Engine> {
  const path = join(dir, 'vectors.db');
  const identity = { model: 'bench', profile: 'bench', dimension: DIMENSION };
  let index = new ExactVectorIndex(path);
  await index.ensure(identity);
  return {
    insert: (start, vectors) =>
      index.upsert(
        vectors.map((vector, j) => ({ id: String(start + j), key: `bench/${start + j}.jpg`, vector })),
      ),
    search: async (query) => (await index.search(query, { topK: TOP_K })).map((h) => Number(h.id)),
    reopen: async () => {
      await index.close();
      index = new ExactVectorIndex(path);
      await index.count();
    },
    close: () => index.close(),
  };
}

async function sqliteVecEngine(dir: string): Promise<Engine> {
  const db = new Database(join(dir, 'vec.db'));
  db.pragma('journal_mode = WAL');
  sqliteVec.load(db);
  db.exec(
    `CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, embedding float[${DIMENSION}] distance_metric=cosine)`,
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

async function jsScan(): Promise<Engine> {
  let matrix = new Float32Array(0);
  let rows = 0;
  return {
    insert: async (start, vectors) => {
      if ((start + vectors.length) * DIMENSION > matrix.length) {
        const grown = new Float32Array(Math.max(matrix.length * 2, (start + vectors.length) * DIMENSION));
        grown.set(matrix);
        matrix = grown;
      }
      vectors.forEach((v, j) => {
        matrix.set(v, (start + j) * DIMENSION);
      });
      rows = start + vectors.length;
    },
    search: async (query) => {
      const best: { id: number; score: number }[] = [];
      for (let r = 0; r < rows; r++) {
        const o = r * DIMENSION;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let d = 0; d < DIMENSION; d += 4) {
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
function referenceTopK(vectors: number, queries: Float32Array[]): number[][] {
  const best = queries.map(() => [] as { id: number; score: number }[]);
  for (let i = 0; i < vectors; i++) {
    const v = unitVector(i);
    queries.forEach((q, qi) => {
      let score = 0;
      for (let d = 0; d < DIMENSION; d++) score += (v[d] as number) * (q[d] as number);
      const list = best[qi] as { id: number; score: number }[];
      if (list.length === TOP_K && score <= (list[TOP_K - 1] as { score: number }).score) return;
      list.push({ id: i, score });
      list.sort((a, b) => b.score - a.score);
      if (list.length > TOP_K) list.pop();
    });
  }
  return best.map((list) => list.map((b) => b.id));
}

async function child(candidate: Candidate, vectors: number, queries: number): Promise<IndexBenchRow> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-index-'));
  try {
    const engine =
      candidate === 'exact-onnx'
        ? await exactOnnx(dir)
        : candidate === 'sqlite-vec'
          ? await sqliteVecEngine(dir)
          : await jsScan();
    let insertMs = 0;
    for (let start = 0; start < vectors; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, vectors - start) }, (_, j) => unitVector(start + j));
      const t = performance.now();
      await engine.insert(start, batch);
      insertMs += performance.now() - t;
    }
    const queryVectors = Array.from({ length: queries }, (_, q) => unitVector(q, 7));
    await engine.search(queryVectors[0] as Float32Array);
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
    await engine.close();
    const reference = referenceTopK(vectors, queryVectors.slice(0, CHECKED_QUERIES));
    const exact = reference.every((ids, q) => JSON.stringify(ids) === JSON.stringify(answers[q]));
    return {
      candidate,
      vectors,
      queries,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
      cpuMsPerQuery: (cpu.user + cpu.system) / 1000 / queries,
      insertPerSecond: candidate === 'js-scan' ? null : vectors / (insertMs / 1000),
      reopenMs,
      rssMiB,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      exact,
      loadAverage,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const childAt = process.argv.indexOf('--child');
  if (childAt !== -1) {
    const [candidate, vectors, queries] = process.argv.slice(childAt + 1);
    const row = await child(candidate as Candidate, Number(vectors), Number(queries));
    process.stdout.write(`${JSON.stringify(row)}\n`);
  } else {
    const sizes = argValue('--sizes')?.split(',').map(Number);
    const queries = argValue('--queries');
    const candidates = argValue('--candidates')?.split(',') as Candidate[] | undefined;
    await benchIndex({
      ...(sizes ? { sizes } : {}),
      ...(queries ? { queries: Number(queries) } : {}),
      ...(candidates ? { candidates } : {}),
    });
  }
}
