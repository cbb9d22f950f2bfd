import { copyFile, link, mkdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { NotFoundError } from '../domain/errors.ts';
import { describeIdentity, sameIdentity } from '../domain/index-identity.ts';
import type { IndexGeneration, ModelShelf, ObjectStore } from '../domain/ports.ts';
import { embedderInfoOf, loadManifest, type ModelManifest } from './manifest.ts';
import { fileExists, sha256Of, writeFileAtomically, writeManifest } from './model-files.ts';

/**
 * The model files of each index generation, kept under the generation's name while it lives
 * (docs/models.md, "Re-index"), so a search keeps embedding with the live generation's model until a
 * re-index switches: after the configured model changed, after its files were regenerated in place
 * (models/ holds one file per name), and in the cloud, where the search function's layer holds only the
 * deployed model. Each copy is a folder: the model, its whitening, and a manifest naming them, written last
 * (its presence says the copy is whole). A generation keeps the first copy made: one identity, one model.
 */

const MANIFEST = 'model.manifest.json';

/** Embedded mode: a folder of the data directory; files are hard-linked where the file system allows. */
export class FolderModels implements ModelShelf {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  /**
   * A hard link keeps the very bytes the embedder loaded (and checked against the manifest's SHA-256):
   * model files are replaced by renaming a new file over the name (src/model/model-files.ts), which
   * leaves the linked one as it was. Copied across file systems.
   */
  async keep(generation: IndexGeneration, manifestPath: string): Promise<void> {
    const dir = join(this.#root, folderOf(generation));
    if (await fileExists(join(dir, MANIFEST))) return;
    const { files, manifest } = await keptCopyOf(generation, manifestPath);
    await mkdir(dir, { recursive: true });
    for (const { path, name } of files) {
      const target = join(dir, name);
      await rm(target, { force: true });
      await link(path, target).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EXDEV' && error.code !== 'EPERM') throw error;
        return copyFile(path, target);
      });
    }
    await writeManifest(join(dir, MANIFEST), manifest);
  }

  async manifestOf(generation: IndexGeneration): Promise<string | undefined> {
    const path = join(this.#root, folderOf(generation), MANIFEST);
    return (await fileExists(path)) ? path : undefined;
  }

  async drop(generation: IndexGeneration): Promise<void> {
    const dir = join(this.#root, folderOf(generation));
    // The manifest first: a copy without it is no longer offered, whatever else a crash leaves.
    await rm(join(dir, MANIFEST), { force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Cloud mode: a prefix of the bucket (the worker, which holds the deployed model, keeps it); searches
 * fetch a kept model into `localDir` (Lambda: /tmp) on first use. Each file is checked against the
 * manifest's SHA-256 before it is stored; the embedder checks it again when it opens the fetched copy.
 */
export class BucketModels implements ModelShelf {
  readonly #store: ObjectStore;
  readonly #localDir: string;

  constructor(store: ObjectStore, localDir: string) {
    this.#store = store;
    this.#localDir = localDir;
  }

  async keep(generation: IndexGeneration, manifestPath: string): Promise<void> {
    const folder = folderOf(generation);
    if (await this.#store.head(`${folder}/${MANIFEST}`)) return;
    const { files, manifest } = await keptCopyOf(generation, manifestPath);
    for (const { path, name, sha256 } of files) {
      const bytes = await readFile(path);
      if (sha256Of(bytes) !== sha256) {
        throw new Error(`${path} no longer matches its manifest ${manifestPath}: its model is not kept.`);
      }
      await this.#store.put(`${folder}/${name}`, bytes);
    }
    await this.#store.put(
      `${folder}/${MANIFEST}`,
      Buffer.from(JSON.stringify(manifest, null, 2)),
      'application/json',
    );
  }

  /**
   * Fetched into a folder named by the model's SHA-256 as well, so a copy left in `localDir` by an older
   * generation of the same name (the pre-generations index, 'original') is never taken for this one.
   */
  async manifestOf(generation: IndexGeneration): Promise<string | undefined> {
    const folder = folderOf(generation);
    const stored = await this.#store.get(`${folder}/${MANIFEST}`).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (!stored) return undefined;
    const manifest = JSON.parse(stored.body.toString('utf8')) as ModelManifest;
    const dir = join(this.#localDir, `${folder}-${manifest.sha256.slice(0, 16)}`);
    const manifestPath = join(dir, MANIFEST);
    if (await fileExists(manifestPath)) return manifestPath;
    await mkdir(dir, { recursive: true });
    for (const name of fileNamesOf(manifest)) {
      if (name !== basename(name))
        throw new Error(`the kept model of ${folder} names a file outside its folder`);
      await writeFileAtomically(join(dir, name), (await this.#store.get(`${folder}/${name}`)).body);
    }
    await writeFileAtomically(manifestPath, stored.body);
    return manifestPath;
  }

  async drop(generation: IndexGeneration): Promise<void> {
    const folder = folderOf(generation);
    const keys: string[] = [];
    const manifestKey = `${folder}/${MANIFEST}`;
    for await (const object of this.#store.list(`${folder}/`)) {
      if (object.key !== manifestKey) keys.push(object.key);
    }
    // The manifest first: a copy without it is no longer offered, whatever else a crash leaves.
    await this.#store.delete(manifestKey);
    for (const key of keys) await this.#store.delete(key);
  }
}

/**
 * The files to keep for a generation and the manifest that names them side by side. Refuses a manifest
 * of another identity: its vectors would not be the generation's.
 */
async function keptCopyOf(
  generation: IndexGeneration,
  manifestPath: string,
): Promise<{ files: { path: string; name: string; sha256: string }[]; manifest: ModelManifest }> {
  const loaded = await loadManifest(manifestPath);
  const { manifest } = loaded;
  const info = embedderInfoOf(manifest, 'cpu');
  if (!sameIdentity(info, generation.identity)) {
    throw new Error(
      `${manifestPath} describes ${describeIdentity(info)}, not the index generation's ` +
        `${describeIdentity(generation.identity)}: its model cannot be kept for that generation.`,
    );
  }
  const model = { path: loaded.modelPath, name: basename(loaded.modelPath), sha256: manifest.sha256 };
  const { whitening } = manifest.output;
  if (!whitening) return { files: [model], manifest: { ...manifest, file: model.name } };
  const path = resolve(dirname(manifestPath), whitening.file);
  const matrix = { path, name: basename(path), sha256: whitening.sha256 };
  return {
    files: [model, matrix],
    manifest: {
      ...manifest,
      file: model.name,
      output: { ...manifest.output, whitening: { ...whitening, file: matrix.name } },
    },
  };
}

function fileNamesOf(manifest: ModelManifest): string[] {
  return [manifest.file, ...(manifest.output.whitening ? [manifest.output.whitening.file] : [])];
}

/** The generation's name; the index the library had before generations (name '') keeps its model as 'original'. */
function folderOf(generation: IndexGeneration): string {
  return generation.name || 'original';
}
