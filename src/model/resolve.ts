import { join } from 'node:path';
import { type FetchOptions, fetchPretrained, PRETRAINED_MODEL_FILE } from './fetch.ts';
import { type LoadedManifest, loadManifest } from './manifest.ts';
import { ModelError } from './model-error.ts';
import { fileExists, manifestPathFor } from './model-files.ts';
import { ensureSeededModel, isSeededManifest } from './seeded.ts';

/** What start-up logs through; a pino logger fits. */
export interface ModelLog {
  info(message: string): void;
  warn(message: string): void;
}

export interface ResolveModelOptions {
  /** An explicit manifest (PIC_MODEL_MANIFEST): used as is, and an error if it is unusable. */
  manifestPath?: string;
  /** Where generated, fetched and converted models live (default ./models). */
  modelDir?: string;
  /** Try to download the pretrained weights when none are installed (fails fast offline). */
  allowFetch: boolean;
  log: ModelLog;
  /** Download settings (source, timeouts) for the fetch step. */
  fetch?: Omit<FetchOptions, 'modelDir' | 'file' | 'log'>;
}

export interface ResolvedModel extends LoadedManifest {
  origin: 'explicit' | 'pretrained' | 'fetched' | 'seeded';
  /**
   * Set when the weights are not known to be pretrained. Start-up should attach it to every log line
   * (e.g. a pino child logger field) so nobody mistakes seeded results for real similarity search.
   */
  warning?: string;
}

/**
 * Picks the model at start-up: the explicit manifest, else the installed pretrained extractor, else a
 * fresh download (only if allowed), else the seeded model (generated if missing) with a loud warning.
 */
export async function resolveModel(options: ResolveModelOptions): Promise<ResolvedModel> {
  const { log, modelDir = 'models' } = options;
  if (options.manifestPath) {
    return announce(await loadChecked(options.manifestPath), 'explicit', log);
  }
  const pretrainedManifest = manifestPathFor(join(modelDir, PRETRAINED_MODEL_FILE));
  if (await fileExists(pretrainedManifest)) {
    try {
      return announce(await loadChecked(pretrainedManifest), 'pretrained', log);
    } catch (error) {
      log.warn(`Ignoring the installed pretrained model: ${(error as Error).message}`);
    }
  }
  if (options.allowFetch) {
    try {
      const { manifestPath } = await fetchPretrained({ ...options.fetch, modelDir, log: (m) => log.info(m) });
      return announce(await loadChecked(manifestPath), 'fetched', log);
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      log.warn(`Pretrained VGG16 not available. ${error.message}`);
    }
  }
  const { manifestPath } = await ensureSeededModel({ modelDir });
  return announce(await loadChecked(manifestPath), 'seeded', log);
}

async function loadChecked(manifestPath: string): Promise<LoadedManifest> {
  const loaded = await loadManifest(manifestPath);
  if (!(await fileExists(loaded.modelPath))) {
    throw new ModelError(`${manifestPath} names ${loaded.modelPath}, which does not exist`, 'not_onnx');
  }
  return loaded;
}

function announce(loaded: LoadedManifest, origin: ResolvedModel['origin'], log: ModelLog): ResolvedModel {
  const { manifest, modelPath } = loaded;
  log.info(`Model ${manifest.name} (${origin}, profile ${manifest.profile}) from ${modelPath}`);
  if (manifest.pretrained) return { ...loaded, origin };
  const warning = isSeededManifest(manifest)
    ? `SEEDED MODEL: ${manifest.name} has random weights, not pretrained ones. Search results are only good ` +
      'for near-duplicates (copies, resizes, re-encodes), not for similar-looking pictures. ' +
      'Install real VGG16 weights with `npm run model:fetch`.'
    : `NOT PRETRAINED: ${manifest.name} is not labelled pretrained, so its search quality is unknown. ` +
      'Install verified VGG16 weights with `npm run model:fetch`.';
  log.warn(warning);
  return { ...loaded, origin, warning };
}
