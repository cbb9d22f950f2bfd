/**
 * The evaluation corpus of `npm run eval`, built from the repository's own photos only: the originals of
 * samples/photos (the format variants left out), the distractors of samples/distractors, and seven edited
 * copies of every original. A few originals are left out of the index on purpose, so their copies are
 * queries whose right answer is "no duplicate here" (the duplicate label's false positives).
 */
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { SAMPLE_PHOTOS_DIR } from '../src/sample-photos.ts';

export const DISTRACTORS_DIR = resolve(import.meta.dirname, '../samples/distractors');

export const TRANSFORMS = [
  'crop70',
  'resize50',
  'rotate90',
  'mirror',
  'bright',
  'jpeg30',
  'crop90badge',
] as const;
export type Transform = (typeof TRANSFORMS)[number];

/** Every `ABSENT_EVERY`-th original is not indexed: its copies must not be called duplicates. */
const ABSENT_EVERY = 6;

export interface Query {
  file: string;
  transform: Transform;
  /** The key of the original in the index; undefined when the original was left out. */
  expected: string | undefined;
}

export interface Corpus {
  /** Folder to ingest (originals/ and distractors/ below it). */
  indexDir: string;
  queries: Query[];
  indexed: number;
}

/** The photographs of samples/photos: its format variants (alpha PNG, WebP, EXIF-rotated copy) are copies. */
export async function originalPhotos(): Promise<string[]> {
  const files = await readdir(SAMPLE_PHOTOS_DIR);
  return files.filter((f) => f.endsWith('.jpg') && !f.includes('-exif-orientation-')).sort();
}

export async function edit(source: string, transform: Transform): Promise<Buffer> {
  const image = sharp(source).rotate();
  const { width = 0, height = 0 } = await sharp(source).rotate().metadata().then(orientedSize);
  switch (transform) {
    case 'crop70':
      return centreCrop(image, width, height, 0.7).jpeg({ quality: 90 }).toBuffer();
    case 'resize50':
      return image
        .resize(Math.round(width / 2), Math.round(height / 2))
        .jpeg({ quality: 90 })
        .toBuffer();
    case 'rotate90':
      return image.rotate(90).jpeg({ quality: 90 }).toBuffer();
    case 'mirror':
      return image.flop().jpeg({ quality: 90 }).toBuffer();
    case 'bright':
      return image.modulate({ brightness: 1.25 }).linear(1.3, -30).jpeg({ quality: 90 }).toBuffer();
    case 'jpeg30':
      return image.jpeg({ quality: 30 }).toBuffer();
    case 'crop90badge': {
      const cropped = await centreCrop(image, width, height, 0.9).toBuffer({ resolveWithObject: true });
      const side = Math.round(Math.min(cropped.info.width, cropped.info.height) * 0.3);
      const badge = Buffer.from(
        `<svg width="${side}" height="${side}"><rect width="${side}" height="${side}" rx="${side / 6}" fill="#d02020" fill-opacity="0.6"/>` +
          `<circle cx="${side / 2}" cy="${side / 2}" r="${side / 4}" fill="#ffffff" fill-opacity="0.7"/></svg>`,
      );
      return sharp(cropped.data)
        .composite([{ input: badge, gravity: 'southeast' }])
        .jpeg({ quality: 90 })
        .toBuffer();
    }
  }
}

function orientedSize(meta: Metadata): { width: number; height: number } {
  const turned = (meta.orientation ?? 1) >= 5;
  return {
    width: (turned ? meta.height : meta.width) ?? 0,
    height: (turned ? meta.width : meta.height) ?? 0,
  };
}

function centreCrop(image: Sharp, width: number, height: number, fraction: number): Sharp {
  const w = Math.round(width * fraction);
  const h = Math.round(height * fraction);
  return image.extract({
    left: Math.floor((width - w) / 2),
    top: Math.floor((height - h) / 2),
    width: w,
    height: h,
  });
}

/**
 * Writes the corpus under `dir`. `originals` and `transforms` narrow it (the fast test in npm test uses
 * a few); keys are those the service gives a folder ingested under the prefix "corpus/".
 */
export async function buildCorpus(
  dir: string,
  options: { originals?: string[]; transforms?: readonly Transform[]; distractors?: boolean } = {},
): Promise<Corpus> {
  const originals = options.originals ?? (await originalPhotos());
  const transforms = options.transforms ?? TRANSFORMS;
  const indexDir = join(dir, 'index');
  await mkdir(join(indexDir, 'originals'), { recursive: true });
  await mkdir(join(indexDir, 'distractors'), { recursive: true });
  await mkdir(join(dir, 'queries'), { recursive: true });
  let indexed = 0;
  const queries: Query[] = [];
  for (const [i, name] of originals.entries()) {
    const source = join(SAMPLE_PHOTOS_DIR, name);
    const absent = (i + 1) % ABSENT_EVERY === 0;
    if (!absent) {
      await copyFile(source, join(indexDir, 'originals', name));
      indexed++;
    }
    for (const transform of transforms) {
      const file = join(dir, 'queries', `${transform}--${name}`);
      await writeFile(file, await edit(source, transform));
      queries.push({ file, transform, expected: absent ? undefined : `corpus/originals/${name}` });
    }
  }
  if (options.distractors !== false) {
    for (const name of (await readdir(DISTRACTORS_DIR)).filter((f) => f.endsWith('.jpg'))) {
      await copyFile(join(DISTRACTORS_DIR, name), join(indexDir, 'distractors', name));
      indexed++;
    }
  }
  return { indexDir, queries, indexed };
}
