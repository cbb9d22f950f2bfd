import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FolderObjectStore } from '../adapters/embedded/folder-object-store.ts';
import type { IndexGeneration } from '../domain/ports.ts';
import { BucketModels, FolderModels } from './kept-models.ts';
import { embedderInfoOf, loadManifest, type ModelManifest } from './manifest.ts';
import { sha256Of, writeManifest, writeModelFiles } from './model-files.ts';

// The shelf copies files named by a manifest and checks them against it; it never runs the model, so a
// few bytes stand in for the ONNX graph and a 2×4 whitening for the real one.

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pic-kept-models-'));
  dirs.push(dir);
  return dir;
}

/** A model in `dir` under the seeded file names, whitened to 2 dimensions; `name` sets its identity. */
async function modelIn(dir: string, name: string, bytes = Buffer.from(`graph of ${name}`)) {
  const { manifestPath, manifest } = await writeModelFiles(join(dir, 'model.onnx'), bytes, {
    name,
    pretrained: false,
    source: 'test',
    input: { name: 'input', layout: 'NCHW', size: 224, colorOrder: 'BGR', dataType: 'float32' },
    normalisation: { kind: 'caffe', mean: [1, 2, 3] },
    profile: 'quality',
    output: { name: 'embedding', dimension: 2, descriptor: 'gem', l2Normalised: true },
  });
  const whitening = Buffer.from(new Float32Array(4 * (1 + 2)).fill(0.5).buffer);
  await writeFile(join(dir, 'model.whitening.f32'), whitening);
  const whitened: ModelManifest = {
    ...manifest,
    output: {
      ...manifest.output,
      whitening: {
        file: 'model.whitening.f32',
        sha256: sha256Of(whitening),
        inputDimension: 4,
        dimension: 2,
        learntOn: 'test',
      },
    },
  };
  await writeManifest(manifestPath, whitened);
  const generation: IndexGeneration = { name: `g-${name}`, identity: embedderInfoOf(whitened, 'cpu') };
  return { manifestPath, generation, bytes };
}

describe('FolderModels (embedded)', () => {
  it('keeps hard links that outlive the model regenerated under its own name, and drops them', async () => {
    // Prepare
    const [modelDir, root] = await Promise.all([tempDir(), tempDir()]);
    const old = await modelIn(modelDir, 'old');
    const models = new FolderModels(root);

    // Act: kept, then the model regenerated in place (a new file renamed over the name), then kept again.
    await models.keep(old.generation, old.manifestPath);
    const replaced = await modelIn(modelDir, 'new');
    await models.keep(old.generation, replaced.manifestPath);
    const kept = await models.manifestOf(old.generation);
    const loaded = kept ? await loadManifest(kept) : undefined;
    const keptBytes = await readFile(loaded?.modelPath as string);
    await models.drop(old.generation);

    // Assess
    expect(loaded?.manifest.name).toBe('old');
    expect(keptBytes).toEqual(old.bytes);
    expect(loaded?.whitening?.dimension).toBe(2);
    expect(await models.manifestOf(old.generation)).toBeUndefined();
  });

  it('refuses a manifest of another identity than the generation, keeping nothing', async () => {
    const [modelDir, root] = await Promise.all([tempDir(), tempDir()]);
    const { manifestPath } = await modelIn(modelDir, 'one');
    const other = (await modelIn(await tempDir(), 'other')).generation;
    const models = new FolderModels(root);

    await expect(models.keep(other, manifestPath)).rejects.toThrow(/describes .* not the index generation's/);

    expect(await models.manifestOf(other)).toBeUndefined();
  });

  it('links the files where the file system allows (no second copy of the model)', async () => {
    const [modelDir, root] = await Promise.all([tempDir(), tempDir()]);
    const { manifestPath, generation } = await modelIn(modelDir, 'linked');
    const models = new FolderModels(root);

    await models.keep(generation, manifestPath);

    const kept = (await loadManifest((await models.manifestOf(generation)) as string)).modelPath;
    expect((await stat(kept)).ino).toBe((await stat(join(modelDir, 'model.onnx'))).ino);
  });
});

describe('BucketModels (cloud, here over the folder adapter of the bucket port)', () => {
  it('stores the files checked against the manifest, fetches them to local disk on demand, and drops them', async () => {
    // Prepare
    const [modelDir, bucket, localDir] = await Promise.all([tempDir(), tempDir(), tempDir()]);
    const { manifestPath, generation, bytes } = await modelIn(modelDir, 'deployed');
    const models = new BucketModels(new FolderObjectStore(bucket), localDir);

    // Act
    await models.keep(generation, manifestPath);
    await rm(modelDir, { recursive: true });
    const fetched = await models.manifestOf(generation);
    const loaded = fetched ? await loadManifest(fetched) : undefined;
    const fetchedBytes = await readFile(loaded?.modelPath as string);
    await models.drop(generation);

    // Assess
    expect(fetched?.startsWith(localDir)).toBe(true);
    expect(fetchedBytes).toEqual(bytes);
    expect(loaded?.whitening?.dimension).toBe(2);
    expect(await models.manifestOf(generation)).toBeUndefined();
  });

  it('refuses a model file that no longer matches its manifest, keeping nothing', async () => {
    const [modelDir, bucket, localDir] = await Promise.all([tempDir(), tempDir(), tempDir()]);
    const { manifestPath, generation } = await modelIn(modelDir, 'changed');
    await writeFile(join(modelDir, 'model.onnx'), 'overwritten in place');
    const models = new BucketModels(new FolderObjectStore(bucket), localDir);

    await expect(models.keep(generation, manifestPath)).rejects.toThrow(/no longer matches its manifest/);

    expect(await models.manifestOf(generation)).toBeUndefined();
  });
});
