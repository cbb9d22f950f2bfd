import { resolve } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { fetchPretrained, VGG16_MODEL_ZOO } from '../src/model/fetch.ts';

const program = new Command('model:fetch')
  .description(
    `Download ${VGG16_MODEL_ZOO.description}, verify its SHA-256 and convert it to the pretrained extractor`,
  )
  .option('--file <path>', 'use an already downloaded vgg16-7.onnx instead of downloading (still verified)')
  .option('--fp16', 'float16 weights and compute (for GPUs); input and output stay float32', false)
  .option('--model-dir <dir>', 'model folder', 'models')
  .option('--connect-timeout <ms>', 'give up on a source after this long without a response', parseMs, 5000)
  .parse();

const options = program.opts<{ file?: string; fp16: boolean; modelDir: string; connectTimeout: number }>();
const bar = new SingleBar(
  { format: 'download [{bar}] {percentage}% {value}/{total} MB', hideCursor: true },
  Presets.shades_classic,
);
let started = false;
try {
  const { manifestPath, manifest } = await fetchPretrained({
    modelDir: resolve(options.modelDir),
    file: options.file,
    fp16: options.fp16,
    connectTimeoutMs: options.connectTimeout,
    log: (message) => console.log(message),
    onProgress: (received, total) => {
      if (!started) bar.start(Math.round(total / 1e6), 0);
      started = true;
      bar.update(Math.round(received / 1e6));
    },
  });
  if (started) bar.stop();
  console.log(`Wrote ${manifest.name} (pretrained, sha256 ${manifest.sha256}); manifest ${manifestPath}`);
} catch (error) {
  if (started) bar.stop();
  console.error(`model:fetch failed. ${(error as Error).message}`);
  process.exitCode = 1;
}

function parseMs(value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms <= 0)
    throw new InvalidArgumentError('give a positive number of milliseconds');
  return ms;
}
