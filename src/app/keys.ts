import { createHash } from 'node:crypto';
import { extname } from 'node:path';
import { ValidationError } from '../domain/errors.ts';
import { isImageKey } from '../imaging/formats.ts';

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

/**
 * The one rule for object keys and key prefixes, used by every route that names or makes a key (/ingest,
 * /images, /uploads, the CLI) and by the worker. S3 would take almost any key, but a key must also be a
 * path under the bucket folder and a URL path under /images/, so: at most MAX_KEY_BYTES of UTF-8, no
 * leading "/", no empty, "." or ".." segment, no backslash and no control character.
 */
export const MAX_KEY_BYTES = 1024;

/** Why `key` is not a valid key; undefined when it is. */
export function keyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `it is over ${MAX_KEY_BYTES} bytes`;
  return pathProblem(key, key.split('/'));
}

/** `key` itself, or a ValidationError (400) that says what is wrong with it. */
export function validKey(key: string): string {
  const problem = keyProblem(key);
  if (problem) throw new ValidationError(`"${key}" is not a valid key: ${problem}.`);
  return key;
}

/** The worker indexes only image keys that follow the key rule; anything else is not one of ours. */
export function isIndexableKey(key: string): boolean {
  return isImageKey(key) && keyProblem(key) === undefined;
}

/**
 * A caller's prefix as stored: '' (or absent) stays '', anything else ends with exactly one "/" so that
 * "holiday" + "x.jpg" is "holiday/x.jpg", never "holidayx.jpg", and "a/" never sweeps up "ab/…".
 * ValidationError (400) for a prefix that breaks the key rule ("../", "a//b/", "/etc/").
 */
export function normalisePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '') return '';
  const withSlash = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const problem =
    Buffer.byteLength(withSlash) > MAX_KEY_BYTES / 2
      ? `it is over ${MAX_KEY_BYTES / 2} bytes`
      : pathProblem(withSlash, withSlash.slice(0, -1).split('/'));
  if (problem) throw new ValidationError(`"${prefix}" is not a valid prefix: ${problem}.`);
  return withSlash;
}

/** The key of a file named `name` (it may name sub-folders: "2024/x.jpg") under `prefix`. 400 when invalid. */
export function keyUnder(prefix: string | undefined, name: string): string {
  const problem = keyProblem(name);
  if (problem) throw new ValidationError(`"${name}" is not a valid file name: ${problem}.`);
  return validKey(normalisePrefix(prefix) + name);
}

function pathProblem(path: string, segments: string[]): string | undefined {
  if (path.startsWith('/')) return 'it starts with "/"';
  if (path.includes('\\')) return 'it contains a backslash';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'it contains a control character';
  if (segments.some((segment) => segment === '.' || segment === '..')) return 'it has a "." or ".." segment';
  if (segments.some((segment) => segment === '')) return 'it has an empty segment ("//")';
  return undefined;
}
