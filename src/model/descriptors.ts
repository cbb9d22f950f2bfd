import type { Descriptor } from './manifest.ts';

/**
 * The descriptor new models get, chosen by measurement (`npm run eval`, docs/search-quality.md).
 * `mac` stays available for parity with the classic demo.
 */
export const DEFAULT_DESCRIPTOR: Descriptor = 'mac';

/** Dimensions of the whitening new models learn (0: none), chosen with the descriptor. */
export const DEFAULT_WHITENING = 0;
