import sharp, { type Metadata } from 'sharp';
import { ImageError } from '../domain/errors.ts';

/** Guards applied before any pixel is decoded. */
export interface DecodeLimits {
  /** Width × height above which an image is refused (decompression bombs). */
  maxPixels: number;
  /** Longest side ÷ shortest side above which an image is refused: squashed to a square it is noise. */
  maxAspectRatio: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxPixels: 100_000_000, maxAspectRatio: 50 };

/** 8-bit sRGB pixels, 3 channels, interleaved (HWC). */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /** `ignore` keeps the stored pixel order as Keras/PIL did; `apply` honours the EXIF orientation tag. */
  orientation: 'ignore' | 'apply';
  /** `drop` discards the alpha channel (PIL convert('RGB')); `flatten` composites it over white. */
  alpha: 'drop' | 'flatten';
  /** Antialiased resize inside libvips, squashing to exactly this size; omitted keeps full resolution. */
  resize?: { width: number; height: number };
}

/** What sharp reports for the formats we accept (AVIF arrives as `heif` with `av1` compression). */
const SUPPORTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

const FORMAT_NAMES: Record<string, string> = {
  svg: 'SVG (vector graphics)',
  heif: 'HEIC (HEVC-compressed HEIF)',
  vips: 'VIPS',
  raw: 'raw pixel data',
};

/** Signatures of well-known image or document formats this build cannot decode, for a precise reason. */
const UNSUPPORTED_SIGNATURES: { name: string; matches: (b: Uint8Array) => boolean }[] = [
  { name: 'PDF', matches: (b) => startsWith(b, [0x25, 0x50, 0x44, 0x46]) },
  { name: 'BMP', matches: (b) => startsWith(b, [0x42, 0x4d]) && b.length > 14 },
  { name: 'Photoshop (PSD)', matches: (b) => startsWith(b, [0x38, 0x42, 0x50, 0x53]) },
  { name: 'ICO', matches: (b) => startsWith(b, [0x00, 0x00, 0x01, 0x00]) },
  {
    name: 'JPEG 2000',
    matches: (b) =>
      startsWith(b, [0xff, 0x4f, 0xff, 0x51]) ||
      startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20]),
  },
  {
    name: 'JPEG XL',
    matches: (b) =>
      startsWith(b, [0xff, 0x0a]) || startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20]),
  },
  {
    name: 'HEIC (HEVC-compressed HEIF)',
    matches: (b) => /^ftyp(heic|heix|hevc|hevx|heim|heis)/.test(ascii(b, 4, 8)),
  },
];

function startsWith(bytes: Uint8Array, prefix: number[]): boolean {
  return prefix.every((value, i) => bytes[i] === value);
}

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return Buffer.from(bytes.subarray(start, start + length)).toString('latin1');
}

function megapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(1)} MP`;
}

/** Reads the header only, and refuses what must not be decoded. Throws ImageError. */
export async function inspectImage(bytes: Uint8Array, limits: DecodeLimits): Promise<Metadata> {
  if (bytes.length === 0) {
    throw new ImageError('The file is empty (0 bytes).', 'empty');
  }
  let meta: Metadata;
  try {
    // The header alone is safe to read at any size: the pixel limit is enforced below with a clear reason.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    const message = (error as Error).message;
    if (/unsupported image format/i.test(message)) {
      const known = UNSUPPORTED_SIGNATURES.find((s) => s.matches(bytes));
      if (known) {
        throw new ImageError(
          `${known.name} files are not supported; use JPEG, PNG, WebP, GIF, TIFF or AVIF.`,
          'unsupported_format',
        );
      }
      throw new ImageError('The data is not an image in any known format.', 'not_an_image');
    }
    throw new ImageError(`The image header is corrupt: ${message}.`, 'corrupt');
  }
  const format = meta.format as string;
  if (!SUPPORTED_FORMATS.has(format) || (format === 'heif' && meta.compression !== 'av1')) {
    const name = FORMAT_NAMES[format] ?? format.toUpperCase();
    throw new ImageError(
      `${name} images are not supported; use JPEG, PNG, WebP, GIF, TIFF or AVIF.`,
      'unsupported_format',
    );
  }
  const { width, height } = meta;
  if (!width || !height) {
    throw new ImageError('The image header declares no size.', 'corrupt');
  }
  const pixels = width * height;
  if (pixels > limits.maxPixels) {
    throw new ImageError(
      `The image is ${width}×${height} (${megapixels(pixels)}), over the ${megapixels(limits.maxPixels)} limit.`,
      'too_many_pixels',
    );
  }
  const ratio = Math.max(width, height) / Math.min(width, height);
  if (ratio > limits.maxAspectRatio) {
    throw new ImageError(
      `The image is ${width}×${height}: an aspect ratio of ${ratio.toFixed(0)}:1 is over the ${limits.maxAspectRatio}:1 limit.`,
      'bad_aspect_ratio',
    );
  }
  return meta;
}

/**
 * Decodes to 8-bit sRGB, 3 channels: CMYK, greyscale, palette and 16-bit inputs are converted; GIF and
 * multi-page TIFF give their first frame. Throws ImageError (never a bare libvips error).
 *
 * The header checks and the decode are queued together, so one call hands libvips all its work at once:
 * the embedder relies on that to decode the next batch while inference blocks the JavaScript thread.
 */
export async function decodeRgb(
  bytes: Uint8Array,
  options: DecodeOptions,
  limits: DecodeLimits,
): Promise<RgbImage> {
  if (bytes.length > 0 && looksLikeMarkup(bytes)) {
    // Refused before libvips sees it: librsvg would happily render SVG.
    throw new ImageError(
      'SVG and other markup documents are not supported; use JPEG, PNG, WebP, GIF, TIFF or AVIF.',
      'unsupported_format',
    );
  }
  const [header, pixels] = await Promise.allSettled([
    inspectImage(bytes, limits),
    decodePixels(bytes, options, limits),
  ]);
  if (header.status === 'rejected') throw header.reason;
  if (pixels.status === 'rejected') {
    throw new ImageError(
      `The image data is corrupt or truncated: ${(pixels.reason as Error).message}.`,
      'corrupt',
    );
  }
  return pixels.value;
}

async function decodePixels(
  bytes: Uint8Array,
  options: DecodeOptions,
  limits: DecodeLimits,
): Promise<RgbImage> {
  // failOn 'warning' (sharp's default, stated because it matters): truncated data is refused rather than
  // decoded into a grey half-image that would still get a plausible vector.
  let pipeline = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'warning' });
  if (options.orientation === 'apply') pipeline = pipeline.autoOrient();
  pipeline = options.alpha === 'drop' ? pipeline.removeAlpha() : pipeline.flatten({ background: '#ffffff' });
  if (options.resize) {
    pipeline = pipeline.resize(options.resize.width, options.resize.height, {
      fit: 'fill',
      kernel: 'lanczos3',
    });
  }
  const { data, info } = await pipeline
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
  return { data, width: info.width, height: info.height };
}

/** First non-blank character is '<' (SVG, XML, HTML), after an optional UTF-8 byte-order mark. */
function looksLikeMarkup(bytes: Uint8Array): boolean {
  let i = startsWith(bytes, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (
    i < bytes.length &&
    i < 256 &&
    (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)
  )
    i++;
  return bytes[i] === 0x3c;
}
