/** Checks the embedder tests share. */
import type { EmbedOutcome } from '../domain/ports.ts';

/** The vector of a successful outcome; anything else fails the test with what it was. */
export function vectorOf(outcome: EmbedOutcome | undefined): Float32Array {
  if (!outcome?.ok) throw new Error(`expected a vector, got ${JSON.stringify(outcome)}`);
  return outcome.vector;
}

/** Largest element-wise difference of two vectors of the same length. */
export function maxDifference(a: Float32Array, b: Float32Array): number {
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - (b[i] as number))), 0);
}
