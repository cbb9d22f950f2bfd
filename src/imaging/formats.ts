import { extname } from 'node:path';

/**
 * File extensions treated as images, lower case. Matching ignores case: the classic demo only took
 * `.jpg`/`.png` as written and silently skipped `.jpeg` and `.JPG` (milvus-io/bootcamp#54).
 * HEIC/HEIF are listed so they are tried and, when this sharp build lacks the HEVC decoder, reported
 * as unsupported rather than silently ignored.
 */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.heic',
  '.heif',
];

const extensions = new Set(IMAGE_EXTENSIONS);

/** True when the object key (or file name) ends with an image extension, in any case. */
export function isImageKey(key: string): boolean {
  return extensions.has(extname(key).toLowerCase());
}
