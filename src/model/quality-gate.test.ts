import { describe, expect, it } from 'vitest';
import { dot, l2Normalise } from '../embedder/vectors.ts';
import { copyCosineBound, type GateInput, qualityGate } from './quality-gate.ts';

/** A unit vector at cosine `c` from the unit vector e0 (in the e0–e1 plane). */
const atCosine = (c: number) => Float32Array.of(c, Math.sqrt(1 - c * c), 0);
const e0 = () => Float32Array.of(1, 0, 0);
const recall = { fp32: 0.9, int8: 0.9, acrossPrecisions: 0.9, queries: 100 };
const gate = (input: Partial<GateInput>) =>
  qualityGate({
    fp32: [e0(), e0()],
    int8: [e0(), e0()],
    photos: 2,
    duplicate: 0.63,
    recallAt1: recall,
    ...input,
  });

describe('copyCosineBound', () => {
  it('is the cosine c at which c minus the worst score change √(2 − 2c) meets the duplicate threshold', () => {
    for (const t of [0, 0.2142, 0.6318, 0.9, 0.9931]) {
      const c = copyCosineBound(t);
      expect(c - Math.sqrt(2 - 2 * c)).toBeCloseTo(t, 12);
    }
    // Spread scores allow int8's rounding; scores crowded near 1 (MAC, t 0.9931) allow almost none.
    expect(copyCosineBound(0.6318)).toBeCloseTo(0.94953, 5);
    expect(copyCosineBound(0.9931)).toBeGreaterThan(0.99997);
  });

  it('guarantees the copy is labelled duplicate and ranks above any photo scored under the threshold', () => {
    for (let t = 0; t < 0.999; t += 0.001) {
      const c = copyCosineBound(t);
      // The worst case lies in one plane: the int8 vector turned by arccos(c) from its photo, and a
      // photo just under the threshold turned by arccos(t) to the same side.
      const copy = atCosine(c);
      const impostor = atCosine(t - 1e-9);
      expect(dot(copy, e0())).toBeGreaterThanOrEqual(t - 1e-6);
      expect(dot(copy, e0())).toBeGreaterThan(dot(copy, impostor));
    }
  });
});

describe('qualityGate', () => {
  it('passes exact copies within the head’s cosine bound whose recall holds', () => {
    const result = gate({ int8: [atCosine(0.97), atCosine(0.96)] });

    expect(result).toMatchObject({ ok: true, reasons: [], worstPhoto: 1 });
    expect(result.cosineBound).toBeCloseTo(copyCosineBound(0.63), 9);
    expect(result.copyMinCosine).toBeCloseTo(0.96, 6);
  });

  it('refuses a copy under the bound, naming the photo, its cosine, the bound and the threshold', () => {
    const result = gate({ int8: [atCosine(0.97), atCosine(0.94)] });

    expect(result.ok).toBe(false);
    expect(result.reasons).toEqual([
      "indexed photo 1's int8 vector has cosine 0.940000 to its fp32 vector, under the 0.949091 an exact copy needs with this head's duplicate threshold 0.63",
    ]);
  });

  it('holds crowded heads to their own bound: a cosine of 0.9997 passes a spread head and fails MAC’s', () => {
    const int8 = [atCosine(0.9997), e0()];

    expect(gate({ int8, duplicate: 0.63 }).ok).toBe(true);
    expect(gate({ int8, duplicate: 0.9931 }).ok).toBe(false);
  });

  it('bounds only the indexed photos: an edited query far from its fp32 vector is judged by recall', () => {
    const result = gate({ fp32: [e0(), e0(), e0()], int8: [e0(), e0(), atCosine(0.5)], photos: 2 });

    expect(result.ok).toBe(true);
    expect(result.minCosine).toBeCloseTo(0.5, 6);
    expect(result.copyMinCosine).toBe(1);
  });

  it('refuses a recall@1 drop of more than 0.01 within int8 or across precisions, and a vector of NaN', () => {
    const nan = l2Normalise(Float32Array.of(Number.NaN, 0, 0));

    const result = gate({
      int8: [e0(), nan],
      recallAt1: { fp32: 0.9, int8: 0.885, acrossPrecisions: 0.88, queries: 200 },
    });

    expect(result.ok).toBe(false);
    expect(result.worstPhoto).toBe(1);
    expect(result.reasons.slice(1)).toEqual([
      'recall@1 on the evaluation corpus drops from 0.900 to 0.885 (int8, 200 queries), more than 0.01',
      'recall@1 on the evaluation corpus drops from 0.900 to 0.880 (int8 queries against the fp32 index, 200 queries), more than 0.01',
    ]);
  });
});
