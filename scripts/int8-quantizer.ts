/**
 * Makes the int8 QDQ graph of an fp32 extractor in a work folder, ungated: the pinned Python venv
 * (.cache/quantize-venv, scripts/quantize/requirements.txt), calibration tensors from samples/calibration
 * made by the project's own image pipeline, onnxruntime's static quantizer (scripts/quantize/quantize.py).
 * `npm run model:quantize` gates it before writing it beside the model; `npm run eval:whitening` only
 * measures it.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SharpImageProcessor } from '../src/imaging/image-processor.ts';
import type { LoadedManifest, Quantization } from '../src/model/manifest.ts';
import { sha256Of } from '../src/model/model-files.ts';
import { ensurePythonVenv, venvBinOf } from './python-venv.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const VENV = {
  dir: join(REPO_ROOT, '.cache/quantize-venv'),
  requirements: join(REPO_ROOT, 'scripts/quantize/requirements.txt'),
  purpose: 'int8 quantization (onnxruntime quantize_static)',
  marker: 'python',
};
const CALIBRATION_DIR = join(REPO_ROOT, 'samples/calibration');

export interface Int8Graph {
  /** The int8 model as a loadable manifest (the fp32 one's, with the int8 file and its SHA-256). */
  loaded: LoadedManifest;
  bytes: Buffer;
  calibration: Quantization['calibration'];
  parameters: Quantization['parameters'];
}

export async function quantizeToInt8(
  fp32: LoadedManifest,
  work: string,
  log: (line: string) => void,
): Promise<Int8Graph> {
  await ensurePythonVenv(VENV, log);
  const calibration = await calibrationTensors(fp32, join(work, 'calibration.f32'));
  log(`Calibrating on ${calibration.images.length} photos of samples/calibration…`);
  const quantizedPath = join(work, 'int8.onnx');
  const { stdout } = await promisify(execFile)(
    venvBinOf(VENV.dir, 'python'),
    [
      join(REPO_ROOT, 'scripts/quantize/quantize.py'),
      ...['--model', fp32.modelPath, '--output', quantizedPath, '--calibration', calibration.file],
      ...['--input-name', fp32.manifest.input.name, '--size', String(fp32.manifest.input.size)],
    ],
    { maxBuffer: 1 << 26 },
  );
  const quantized = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
    settings: { calibrateMethod: string };
    activations: Quantization['parameters'];
  };
  const bytes = await readFile(quantizedPath);
  return {
    loaded: {
      ...fp32,
      manifest: { ...fp32.manifest, file: basename(quantizedPath), sha256: sha256Of(bytes) },
      modelPath: quantizedPath,
    },
    bytes,
    calibration: {
      method: quantized.settings.calibrateMethod,
      images: calibration.images,
      sha256: calibration.sha256,
    },
    parameters: quantized.activations,
  };
}

/** samples/calibration through the model's own preprocessing, as one raw float32 NCHW file. */
async function calibrationTensors(loaded: LoadedManifest, file: string) {
  const images = (await readdir(CALIBRATION_DIR)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  const processor = SharpImageProcessor.forModel(loaded.manifest);
  const lines: string[] = [];
  const tensors: Float32Array[] = [];
  for (const name of images) {
    const bytes = await readFile(join(CALIBRATION_DIR, name));
    lines.push(`${name} ${sha256Of(bytes)}`);
    tensors.push((await processor.process(bytes, { thumbnail: false })).tensor);
  }
  await writeFile(file, Buffer.concat(tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))));
  return { file, images, sha256: sha256Of(Buffer.from(`${lines.join('\n')}\n`)) };
}
