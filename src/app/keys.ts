import { createHash } from 'node:crypto';
import { extname } from 'node:path';

/**
 * Longest thumbnail file name kept readable. File systems allow 255 bytes a name and the folder store
 * writes `.<name>.<16 hex>.tmp` first (22 bytes more), so a 231-byte image name would overflow.
 */
const MAX_THUMBNAIL_NAME_BYTES = 200;

/**
 * Where an image's thumbnail lives in the thumbnails store: the image key plus `.webp`, so the stored
 * object's name says what it holds (S3 consoles, the folder on disk) and never collides with an image.
 * A name too long for that is replaced by the SHA-256 of the whole key, in the same folder.
 */
export function thumbnailKeyOf(key: string): string {
  const slash = key.lastIndexOf('/');
  const name = `${key.slice(slash + 1)}.webp`;
  if (Buffer.byteLength(name, 'utf8') <= MAX_THUMBNAIL_NAME_BYTES) return `${key}.webp`;
  return `${key.slice(0, slash + 1)}${createHash('sha256').update(key).digest('hex')}.webp`;
}

export const THUMBNAIL_CONTENT_TYPE = 'image/webp';

const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.avif': 'image/avif',
  '.heic': 'image/heic',
  '.heif': 'image/heif',
};

/** The content type an image key's extension announces (any case); octet-stream when unknown. */
export function contentTypeOf(key: string): string {
  return CONTENT_TYPES[extname(key).toLowerCase()] ?? 'application/octet-stream';
}

/** A key as a URL path: each segment encoded, the slashes kept (the HTTP routes' `{key+}`). */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
