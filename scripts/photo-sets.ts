/**
 * Builds the two extra photo sets of the search-quality work from Debian 12 packages, as
 * samples/photos/SOURCES.md was built (`apt-get download` + `dpkg -x`, nothing installed):
 * - samples/calibration: natural photos the whitening is learnt on (never indexed or queried);
 * - samples/distractors: photos indexed beside the evaluation originals and never queried, including
 *   other shots of the originals' scenes (hard negatives).
 * Neither overlaps samples/photos or the other. Each set gets SOURCES.md and the packages' copyright files.
 * Run: `npx tsx scripts/photo-sets.ts` (needs apt-get and dpkg; the results are committed).
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';

interface Package {
  name: string;
  version: string;
  folder: string;
  licence: string;
}

const PACKAGES: Record<string, Package> = {
  kphotoalbum: {
    name: 'kphotoalbum',
    version: '5.9.1-1',
    folder: 'usr/share/kphotoalbum/demo',
    licence: 'GPL-2+ (package-wide statement; the demo photos are not listed separately)',
  },
  'tuxpaint-data': {
    name: 'tuxpaint-data',
    version: '1:0.9.28-sdl2-1',
    folder: 'usr/share/tuxpaint/templates',
    licence: 'GPL-2+ (`Files: *`; © 2002-2021 Bill Kendrick)',
  },
  'mate-backgrounds': {
    name: 'mate-backgrounds',
    version: '1.26.0-1',
    folder: 'usr/share/backgrounds/mate/nature',
    licence: 'GPL-2+ (a `Files: nature/…` stanza per photo names its authors)',
  },
};

/** Photos of these packages already in samples/photos (the evaluation originals) are left out. */
const SETS: Record<'calibration' | 'distractors', { package: string; files: string[] }[]> = {
  calibration: [
    {
      package: 'tuxpaint-data',
      files: [
        'burnt_bark.jpg',
        'cliff.jpg',
        'corn_maze.jpg',
        'jellyfish.jpg',
        'mossy_bark.jpg',
        'mossy_log.jpg',
        'mudstone.jpg',
        'ocean_splash.jpg',
        'ocean_waves.jpg',
        'redwoods_above.jpg',
        'rocks.jpg',
        'spiders_web.jpg',
        'sun_behind_clouds.jpg',
        'trees_above.jpg',
        'trees_at_dusk.jpg',
      ],
    },
    {
      package: 'mate-backgrounds',
      files: [
        'Aqua.jpg',
        'Blinds.jpg',
        'Dune.jpg',
        'FreshFlower.jpg',
        'Garden.jpg',
        'GreenMeadow.jpg',
        'LadyBird.jpg',
        'RainDrops.jpg',
        'Storm.jpg',
        'TwoWings.jpg',
        'Wood.jpg',
        'YellowFlower.jpg',
      ],
    },
  ],
  distractors: [
    {
      package: 'kphotoalbum',
      files: [
        'bar55.jpg',
        'bar55_2.jpg',
        'blackie.jpg',
        'cold_water.jpg',
        'donna.jpg',
        'donna_2.jpg',
        'grand_canyon_1.jpg',
        'grand_canyon_3.jpg',
        'jesper.jpg',
        'jesper_2.jpg',
        'new_wave_1.jpg',
        'new_wave_2.jpg',
        'pool_2.jpg',
        'skagen.jpg',
        'skagen_2.jpg',
        'spiff_2.jpg',
        'sunset.jpg',
        'wayne.jpg',
      ],
    },
  ],
};

const SAMPLES = resolve(import.meta.dirname, '../samples');
/** As samples/photos: auto-orient, at most 800 px on the longest side, JPEG 85, no metadata. */
const MAX_SIDE = 800;

const work = await mkdtemp(join(tmpdir(), 'photo-sets-'));
try {
  for (const pkg of Object.values(PACKAGES)) {
    execFileSync('apt-get', ['download', `${pkg.name}=${pkg.version}`], { cwd: work, stdio: 'inherit' });
    const deb = (await readdir(work)).find((f) => f.startsWith(`${pkg.name}_`) && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg.name} left no .deb`);
    execFileSync('dpkg', ['-x', deb, join(work, pkg.name)], { cwd: work });
  }
  for (const [set, groups] of Object.entries(SETS)) {
    const out = join(SAMPLES, set);
    await rm(out, { recursive: true, force: true });
    await mkdir(join(out, 'licenses'), { recursive: true });
    const rows: string[] = [];
    for (const group of groups) {
      const pkg = PACKAGES[group.package] as Package;
      await copyFile(
        join(work, pkg.name, 'usr/share/doc', pkg.name, 'copyright'),
        join(out, 'licenses', `${pkg.name}.copyright`),
      );
      for (const file of group.files) {
        const name = `${pkg.name}-${file
          .toLowerCase()
          .replace(/_/g, '-')
          .replace(/\.jpe?g$/, '')}.jpg`;
        const source = join(work, pkg.name, pkg.folder, file);
        const info = await sharp(source)
          .rotate()
          .resize({ width: MAX_SIDE, height: MAX_SIDE, fit: 'inside', withoutEnlargement: true })
          .jpeg({ quality: 85 })
          .toFile(join(out, name));
        rows.push(
          `| \`${name}\` | ${pkg.name} (${pkg.version}) | \`${pkg.folder}/${file}\` | ${info.width}x${info.height} | ${pkg.licence} | \`licenses/${pkg.name}.copyright\` |`,
        );
      }
    }
    await writeFile(join(out, 'SOURCES.md'), sourcesMarkdown(set, rows));
    console.log(`${set}: ${rows.length} photos in ${out}`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

function sourcesMarkdown(set: string, rows: string[]): string {
  const purpose =
    set === 'calibration'
      ? 'Natural photographs the whitening of the descriptor heads is learnt on (`npm run model:generate -- --whitening N`). They are never indexed or queried by `npm run eval`, and none of them is, or shows the scene of, a photo in samples/photos or samples/distractors.'
      : 'Photographs `npm run eval` indexes beside the originals of samples/photos and never queries: a search must rank the original above them. Some show the same scene as an original (another shot of the Grand Canyon rim, of the billiards game, of the rabbit), on purpose.';
  return `# ${set === 'calibration' ? 'Calibration' : 'Distractor'} photographs: sources and licences

${purpose}

Built by \`npx tsx scripts/photo-sets.ts\`: every image comes from a Debian 12 (bookworm) package, fetched with
\`apt-get download PACKAGE=VERSION\` and unpacked with \`dpkg -x\` (nothing installed); then auto-oriented, scaled down
(never up) to at most ${MAX_SIDE} px on the longest side, JPEG quality 85, metadata stripped (sharp). Each package's
\`usr/share/doc/PACKAGE/copyright\` is copied into [\`licenses/\`](licenses/).

| file | package (version) | path in package | size | licence | licence file |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
}
