import { extname } from 'node:path';

/**
 * Where an image's thumbnail lives in the thumbnails store: the image key plus `.webp`, so the stored
 * object's name says what it holds (S3 consoles, the folder on disk) and never collides with an image.
 */
export function thumbnailKeyOf(key: string): string {
  return `${key}.webp`;
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
