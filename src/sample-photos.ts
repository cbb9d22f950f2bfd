import { resolve } from 'node:path';

/**
 * The sample library shipped in the repository (samples/photos, with SOURCES.md and the licence of every
 * photo): tests, benchmarks, the evaluation corpus and `npm run demo` all read it, never a folder outside
 * the repository.
 */
export const SAMPLE_PHOTOS_DIR = resolve(import.meta.dirname, '../samples/photos');
