/**
 * How the default duplicate threshold (PIC_DUPLICATE_THRESHOLD) was chosen: indexes the sample photos and,
 * for 12 of them, three edited copies (half size at JPEG q30, a 90 % crop, brighter and more contrast),
 * then counts, at each candidate threshold, the pairs of copies of one photo and the pairs of different
 * photos scoring at least that much. `npx tsx scripts/duplicates-threshold.ts` (the seeded model unless
 * PIC_MODEL_MANIFEST says otherwise); about a minute on two cores.
 */
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { waitUntilSettled } from '../src/app/settle.ts';
import { FIXTURES, SEEDED_MANIFEST, tempSystem } from '../src/app/test-system.ts';

const EDITS: Record<string, (image: Sharp, width: number, height: number) => Sharp> = {
  half: (image, width) => image.resize({ width: Math.round(width / 2) }).jpeg({ quality: 30 }),
  crop90: (image, width, height) =>
    image
      .extract({
        left: Math.round(width * 0.05),
        top: Math.round(height * 0.05),
        width: Math.round(width * 0.9),
        height: Math.round(height * 0.9),
      })
      .jpeg({ quality: 85 }),
  bright: (image) => image.modulate({ brightness: 1.2 }).linear(1.1, -10).jpeg({ quality: 85 }),
};

const folder = await mkdtemp(join(tmpdir(), 'duplicates-threshold-'));
const names = (await readdir(FIXTURES)).filter((name) => /\.(jpg|png|webp)$/.test(name));
for (const name of names) await copyFile(join(FIXTURES, name), join(folder, name));
for (const name of names.filter((n) => n.endsWith('.jpg') && !n.includes('exif')).slice(0, 12)) {
  const { width = 0, height = 0 } = await sharp(join(FIXTURES, name)).metadata();
  for (const [edit, apply] of Object.entries(EDITS)) {
    const bytes = await apply(sharp(join(FIXTURES, name)), width, height).toBuffer();
    await writeFile(join(folder, `copy-${edit}-${name}`), bytes);
  }
}
const system = await tempSystem({ PIC_MODEL_MANIFEST: process.env.PIC_MODEL_MANIFEST ?? SEEDED_MANIFEST });
try {
  await system.ingestFolder(folder, 'eval');
  await system.startWorker();
  await waitUntilSettled(system.operations, { timeoutMs: 600_000 });
  /** The photo a key shows: copies, the WebP twin, the alpha PNG and the EXIF-rotated JPEG are one photo. */
  const photo = (key: string) =>
    (key.split('/').pop() as string)
      .replace(/^copy-[a-z0-9]+-/, '')
      .replace(/\.(jpg|png|webp)$/, '')
      .replace(/-(exif-orientation-6|alpha)$/, '');
  const pairs = await system.stores.index.similarPairs(0.9, 1_000_000);
  const same = pairs.filter((p) => photo(p.a.key) === photo(p.b.key)).map((p) => p.score);
  const different = pairs.filter((p) => photo(p.a.key) !== photo(p.b.key)).map((p) => p.score);
  console.log(
    `model ${system.embedder.info.model} (${system.embedder.info.profile}); ${names.length} photos`,
  );
  console.log(`highest pair of different photos: ${Math.max(...different).toFixed(4)}`);
  console.log('threshold | pairs of one photo at or above | pairs of different photos at or above');
  for (const threshold of [0.99, 0.992, 0.993, 0.994, 0.995, 0.996, 0.997, 0.998]) {
    const at = (scores: number[]) => scores.filter((s) => s >= threshold).length;
    console.log(`${threshold} | ${at(same)} of ${same.length} | ${at(different)}`);
  }
} finally {
  await system.dispose();
  await rm(folder, { recursive: true, force: true });
}
