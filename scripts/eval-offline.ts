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
