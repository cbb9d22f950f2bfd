/**
 * The evaluation corpus of `npm run eval` compared without the service: every image embedded by a model
 * directly, and the upright answers an exact scan of the indexed photos gives. For comparing models and
 * whitenings quickly (the int8 quality gate, `npm run eval:whitening`); recall@1 here equals the
 * service's upright figure for the same vectors.
 */
import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { OnnxEmbedder } from '../src/embedder/onnx-embedder.ts';
import { dot } from '../src/embedder/vectors.ts';
import type { LoadedManifest } from '../src/model/manifest.ts';
import { buildCorpus, type Corpus } from './eval-corpus.ts';
import type { Answer } from './eval-metrics.ts';

export interface OfflineCorpus {
  corpus: Corpus;
  /** The indexed photos' keys, as the service names them; their images come first in `images`. */
  keys: string[];
  /** The indexed photos, then the queries, in corpus order. */
  files: string[];
  images: Buffer[];
}

export async function offlineCorpus(dir: string): Promise<OfflineCorpus> {
  const corpus = await buildCorpus(dir);
  const indexFiles = (await readdir(corpus.indexDir, { recursive: true }))
    .filter((name) => name.endsWith('.jpg'))
    .sort()
    .map((name) => join(corpus.indexDir, name));
  const keys = indexFiles.map((file) => `corpus/${file.slice(corpus.indexDir.length + 1)}`);
  const files = [...indexFiles, ...corpus.queries.map((query) => query.file)];
  return { corpus, keys, files, images: await Promise.all(files.map((file) => readFile(file))) };
}

/** Every image through the model (all cores); a failure names its file. */
export async function embedImages(
  loaded: LoadedManifest,
  images: Buffer[],
  names: string[],
): Promise<Float32Array[]> {
  const embedder = await OnnxEmbedder.create(loaded, { intraOpNumThreads: availableParallelism() });
  try {
    return (await embedder.embed(images)).map((outcome, i) => {
      if (!outcome.ok) throw new Error(`${names[i]}: ${outcome.reason}`);
      return outcome.vector;
    });
  } finally {
    await embedder.close();
  }
}

/** `vectors` in OfflineCorpus order: each query against the indexed photos, top 5, unlabelled. */
export function scanAnswers({ corpus, keys }: OfflineCorpus, vectors: Float32Array[]): Answer[] {
  const index = vectors.slice(0, keys.length);
  return corpus.queries.map((query, q) => {
    const vector = vectors[keys.length + q] as Float32Array;
    const scores = index.map((v, i) => ({
      key: keys[i] as string,
      score: dot(v, vector),
      match: 'weak' as const,
    }));
    return { query, hits: scores.sort((a, b) => b.score - a.score).slice(0, 5), totalMs: 0 };
  });
}

/**
 * Each precision's answers to the corpus's queries against its own index, and int8 queries against the
 * fp32 index (an index made in fp32, by GPU workers or before the int8 model, searched with int8 queries).
 */
export function precisionAnswers(offline: OfflineCorpus, fp32: Float32Array[], int8: Float32Array[]) {
  const photos = offline.keys.length;
  return {
    fp32: scanAnswers(offline, fp32),
    int8: scanAnswers(offline, int8),
    acrossPrecisions: scanAnswers(offline, [...fp32.slice(0, photos), ...int8.slice(photos)]),
  };
}

export interface ExactCopies {
  photos: number;
  /** The lowest score of a photo's int8 vector to its own fp32 vector: an exact copy's worst score. */
  ownMin: number;
  /** How many photos' int8 vectors score their own fp32 vector above every other photo's. */
  first: number;
  /** How many own scores reach the `duplicate` threshold. */
  duplicates: number;
  /** The highest score of a photo's int8 vector to another photo's fp32 vector: the best impostor. */
  impostorMax: number;
}

/**
 * Each indexed photo searched with its int8 vector against the fp32 index (GPU workers fp32, search int8):
 * an exact copy must still score its own vector first and reach `duplicate`, above every impostor.
 */
export function exactCopies(fp32: Float32Array[], int8: Float32Array[], duplicate: number): ExactCopies {
  if (fp32.length !== int8.length || fp32.length < 2)
    throw new RangeError(
      `compare the same photos (two at least): ${fp32.length} fp32 vs ${int8.length} int8`,
    );
  const result = { photos: fp32.length, ownMin: 1, first: 0, duplicates: 0, impostorMax: -1 };
  for (const [i, query] of int8.entries()) {
    const own = dot(query, fp32[i] as Float32Array);
    const impostor = Math.max(...fp32.filter((_, j) => j !== i).map((vector) => dot(query, vector)));
    result.ownMin = Math.min(result.ownMin, own);
    result.impostorMax = Math.max(result.impostorMax, impostor);
    if (own > impostor) result.first++;
    if (own >= duplicate) result.duplicates++;
  }
  return result;
}
