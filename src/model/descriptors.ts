import type { Descriptor } from './manifest.ts';
import type { WhiteningShape } from './whitening.ts';

/**
 * The descriptor new models get, chosen by measurement (`npm run eval`, docs/search-quality.md): GeM
 * with whitening had the best recall@1 and no edit worse than the classic MAC. `mac` stays available
 * for parity with the classic demo.
 */
export const DEFAULT_DESCRIPTOR: Descriptor = 'gem';

/**
 * Dimensions of the whitening the seeded model learns (0: none). A whitening is learnt per set of
 * weights; converted (pretrained) models get one only when asked (`model:convert --whitening 256`),
 * as it was measured on the seeded weights only.
 */
export const DEFAULT_SEEDED_WHITENING = 256;

/**
 * How strongly a whitening scales its weak directions: (λ + shrinkage × mean λ)^−power. Measured against
 * gentler shapes (`npm run eval:whitening`, docs/models.md): none ranks clearly better, and this one's int8
 * model passes the quality gate.
 */
export const WHITENING_STRENGTH = { shrinkage: 1, power: 0.5 } as const;

/** The whitening to `dimension` dimensions at WHITENING_STRENGTH. */
export function whiteningShape(dimension: number): WhiteningShape {
  return { dimension, ...WHITENING_STRENGTH };
}
