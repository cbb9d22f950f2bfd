import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchPretrained } from './fetch.ts';
import { type ModelLog, resolveModel } from './resolve.ts';
import { writeSeededModel } from './seeded.ts';
import { publishedAs, refusedUrl, serveBytes, smallClassifier, type TestServer } from './test-support.ts';

const classifier = smallClassifier();

/** A real log sink that keeps what start-up said. */
function recordingLog(): ModelLog & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

describe('resolveModel', () => {
  let dir: string;
  let server: TestServer | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'resolve-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('uses the explicit manifest first, and warns when it is not pretrained', async () => {
    // Prepare: a pretrained model is installed too, but the explicit manifest wins.
    await writeFile(join(dir, 'by-hand.onnx'), classifier);
    await fetchPretrained({
      modelDir: dir,
      file: join(dir, 'by-hand.onnx'),
      source: publishedAs(classifier, []),
    });
    const explicit = await writeSeededModel({
      modelDir: join(dir, 'other'),
      seed: 9,
      profile: 'keras-compat',
    });
    const log = recordingLog();

    // Act
    const model = await resolveModel({
      manifestPath: explicit.manifestPath,
      modelDir: dir,
      allowFetch: false,
      log,
    });

    // Assess
    expect(model.origin).toBe('explicit');
    expect(model.manifest.name).toBe('vgg16-seeded-9');
    expect(model.warning).toMatch(/random weights/);
  });

  it('refuses an explicit manifest that does not exist instead of silently falling back', async () => {
    // Act + Assess
    await expect(
      resolveModel({
        manifestPath: join(dir, 'missing.manifest.json'),
        modelDir: dir,
        allowFetch: false,
        log: recordingLog(),
      }),
    ).rejects.toThrow(/missing\.manifest\.json/);
  });

  it('uses the installed pretrained model without downloading and without a warning', async () => {
    // Prepare
    await writeFile(join(dir, 'by-hand.onnx'), classifier);
    await fetchPretrained({
      modelDir: dir,
      file: join(dir, 'by-hand.onnx'),
      source: publishedAs(classifier, []),
    });
    server = await serveBytes(classifier);
    const log = recordingLog();

    // Act
    const model = await resolveModel({
      modelDir: dir,
      allowFetch: true,
      log,
      fetch: { source: publishedAs(classifier, [server.url]) },
    });

    // Assess
    expect(model).toMatchObject({ origin: 'pretrained', manifest: { pretrained: true } });
    expect(model.warning).toBeUndefined();
    expect(server.requests()).toBe(0);
    expect(log.lines.filter((l) => l.startsWith('warn'))).toEqual([]);
  });

  it('downloads the pretrained model when allowed and none is installed', async () => {
    // Prepare
    server = await serveBytes(classifier);

    // Act
    const model = await resolveModel({
      modelDir: dir,
      allowFetch: true,
      log: recordingLog(),
      fetch: { source: publishedAs(classifier, [server.url]) },
    });

    // Assess
    expect(model).toMatchObject({ origin: 'fetched', manifest: { pretrained: true } });
    expect(model.warning).toBeUndefined();
    expect(server.requests()).toBe(1);
  });

  it('falls back to the seeded model offline, generating it, and warns loudly that it is not pretrained', async () => {
    // Prepare
    const log = recordingLog();

    // Act
    const model = await resolveModel({
      modelDir: dir,
      allowFetch: true,
      log,
      fetch: { source: publishedAs(classifier, [await refusedUrl()]), connectTimeoutMs: 500 },
    });

    // Assess
    expect(model).toMatchObject({
      origin: 'seeded',
      manifest: { name: 'vgg16-seeded-42', pretrained: false },
    });
    expect(model.warning).toMatch(/^SEEDED MODEL: .*random weights.*near-duplicates/);
    const warnings = log.lines.filter((l) => l.startsWith('warn'));
    expect(warnings[0]).toMatch(/Pretrained VGG16 not available.*npm run model:fetch -- --file/s);
    expect(warnings[1]).toBe(`warn ${model.warning}`);
    expect((await readdir(dir)).sort()).toEqual([
      'vgg16-seeded.manifest.json',
      'vgg16-seeded.onnx',
      'vgg16-seeded.whitening-256.f32',
    ]);
  });

  it('does not try to download when fetching is not allowed', async () => {
    // Prepare
    server = await serveBytes(classifier);

    // Act
    const model = await resolveModel({
      modelDir: dir,
      allowFetch: false,
      log: recordingLog(),
      fetch: { source: publishedAs(classifier, [server.url]) },
    });

    // Assess
    expect(model.origin).toBe('seeded');
    expect(server.requests()).toBe(0);
  });
});
