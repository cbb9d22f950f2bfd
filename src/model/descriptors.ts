import type { Descriptor } from './manifest.ts';

/**
 * The descriptor new models get, chosen by measurement (`npm run eval`, docs/search-quality.md).
 * `mac` stays available for parity with the classic demo.
 */
export const DEFAULT_DESCRIPTOR: Descriptor = 'mac';
