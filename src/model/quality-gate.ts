import { dot } from '../embedder/vectors.ts';

/**
 * The bounds an int8 model must meet against its fp32 source (docs/models.md, quantization).
 *
 * Cosine: for unit vectors a and b, any similarity moves by at most |q·a − q·b| ≤ ‖a − b‖ = √(2 − 2·cos),
 * so a cosine of 0.999 bounds every score change by 0.045 even in the worst direction; errors of a
 * quantized network are spread over all 512 dimensions, and the measured shifts are ten times smaller
 * (docs/models.md). The seeded VGG16 measures 0.9997 at worst; a model that falls below 0.999 is badly
 * calibrated, not merely rounded. Recall: the drop the issue allows, on the evaluation corpus.
 */
export const QUALITY_BOUNDS = { minCosine: 0.999, maxRecallDrop: 0.01 } as const;

export interface GateInput {
  /** The same images embedded by each model, in the same order. */
  fp32: Float32Array[];
  int8: Float32Array[];
  recallAt1: { fp32: number; int8: number; queries: number };
}

export interface GateResult {
  ok: boolean;
  /** Why the model is refused, one sentence a reason; empty when it passes. */
  reasons: string[];
  minCosine: number;
  meanCosine: number;
  /** The image whose vectors differ most. */
  worst: number;
}

export function qualityGate(input: GateInput, bounds = QUALITY_BOUNDS): GateResult {
  if (input.fp32.length !== input.int8.length || input.fp32.length === 0)
    throw new RangeError(`compare the same images: ${input.fp32.length} fp32 vs ${input.int8.length} int8`);
  const cosines = input.fp32.map((vector, i) => dot(vector, input.int8[i] as Float32Array));
  const minCosine = Math.min(...cosines);
  const meanCosine = cosines.reduce((sum, c) => sum + c, 0) / cosines.length;
  const worst = cosines.indexOf(minCosine);
  const reasons: string[] = [];
  if (!(minCosine >= bounds.minCosine))
    reasons.push(
      `image ${worst}'s int8 vector has cosine ${minCosine.toFixed(5)} to its fp32 vector, under the ${bounds.minCosine} bound`,
    );
  const { fp32, int8, queries } = input.recallAt1;
  if (!(fp32 - int8 <= bounds.maxRecallDrop))
    reasons.push(
      `recall@1 on the evaluation corpus drops from ${fp32.toFixed(3)} to ${int8.toFixed(3)} (${queries} queries), more than ${bounds.maxRecallDrop}`,
    );
  return { ok: reasons.length === 0, reasons, minCosine, meanCosine, worst };
}
