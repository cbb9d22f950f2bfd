import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageError, type ImageErrorKind } from '../domain/errors.ts';
import { SAMPLE_PHOTOS_DIR } from '../sample-photos.ts';
import { DEFAULT_DECODE_LIMITS, decodeRgb } from './decode.ts';

const photos = SAMPLE_PHOTOS_DIR;
const keep = { orientation: 'ignore', alpha: 'drop' } as const;

/** A 2×1 image: left pixel red, right pixel blue, with 50% alpha on the right when `alpha` is set. */
function twoPixels(alpha = false) {
  const channels = alpha ? 4 : 3;
  const data = Buffer.from(alpha ? [255, 0, 0, 255, 0, 0, 255, 128] : [255, 0, 0, 0, 0, 255]);
  return sharp(data, { raw: { width: 2, height: 1, channels } });
}

/** A PNG whose header claims `width`×`height` with a tiny (wrong) body: enough for the header checks. */
function pngHeaderClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function refusal(bytes: Uint8Array, limits = DEFAULT_DECODE_LIMITS): Promise<ImageError> {
  const error = await decodeRgb(bytes, keep, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImageError);
  return error as ImageError;
}

describe('decodeRgb refuses bad input with a typed reason', () => {
  let jpeg: Buffer;
  beforeAll(async () => {
    jpeg = await readFile(resolve(photos, 'pizza.jpg'));
  });

  const cases: [string, () => Promise<Uint8Array> | Uint8Array, ImageErrorKind, RegExp][] = [
    ['zero bytes', () => Buffer.alloc(0), 'empty', /empty/],
    ['plain text', () => Buffer.from('name,size\nholiday.jpg,1234\n'), 'not_an_image', /not an image/],
    [
      'random bytes',
      () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)),
      'not_an_image',
      /not an image/,
    ],
    [
      'a truncated JPEG',
      () => jpeg.subarray(0, Math.floor(jpeg.length / 2)),
      'corrupt',
      /corrupt or truncated/,
    ],
    [
      'a valid JPEG header followed by garbage',
      () => Buffer.concat([jpeg.subarray(0, 600), Buffer.alloc(20_000, 0x5a)]),
      'corrupt',
      /corrupt or truncated/,
    ],
    [
      'a PNG header followed by a broken body',
      () => pngHeaderClaiming(64, 64),
      'corrupt',
      /corrupt or truncated/,
    ],
    [
      'a header claiming 30000×30000 pixels',
      () => pngHeaderClaiming(30_000, 30_000),
      'too_many_pixels',
      /900\.0 MP.*100\.0 MP/,
    ],
    [
      'an SVG document',
      () =>
        Buffer.from(
          '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
        ),
      'unsupported_format',
      /SVG/,
    ],
    [
      'a PDF document',
      () => Buffer.from('%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n'),
      'unsupported_format',
      /PDF/,
    ],
    [
      'a BMP bitmap',
      () => Buffer.concat([Buffer.from('BM'), Buffer.alloc(64, 1)]),
      'unsupported_format',
      /BMP/,
    ],
    [
      'a 1000×10 strip (100:1)',
      () =>
        sharp({ create: { width: 1000, height: 10, channels: 3, background: '#808080' } })
          .png()
          .toBuffer(),
      'bad_aspect_ratio',
      /100:1.*50:1/,
    ],
  ];

  it.each(cases)('refuses %s', async (_name, make, kind, reason) => {
    const error = await refusal(await make());
    expect(error.kind).toBe(kind);
    expect(error.code).toBe(kind);
    expect(error.message).toMatch(reason);
  });

  it('applies a configured pixel limit', async () => {
    const image = await sharp({ create: { width: 100, height: 100, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const error = await refusal(image, { ...DEFAULT_DECODE_LIMITS, maxPixels: 5_000 });
    expect(error.kind).toBe('too_many_pixels');
    expect(error.message).toContain('100×100');
  });
});

describe('decodeRgb converts every accepted format to 8-bit sRGB', () => {
  it.each(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const)(
    'decodes %s to 3 channels',
    async (format) => {
      const encoded = await sharp({ create: { width: 16, height: 8, channels: 3, background: '#204080' } })
        .toFormat(format, format === 'avif' || format === 'webp' || format === 'jpeg' ? { quality: 100 } : {})
        .toBuffer();

      const image = await decodeRgb(encoded, keep, DEFAULT_DECODE_LIMITS);

      expect([image.width, image.height, image.data.length]).toEqual([16, 8, 16 * 8 * 3]);
      const [r, g, b] = image.data;
      expect(
        Math.abs((r as number) - 0x20) + Math.abs((g as number) - 0x40) + Math.abs((b as number) - 0x80),
      ).toBeLessThanOrEqual(9);
    },
  );

  it('takes the first frame of an animated GIF', async () => {
    const frame = (colour: string) =>
      sharp({ create: { width: 4, height: 4, channels: 3, background: colour } })
        .png()
        .toBuffer();
    const animated = await sharp([await frame('#ff0000'), await frame('#0000ff')], {
      join: { animated: true },
    })
      .gif()
      .toBuffer();
    expect((await sharp(animated).metadata()).pages).toBe(2);

    const image = await decodeRgb(animated, keep, DEFAULT_DECODE_LIMITS);

    expect([image.width, image.height]).toEqual([4, 4]);
    expect([...image.data.subarray(0, 3)]).toEqual([255, 0, 0]);
  });

  it('converts CMYK, greyscale, palette and 16-bit images', async () => {
    const base = sharp({ create: { width: 8, height: 8, channels: 3, background: '#c08040' } });
    const inputs = [
      await base.clone().toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer(),
      await base.clone().toColourspace('b-w').png().toBuffer(),
      await base.clone().png({ palette: true, colours: 4 }).toBuffer(),
      await base.clone().toColourspace('rgb16').png().toBuffer(),
      await base.clone().greyscale().toColourspace('grey16').png().toBuffer(),
    ];
    const kinds = await Promise.all(
      inputs.map(async (b) => {
        const meta = await sharp(b).metadata();
        return `${meta.space}/${meta.depth}${meta.isPalette ? '/palette' : ''}`;
      }),
    );
    expect(kinds).toEqual(['cmyk/uchar', 'b-w/uchar', 'srgb/uchar/palette', 'rgb16/ushort', 'grey16/ushort']);

    const decoded = await Promise.all(inputs.map((input) => decodeRgb(input, keep, DEFAULT_DECODE_LIMITS)));
    for (const image of decoded) expect(image.data.length).toBe(8 * 8 * 3);
    // The colour ones come back as #c08040; CMYK goes through ICC profiles both ways, so a few levels off.
    for (const [image, tolerance] of [
      [decoded[0], 24],
      [decoded[2], 0],
      [decoded[3], 0],
    ] as const) {
      const error = [0xc0, 0x80, 0x40].map((v, i) => Math.abs((image?.data[i] as number) - v));
      expect(Math.max(...error)).toBeLessThanOrEqual(tolerance);
    }
    const grey = await decodeRgb(inputs[1] as Buffer, keep, DEFAULT_DECODE_LIMITS);
    expect(grey.data[0]).toBe(grey.data[1]);
    expect(grey.data[1]).toBe(grey.data[2]);
  });

  it('drops alpha or flattens it on white, as asked', async () => {
    const png = await twoPixels(true).png().toBuffer();

    const dropped = await decodeRgb(png, { orientation: 'ignore', alpha: 'drop' }, DEFAULT_DECODE_LIMITS);
    const flattened = await decodeRgb(
      png,
      { orientation: 'ignore', alpha: 'flatten' },
      DEFAULT_DECODE_LIMITS,
    );

    expect([...dropped.data]).toEqual([255, 0, 0, 0, 0, 255]);
    // 50% blue over white: (0 × 128 + 255 × 127) / 255 ≈ 127 for red and green, blue stays 255.
    expect([...flattened.data.subarray(0, 3)]).toEqual([255, 0, 0]);
    for (const [i, expected] of [127, 127, 255].entries()) {
      expect(Math.abs((flattened.data[3 + i] as number) - expected)).toBeLessThanOrEqual(1);
    }
  });

  it('ignores or applies the EXIF orientation, as asked', async () => {
    const photo = await readFile(resolve(photos, 'hot-air-balloons-exif-orientation-6.jpg'));

    const stored = await decodeRgb(photo, { orientation: 'ignore', alpha: 'drop' }, DEFAULT_DECODE_LIMITS);
    const upright = await decodeRgb(photo, { orientation: 'apply', alpha: 'drop' }, DEFAULT_DECODE_LIMITS);

    expect([stored.width, stored.height]).toEqual([435, 678]);
    expect([upright.width, upright.height]).toEqual([678, 435]);
  });
});
