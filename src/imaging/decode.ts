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
  /** The EXIF orientation (1–8) the pixels are still stored in: 1 once applied or when absent. */
  orientation: number;
}

export interface DecodeOptions {
  /** `ignore` keeps the stored pixel order as Keras/PIL did; `apply` honours the EXIF orientation tag. */
  orientation: 'ignore' | 'apply';
  /** `drop` discards the alpha channel (PIL convert('RGB')); `flatten` composites it over white. */
  alpha: 'drop' | 'flatten';
  /** Antialiased resize inside libvips, squashing to exactly this size; omitted keeps full resolution. */
  resize?: { width: number; height: number };
  /**
   * Antialiased shrink (never an enlargement) until the shorter side is this long, aspect kept: one
   * decode (JPEG shrink-on-load) from which the model input and the thumbnail are both resized.
   */
  shrinkTo?: number;
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
  const [header, decoded] = await Promise.allSettled([
    inspectImage(bytes, limits),
    decodePixels(bytes, options, limits),
  ]);
  if (header.status === 'rejected') throw header.reason;
  if (decoded.status === 'rejected') {
    throw new ImageError(
      `The image data is corrupt or truncated: ${(decoded.reason as Error).message}.`,
      'corrupt',
    );
  }
  const orientation = options.orientation === 'ignore' ? (header.value.orientation ?? 1) : 1;
  return { ...decoded.value, orientation };
}

async function decodePixels(
  bytes: Uint8Array,
  options: DecodeOptions,
  limits: DecodeLimits,
): Promise<Omit<RgbImage, 'orientation'>> {
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
  } else if (options.shrinkTo) {
    const side = options.shrinkTo;
    pipeline = pipeline.resize(side, side, { fit: 'outside', withoutEnlargement: true, kernel: 'lanczos3' });
  }
  const { data, info } = await pipeline
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
  return { data, width: info.width, height: info.height };
}

function rawInput(image: RgbImage) {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

/** Squashes decoded pixels to exactly width×height with the same lanczos3 filter as a decode's `resize`. */
export async function resizeRgb(image: RgbImage, width: number, height: number): Promise<Buffer> {
  return rawInput(image).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
}

/** Width and height of an image file as stored (its header only). */
export async function storedSize(path: string): Promise<{ width: number; height: number }> {
  const { width = 0, height = 0 } = await sharp(path).metadata();
  return { width, height };
}

/** A JPEG of an image file, mirrored or cropped when asked (the whitening's calibration views). */
export function jpegView(
  path: string,
  view: { mirror?: boolean; crop?: { left: number; top: number; width: number; height: number } } = {},
): Promise<Buffer> {
  let pipeline = sharp(path);
  if (view.mirror) pipeline = pipeline.flop();
  if (view.crop) pipeline = pipeline.extract(view.crop);
  return pipeline.jpeg().toBuffer();
}

/** A JPEG of decoded pixels (the worker's self-test makes its probe photo with it). */
export function encodeJpeg(image: RgbImage): Promise<Buffer> {
  return rawInput(image).jpeg().toBuffer();
}

/**
 * Rotations and mirrors that make an image stored in EXIF orientation 2–8 upright (what libvips'
 * autorot does): sharp applies `rotate` before `flop`.
 */
const UPRIGHT: Record<number, { rotate: number; flop: boolean; flip: boolean }> = {
  2: { rotate: 0, flop: true, flip: false },
  3: { rotate: 180, flop: false, flip: false },
  4: { rotate: 0, flop: false, flip: true },
  5: { rotate: 90, flop: true, flip: false },
  6: { rotate: 90, flop: false, flip: false },
  7: { rotate: 270, flop: true, flip: false },
  8: { rotate: 270, flop: false, flip: false },
};

/**
 * A small WebP of decoded pixels, upright (its EXIF orientation applied), longest side `size`, never
 * enlarged. Effort 2 of 6: 11 instead of 15 CPU ms per fixture photo for files 4% larger (8.4 KB on average).
 */
export async function webpThumbnail(image: RgbImage, size: number): Promise<Buffer> {
  let pipeline = rawInput(image);
  const upright = UPRIGHT[image.orientation];
  if (upright?.rotate) pipeline = pipeline.rotate(upright.rotate);
  if (upright?.flop) pipeline = pipeline.flop();
  if (upright?.flip) pipeline = pipeline.flip();
  return pipeline
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 75, effort: 2 })
    .toBuffer();
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
