import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import type { LoadedManifest, ModelManifest } from './manifest.ts';
import { ModelError } from './model-error.ts';

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Files this process has hashed, by path, with the size and modification time they had then. */
const verified = new Map<string, string>();

/**
 * Checks the model file against its manifest's SHA-256 before a session loads it, so swapped or damaged
 * weights never embed silently into an index built by others. The hash streams the file (about 50 ms
 * for the 59 MB fp32 VGG16 and 15 ms for int8 on this machine's cores, docs/models.md); a process
 * hashes each file once, again only if its size or modification time changes.
 */
export async function verifyModelFile(loaded: LoadedManifest): Promise<void> {
  const { modelPath, manifest } = loaded;
  const { size, mtimeMs } = await stat(modelPath);
  const stamp = `${size}:${mtimeMs}:${manifest.sha256}`;
  if (verified.get(modelPath) === stamp) return;
  const actual = await sha256OfFile(modelPath);
  if (actual !== manifest.sha256) {
    throw new ModelError(
      `Model file ${modelPath} has SHA-256 ${actual}, but its manifest says ${manifest.sha256}: the file was changed or replaced after the manifest was written. Restore it, or regenerate the model and its manifest together.`,
      'checksum_mismatch',
    );
  }
  verified.set(modelPath, stamp);
}

/** The manifest path that sits beside a model file: models/x.onnx → models/x.manifest.json. */
export function manifestPathFor(modelPath: string): string {
  return join(dirname(modelPath), `${basename(modelPath, '.onnx')}.manifest.json`);
}

/**
 * Writes the model, then its manifest (with the model's SHA-256 and path relative to the manifest).
 * Each goes to a process-unique temporary name first and is renamed into place, so concurrent writers
 * (parallel test projects) and interrupted runs never leave a half-written file under the real name.
 */
export async function writeModelFiles(
  modelPath: string,
  bytes: Uint8Array,
  manifest: Omit<ModelManifest, 'file' | 'sha256'>,
): Promise<{ manifestPath: string; manifest: ModelManifest }> {
  const manifestPath = manifestPathFor(modelPath);
  const full: ModelManifest = {
    ...manifest,
    file: relative(dirname(manifestPath), modelPath),
    sha256: sha256Of(bytes),
  };
  await mkdir(dirname(modelPath), { recursive: true });
  // Temporary names match .gitignore's models/*.onnx and models/*.json.tmp.
  await atomicWrite(modelPath, `${modelPath.replace(/\.onnx$/, '')}.${process.pid}.tmp.onnx`, bytes);
  await writeManifest(manifestPath, full);
  return { manifestPath, manifest: full };
}

/** Rewrites a manifest in place (e.g. to record a whitening learnt after the model was written). */
export async function writeManifest(manifestPath: string, manifest: ModelManifest): Promise<void> {
  await atomicWrite(
    manifestPath,
    `${manifestPath}.${process.pid}.json.tmp`,
    `${JSON.stringify(manifest, null, 2)}\n`,
  );
}

/** Writes `data` to a process-unique temporary name beside `path`, then renames it into place. */
export function writeFileAtomically(path: string, data: Uint8Array | string): Promise<void> {
  return atomicWrite(path, `${path}.${process.pid}.tmp`, data);
}

export async function fileExists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

async function atomicWrite(path: string, temporary: string, data: Uint8Array | string): Promise<void> {
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}
