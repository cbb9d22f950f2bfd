import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { convertModelFile } from './convert.ts';
import type { ModelManifest } from './manifest.ts';
import { ModelError } from './model-error.ts';
import { fileExists, sha256OfFile } from './model-files.ts';

/** A published full-classifier file that model:fetch may label pretrained once its bytes match. */
export interface PretrainedSource {
  /** Extractor name stored with every vector. */
  name: string;
  description: string;
  /** File name of the downloaded classifier in the model folder. */
  fileName: string;
  sha256: string;
  size: number;
  /** Tried in order. */
  urls: string[];
}

/**
 * ONNX Model Zoo VGG 16 (MXNet Gluon weights trained on ImageNet, opset 7; top-1 72.62 %), Apache 2.0.
 * SHA-256 and size come from the Git LFS pointer of vision/classification/vgg/model/vgg16-7.onnx in
 * onnx/models (`oid sha256:f208…20b9`, `size 553437328`); the VNN-COMP benchmarks record the same
 * payload hash for this file. The second URL is pinned to a commit from before the zoo moved its models
 * under validated/, so it survives further reorganisation.
 */
export const VGG16_MODEL_ZOO: PretrainedSource = {
  name: 'vgg16-onnx-zoo-7-imagenet',
  description: 'ONNX Model Zoo vgg16-7.onnx (ImageNet-pretrained VGG16 classifier)',
  fileName: 'vgg16-7.onnx',
  sha256: 'f20805a3ecccaa88647bbab4ad011ff2412a9838485ea844de0fcbce349820b9',
  size: 553_437_328,
  urls: [
    'https://github.com/onnx/models/raw/main/validated/vision/classification/vgg/model/vgg16-7.onnx',
    'https://github.com/onnx/models/raw/5faef4c33eba0395177850e1e31c4a6a9e634c82/vision/classification/vgg/model/vgg16-7.onnx',
  ],
};

export const PRETRAINED_MODEL_FILE = 'vgg16-pretrained.onnx';

export interface FetchOptions {
  modelDir: string;
  /** An already downloaded classifier: verified against the checksum, then converted. */
  file?: string;
  fp16?: boolean;
  source?: PretrainedSource;
  /** Time allowed to connect and receive the response headers (default 5 s). */
  connectTimeoutMs?: number;
  /** Longest pause between two chunks of the body before giving up (default 60 s). */
  stallTimeoutMs?: number;
  onProgress?: (received: number, total: number) => void;
  log?: (message: string) => void;
}

/**
 * Downloads (or takes `file`), verifies size and SHA-256, and converts the classifier into
 * models/vgg16-pretrained.onnx + manifest labelled pretrained. A classifier already sitting at
 * models/<fileName> is used without downloading, which is how a hand-copied file gets picked up.
 */
export async function fetchPretrained(
  options: FetchOptions,
): Promise<{ manifestPath: string; manifest: ModelManifest }> {
  const { modelDir, source = VGG16_MODEL_ZOO, log = () => {} } = options;
  const placed = join(modelDir, source.fileName);
  const classifier = options.file ? resolve(options.file) : placed;
  if (options.file || (await fileExists(placed))) {
    log(`Verifying ${classifier} …`);
    await verify(classifier, source);
  } else {
    await download(options, source, placed);
  }
  log(`Checksum OK. Converting to ${join(modelDir, PRETRAINED_MODEL_FILE)} …`);
  const { manifestPath, manifest } = await convertModelFile({
    inputPath: classifier,
    outPath: join(modelDir, PRETRAINED_MODEL_FILE),
    name: options.fp16 ? `${source.name}-fp16` : source.name,
    fp16: options.fp16 ?? false,
    normalisation: 'imagenet',
    profile: 'quality',
    pretrained: true,
    source: `${source.description}, sha256 ${source.sha256}`,
  });
  return { manifestPath, manifest };
}

/** Streams into a temporary file and renames it into place only once size and checksum match. */
async function download(options: FetchOptions, source: PretrainedSource, target: string): Promise<void> {
  const { connectTimeoutMs = 5000, stallTimeoutMs = 60_000, log = () => {} } = options;
  const failures: string[] = [];
  for (const url of source.urls) {
    log(`Downloading ${source.description} (${megabytes(source.size)}) from ${url}`);
    const controller = new AbortController();
    let timer = setTimeout(
      () => controller.abort(new Error(`no response within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    const partial = `${target.replace(/\.onnx$/, '')}.${process.pid}.tmp.onnx`;
    try {
      const response = await fetch(url, { signal: controller.signal });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} ${response.statusText}`);
      const length = Number(response.headers.get('content-length') ?? Number.NaN);
      if (Number.isFinite(length) && length !== source.size) {
        throw new Error(`the server announces ${length} bytes, expected ${source.size}`);
      }
      let received = 0;
      const progress = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          clearTimeout(timer);
          timer = setTimeout(
            () => controller.abort(new Error(`no data for ${stallTimeoutMs} ms`)),
            stallTimeoutMs,
          );
          received += chunk.length;
          options.onProgress?.(received, source.size);
          done(null, chunk);
        },
      });
      await mkdir(options.modelDir, { recursive: true });
      await pipeline(
        Readable.fromWeb(response.body as NodeReadableStream),
        progress,
        createWriteStream(partial),
      );
      clearTimeout(timer);
      const actual = await fingerprint(partial);
      if (actual.size !== source.size || actual.sha256 !== source.sha256) {
        throw new ModelError(
          `The download from ${url} is not ${source.description}: ${mismatch(actual, source)} It was deleted.`,
          'checksum_mismatch',
        );
      }
      await rename(partial, target);
      return;
    } catch (error) {
      if (error instanceof ModelError) throw error;
      failures.push(`${url}: ${reason(error, controller.signal)}`);
    } finally {
      clearTimeout(timer);
      await rm(partial, { force: true });
    }
  }
  throw new ModelError(offlineHelp(source, options.modelDir, failures), 'offline');
}

function offlineHelp(source: PretrainedSource, modelDir: string, failures: string[]): string {
  const placed = join(modelDir, source.fileName);
  return [
    `Could not download ${source.description}:`,
    ...failures.map((f) => `  - ${f}`),
    'To install it by hand:',
    `  1. On a machine with internet access download ${source.urls[0]}`,
    `     (${source.size} bytes, SHA-256 ${source.sha256}).`,
    `  2. Copy it to ${placed}`,
    `  3. Run: npm run model:fetch -- --file ${placed}`,
    `     It verifies the checksum and writes ${join(modelDir, PRETRAINED_MODEL_FILE)} with its manifest.`,
    'Until then pic-search runs on the seeded model (random weights: good for near-duplicates only).',
  ].join('\n');
}

async function verify(path: string, source: PretrainedSource): Promise<void> {
  if (!(await fileExists(path))) throw new ModelError(`${path} does not exist`, 'not_onnx');
  const actual = await fingerprint(path);
  if (actual.size !== source.size || actual.sha256 !== source.sha256) {
    throw new ModelError(
      [
        `${path} is not ${source.description}: ${mismatch(actual, source)}`,
        'It is not converted as pretrained. If you trust the file anyway, ' +
          `\`npm run model:convert -- ${path}\` converts it without the pretrained label.`,
      ].join('\n'),
      'checksum_mismatch',
    );
  }
}

async function fingerprint(path: string): Promise<{ size: number; sha256: string }> {
  return { size: (await stat(path)).size, sha256: await sha256OfFile(path) };
}

function mismatch(actual: { size: number; sha256: string }, source: PretrainedSource): string {
  return (
    `it has ${actual.size} bytes, SHA-256 ${actual.sha256}; ` +
    `expected ${source.size} bytes, SHA-256 ${source.sha256}.`
  );
}

function reason(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return String((signal.reason as Error)?.message ?? signal.reason);
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}
