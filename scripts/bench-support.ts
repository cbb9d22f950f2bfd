/** What the benchmark scripts share: order statistics, rounding, reproducible unit vectors, CPU time. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { l2Normalise } from '../src/embedder/vectors.ts';

/** Nearest-rank percentile (p in 0..100) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export const median = (values: number[]) => percentile(values, 50);

export const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** A fixed, image-like input of `batch` images for a model of `size`×`size` (pure inference timings). */
export function syntheticInput(size: number, batch = 1): Float32Array {
  return new Float32Array(3 * size * size * batch).map((_, i) => ((i * 37) % 255) - 120);
}

/** Deterministic unit vector number `i` of a seeded stream, regenerated instead of kept in memory. */
export function unitVector(i: number, seed = 1, dimension = 512): Float32Array {
  let state = (Math.imul(i + 1, 2654435761) ^ Math.imul(seed, 40503)) >>> 0;
  const v = new Float32Array(dimension);
  for (let d = 0; d < dimension; d++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    v[d] = (state >>> 0) / 4294967296 - 0.5;
  }
  return l2Normalise(v);
}

let clockTicksPerSecond: number | undefined;

/**
 * CPU time (user + system, all threads, exited ones included) another process has used so far, in ms,
 * from /proc/<pid>/stat; undefined where there is no /proc (not Linux) or no such process.
 */
export function cpuMsOfProcess(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
  } catch {
    return undefined;
  }
}

/** CPU time this process (every thread) has used so far, in ms. */
export function cpuMsOfThisProcess(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
