import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_DESCRIPTOR, DEFAULT_SEEDED_WHITENING } from '../src/model/descriptors.ts';
import { Descriptor } from '../src/model/manifest.ts';
import { DEFAULT_SEED, writeSeededModel } from '../src/model/seeded.ts';

const program = new Command('model:generate')
  .description('Write the VGG16-topology extractor with seeded random weights (not pretrained)')
  .option('--seed <n>', 'PRNG seed; the same seed always gives the same file', parseSeed, DEFAULT_SEED)
  .addOption(
    new Option('--profile <name>', 'preprocessing profile')
      .choices(['quality', 'keras-compat'])
      .default('quality'),
  )
  .option(
    '--whitening <dimension>',
    `PCA whitening to this many dimensions, learnt from samples/calibration (0: none; default ${DEFAULT_SEEDED_WHITENING} for the default seed, profile and descriptor, whose whitening is shipped, else none)`,
    parseDimension,
  )
  .option('--learn-whitening', 'learn the whitening even where the repository ships it', false)
  .addOption(
    new Option('--descriptor <name>', 'pooling head after block 5 (docs/search-quality.md)')
      .choices(Descriptor.options)
      .default(DEFAULT_DESCRIPTOR),
  )
  .option('--model-dir <dir>', 'output folder', 'models')
  .parse();

const options = program.opts<{
  seed: number;
  profile: 'quality' | 'keras-compat';
  descriptor: Descriptor;
  whitening?: number;
  learnWhitening: boolean;
  modelDir: string;
}>();
const started = performance.now();
const { manifestPath, manifest } = await writeSeededModel({
  modelDir: resolve(options.modelDir),
  seed: options.seed,
  profile: options.profile,
  descriptor: options.descriptor,
  ...(options.whitening === undefined ? {} : { whitening: options.whitening }),
  learnWhitening: options.learnWhitening,
});
const seconds = ((performance.now() - started) / 1000).toFixed(2);
console.log(`Wrote ${manifest.name} (${manifest.file}, sha256 ${manifest.sha256}) in ${seconds} s`);
console.log(`Manifest: ${manifestPath}`);
console.log('These weights are random, not pretrained: search results are only good for near-duplicates.');

function parseSeed(value: string): number {
  const seed = Number(value);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new InvalidArgumentError('the seed must be an integer from 0 to 4294967295');
  }
  return seed;
}

function parseDimension(value: string): number {
  const dimension = Number(value);
  if (!Number.isInteger(dimension) || dimension < 0 || dimension > 4096) {
    throw new InvalidArgumentError('the whitening dimension must be an integer from 0 (none) to 4096');
  }
  return dimension;
}
