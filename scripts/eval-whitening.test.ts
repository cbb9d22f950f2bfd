import { describe, expect, it } from 'vitest';
import { parseCandidate } from './eval-whitening.ts';

describe('npm run eval:whitening candidates', () => {
  it('reads dimension:shrinkage:power[:centring], 0 for no whitening, and refuses anything else', () => {
    expect(parseCandidate('256:4:0.5')).toEqual({
      shape: { dimension: 256, shrinkage: 4, power: 0.5 },
      centring: 1,
    });
    expect(parseCandidate('512:1:0:0.5')).toEqual({
      shape: { dimension: 512, shrinkage: 1, power: 0 },
      centring: 0.5,
    });
    expect(parseCandidate('0')).toEqual({ centring: 1 });
    for (const bad of ['256', '256:4', '256.5:1:0.5', '256:-1:0.5', '256:1:0.5:1:2', 'gem'])
      expect(() => parseCandidate(bad)).toThrow(/dimension:shrinkage:power/);
  });
});
