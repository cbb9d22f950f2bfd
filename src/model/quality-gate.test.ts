import { describe, expect, it } from 'vitest';
import { l2Normalise } from '../embedder/vectors.ts';
import { qualityGate } from './quality-gate.ts';

/** A unit vector at cosine `c` from the unit vector e0 (in the e0–e1 plane). */
const atCosine = (c: number) => Float32Array.of(c, Math.sqrt(1 - c * c), 0);
const e0 = () => Float32Array.of(1, 0, 0);
const recall = { fp32: 0.9, int8: 0.9, queries: 100 };

describe('qualityGate', () => {
  it('passes vectors within the cosine bound whose recall holds', () => {
    const result = qualityGate({
      fp32: [e0(), e0()],
      int8: [atCosine(0.9999), atCosine(0.9995)],
      recallAt1: recall,
    });

    expect(result).toMatchObject({ ok: true, reasons: [], worst: 1 });
    expect(result.minCosine).toBeCloseTo(0.9995, 6);
  });

  it('refuses a model one of whose vectors falls under the bound, naming the image and the cosine', () => {
    const result = qualityGate({
      fp32: [e0(), e0()],
      int8: [atCosine(0.9999), atCosine(0.998)],
      recallAt1: recall,
    });

    expect(result.ok).toBe(false);
    expect(result.reasons).toEqual([
      "image 1's int8 vector has cosine 0.99800 to its fp32 vector, under the 0.999 bound",
    ]);
  });

  it('refuses a recall@1 drop of more than 0.01, and a vector of NaN', () => {
    const nan = l2Normalise(Float32Array.of(Number.NaN, 0, 0));

    const result = qualityGate({
      fp32: [e0()],
      int8: [nan],
      recallAt1: { fp32: 0.9, int8: 0.885, queries: 200 },
    });

    expect(result.ok).toBe(false);
    expect(result.reasons).toHaveLength(2);
    expect(result.reasons[1]).toBe(
      'recall@1 on the evaluation corpus drops from 0.900 to 0.885 (200 queries), more than 0.01',
    );
  });
});
