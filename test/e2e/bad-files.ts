/**
 * Bad files for ingest tests, generated rather than stored: one of each kind the decoder must refuse, with
 * the words its reason must contain.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { fixturesDir } from '../../local/service-process.ts';

/** Run the service with this pixel limit so that "too many pixels" needs only a 5 MP file. */
export const E2E_MAX_PIXELS = 4_000_000;

export const BAD_FILES: { name: string; reason: RegExp; make: () => Promise<Buffer> }[] = [
  { name: 'zero-bytes.jpg', reason: /empty/i, make: async () => Buffer.alloc(0) },
  {
    name: 'not-an-image.jpg',
    reason: /not an image/i,
    make: async () => Buffer.from('holiday notes, not a picture\n'),
  },
  {
    name: 'truncated.jpg',
    reason: /corrupt|truncated/i,
    make: async () => {
      const photo = await readFile(join(fixturesDir, 'pizza.jpg'));
      return photo.subarray(0, Math.floor(photo.length * 0.4));
    },
  },
  {
    name: 'header-then-garbage.jpg',
    reason: /corrupt|truncated/i,
    make: async () => {
      const photo = await readFile(join(fixturesDir, 'pizza.jpg'));
      return Buffer.concat([photo.subarray(0, 2000), randomBytes(30_000)]);
    },
  },
  {
    name: 'too-many-pixels.png',
    reason: /limit/i,
    make: () =>
      sharp({ create: { width: 2500, height: 2000, channels: 3, background: '#3a6' } })
        .png()
        .toBuffer(),
  },
  {
    name: 'vector-drawing.png',
    reason: /SVG|not supported/i,
    make: async () =>
      Buffer.from(
        '<svg xmlns="http://www.w3.org/2000/svg" width="99" height="99"><circle cx="9" cy="9" r="9"/></svg>',
      ),
  },
  {
    name: 'absurd-aspect-ratio.png',
    reason: /aspect ratio/i,
    make: () =>
      sharp({ create: { width: 3000, height: 20, channels: 3, background: '#a36' } })
        .png()
        .toBuffer(),
  },
];

export async function writeBadFiles(dir: string): Promise<void> {
  for (const bad of BAD_FILES) await writeFile(join(dir, bad.name), await bad.make());
}
