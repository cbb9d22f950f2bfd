import { describe, expect, it } from 'vitest';
import { matchLabel, mergeVariantHits } from './matching.ts';

const hit = (id: string, score: number) => ({ id, key: `k/${id}`, score });

describe('mergeVariantHits', () => {
  it('keeps each key once with its best score, best first, cut at topK', () => {
    const merged = mergeVariantHits(
      [
        [hit('a', 0.5), hit('b', 0.4)],
        [hit('b', 0.9), hit('c', 0.3)],
      ],
      2,
      0,
    );
    expect(merged).toEqual([hit('b', 0.9), hit('a', 0.5)]);
  });

  it('lets a turned variant outrank the upright query only by more than the margin', () => {
    const upright = [hit('crop-original', 0.8)];
    const turnedSlightlyBetter = [hit('other', 0.81)];
    expect(mergeVariantHits([upright, turnedSlightlyBetter], 1, 0.02)[0]?.id).toBe('crop-original');
    const turnedMuchBetter = [hit('rotated-original', 0.95)];
    expect(mergeVariantHits([upright, turnedMuchBetter], 1, 0.02)[0]).toEqual(hit('rotated-original', 0.95));
  });
});

describe('matchLabel', () => {
  const thresholds = { duplicate: 0.9, similar: 0.6 };
  it('labels by the calibrated thresholds, inclusive', () => {
    expect(matchLabel(0.9, thresholds)).toBe('duplicate');
    expect(matchLabel(0.89, thresholds)).toBe('similar');
    expect(matchLabel(0.6, thresholds)).toBe('similar');
    expect(matchLabel(0.59, thresholds)).toBe('weak');
  });

  it('claims nothing for an uncalibrated model', () => {
    expect(matchLabel(1, undefined)).toBe('weak');
  });
});
