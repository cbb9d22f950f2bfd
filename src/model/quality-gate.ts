import { dot } from '../embedder/vectors.ts';

/**
 * The bounds an int8 model must meet against its fp32 source (docs/models.md, quantization).
 *
 * Cosine, relative to the head: within one precision an exact copy gives its photo's own vector, so int8
 * can only cost an exact copy when queries and the index come from different precisions (an index made
 * in fp32 before the int8 model existed, or by GPU workers, searched with int8 queries). There an exact
 * copy scores c, its int8 vector's cosine to its fp32 vector, and for unit vectors any other score moves
 * by at most ‖a − b‖ = √(2 − 2c). So when c − √(2 − 2c) ≥ t, the head's fp32 `duplicate` threshold, the
 * copy is labelled `duplicate` and ranks above every photo the fp32 model would not call a duplicate,
 * whatever direction the error takes: that solves to c ≥ 1 − (√(3 − 2t) − 1)² / 2 (`copyCosineBound`).
 * Heads that spread scores (whitened GeM, t ≈ 0.63) allow 0.95; heads whose scores crowd near 1 (MAC,
 * t ≈ 0.993) need 0.99998, which no int8 rounding reaches. Recall: the drop the issue allows, on the
 * evaluation corpus, within int8 and with int8 queries against the fp32 index.
 */
export const QUALITY_BOUNDS = { maxRecallDrop: 0.01 } as const;

/** The lowest cosine c with c − √(2 − 2c) ≥ `duplicate` (see QUALITY_BOUNDS). */
export function copyCosineBound(duplicate: number): number {
  const change = Math.sqrt(3 - 2 * duplicate) - 1;
  return 1 - (change * change) / 2;
}

export interface GateInput {
  /** The same images embedded by each model, in the same order: the indexed photos first, then queries. */
  fp32: Float32Array[];
  int8: Float32Array[];
  /** How many of the images, from the first, are the indexed photos (each an exact copy of itself). */
  photos: number;
  /** The head's fp32 `duplicate` threshold. */
  duplicate: number;
  /** `acrossPrecisions`: int8 queries against the fp32 index. */
  recallAt1: { fp32: number; int8: number; acrossPrecisions: number; queries: number };
}

export interface GateResult {
  ok: boolean;
  /** Why the model is refused, one sentence a reason; empty when it passes. */
  reasons: string[];
  /** The cosine every exact copy needs (copyCosineBound of the `duplicate` threshold). */
  cosineBound: number;
  /** The lowest cosine of an indexed photo's int8 vector to its fp32 vector, and that photo. */
  copyMinCosine: number;
  worstPhoto: number;
  /** Over all images, queries included (for the record). */
  minCosine: number;
  meanCosine: number;
}

export function qualityGate(input: GateInput, bounds = QUALITY_BOUNDS): GateResult {
  const { fp32, int8, photos, duplicate } = input;
  if (fp32.length !== int8.length || fp32.length === 0)
    throw new RangeError(`compare the same images: ${fp32.length} fp32 vs ${int8.length} int8`);
  if (!(photos >= 1 && photos <= fp32.length))
    throw new RangeError(`${photos} indexed photos among ${fp32.length} images`);
  const cosines = fp32.map((vector, i) => dot(vector, int8[i] as Float32Array));
  const copyCosines = cosines.slice(0, photos);
  // A broken model's NaN is the lowest of all (Math.min returns it) and fails every bound.
  const copyMinCosine = Math.min(...copyCosines);
  const worstPhoto = copyCosines.findIndex((c) => Object.is(c, copyMinCosine));
  const cosineBound = copyCosineBound(duplicate);
  const reasons: string[] = [];
  if (!(copyMinCosine >= cosineBound))
    reasons.push(
      `indexed photo ${worstPhoto}'s int8 vector has cosine ${copyMinCosine.toFixed(6)} to its fp32 vector, under the ${cosineBound.toFixed(6)} an exact copy needs with this head's duplicate threshold ${duplicate}`,
    );
  const { fp32: before, queries } = input.recallAt1;
  for (const [label, after] of [
    ['int8', input.recallAt1.int8],
    ['int8 queries against the fp32 index', input.recallAt1.acrossPrecisions],
  ] as const)
    if (!(before - after <= bounds.maxRecallDrop))
      reasons.push(
        `recall@1 on the evaluation corpus drops from ${before.toFixed(3)} to ${after.toFixed(3)} (${label}, ${queries} queries), more than ${bounds.maxRecallDrop}`,
      );
  return {
    ok: reasons.length === 0,
    reasons,
    cosineBound,
    copyMinCosine,
    worstPhoto,
    minCosine: Math.min(...cosines),
    meanCosine: cosines.reduce((sum, c) => sum + c, 0) / cosines.length,
  };
}
