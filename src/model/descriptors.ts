import type { Descriptor } from './manifest.ts';

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
