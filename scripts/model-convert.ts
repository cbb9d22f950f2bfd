import { basename, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { addWhitening } from '../src/model/calibration.ts';
import { convertModelFile, type NormalisationName } from '../src/model/convert.ts';
import { DEFAULT_DESCRIPTOR, whiteningShape } from '../src/model/descriptors.ts';
import type { PreprocessProfile } from '../src/model/manifest.ts';
import { Descriptor } from '../src/model/manifest.ts';

const program = new Command('model:convert')
  .description('Turn a full VGG16 classifier ONNX (Model Zoo / torchvision export) into the 512-d extractor')
  .argument('<full-vgg16.onnx>', 'the classifier to convert')
  .option('--out <path>', 'output model file (.onnx added if missing); the manifest is written beside it')
  .option('--name <name>', 'model name stored with every vector (default: the output file name)')
  .option('--fp16', 'float16 weights and compute (for GPUs); input and output stay float32', false)
  .addOption(
    new Option('--normalisation <kind>', 'input normalisation the weights were trained with')
      .choices(['imagenet', 'caffe'])
      .default('imagenet'),
  )
  .option(
    '--whitening <dimension>',
    'learn a PCA whitening to this many dimensions from samples/calibration (0: none)',
    parseDimension,
    0,
  )
  .addOption(
    new Option('--descriptor <name>', 'pooling head after block 5 (docs/search-quality.md)')
      .choices(Descriptor.options)
      .default(DEFAULT_DESCRIPTOR),
  )
  .addOption(
    new Option('--profile <name>', 'preprocessing profile')
      .choices(['quality', 'keras-compat'])
      .default('quality'),
  )
  .parse();

const [input = ''] = program.args;
const options = program.opts<{
  out?: string;
  name?: string;
  fp16: boolean;
  normalisation: NormalisationName;
  profile: PreprocessProfile;
  descriptor: Descriptor;
  whitening: number;
}>();
const fallbackOut = `models/${basename(input, '.onnx')}-extractor${options.fp16 ? '-fp16' : ''}`;
const outPath = resolve((options.out ?? fallbackOut).replace(/(\.onnx)?$/, '.onnx'));
try {
  const { manifestPath, converted, ...written } = await convertModelFile({
    inputPath: resolve(input),
    outPath,
    name: options.name ?? basename(outPath, '.onnx'),
    fp16: options.fp16,
    normalisation: options.normalisation,
    profile: options.profile,
    descriptor: options.descriptor,
    source: `model:convert of ${basename(input)}`,
  });
  const manifest = options.whitening
    ? await addWhitening(manifestPath, whiteningShape(options.whitening))
    : written.manifest;
  console.log(
    `Cut at ${converted.cutAt}; dropped ${converted.droppedInitializers.length} classifier initialisers.`,
  );
  console.log(`Wrote ${manifest.name}: ${outPath} (sha256 ${manifest.sha256}), manifest ${manifestPath}`);
  console.log(
    'Labelled pretrained: false. For the ONNX Model Zoo VGG16 use `npm run model:fetch -- --file <path>`, ' +
      'which verifies the published checksum and labels the result pretrained.',
  );
} catch (error) {
  console.error(`model:convert failed: ${(error as Error).message}`);
  process.exitCode = 1;
}

function parseDimension(value: string): number {
  const dimension = Number(value);
  if (!Number.isInteger(dimension) || dimension < 0 || dimension > 4096) {
    throw new InvalidArgumentError('the whitening dimension must be an integer from 0 (none) to 4096');
  }
  return dimension;
}
