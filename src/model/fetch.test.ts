import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchPretrained } from './fetch.ts';
import { loadManifest } from './manifest.ts';
import { sha256Of } from './model-files.ts';
import {
  publishedAs,
  refusedUrl,
  serveBytes,
  silentServer,
  smallClassifier,
  type TestServer,
} from './test-support.ts';

const classifier = smallClassifier();

describe('fetchPretrained', () => {
  let dir: string;
  let servers: TestServer[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fetch-'));
  });
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
    await rm(dir, { recursive: true, force: true });
  });
  const serve = async (body: Uint8Array) => {
    const server = await serveBytes(body);
    servers.push(server);
    return server.url;
  };

  it('fails fast when offline and says where to put the file by hand and which command converts it', async () => {
    // Prepare: a refused connection, then a source that never answers.
    const silent = await silentServer();
    servers.push(silent);
    const started = performance.now();

    // Act
    const attempt = fetchPretrained({
      modelDir: dir,
      source: publishedAs(classifier, [await refusedUrl(), silent.url]),
      connectTimeoutMs: 300,
    });

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: 'ModelError', kind: 'offline' });
    const message = await attempt.catch((error: Error) => error.message);
    expect(message).toContain('ECONNREFUSED');
    expect(message).toContain('no response within 300 ms');
    expect(message).toContain(`Copy it to ${join(dir, 'vgg16-7.onnx')}`);
    expect(message).toContain(`npm run model:fetch -- --file ${join(dir, 'vgg16-7.onnx')}`);
    expect(message).toContain(sha256Of(classifier));
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await readdir(dir)).toEqual([]);
  });

  it('downloads with progress, verifies and converts into a model labelled pretrained', async () => {
    // Prepare
    const url = await serve(classifier);
    const progress: number[] = [];

    // Act
    const { manifestPath } = await fetchPretrained({
      modelDir: dir,
      source: publishedAs(classifier, [url]),
      onProgress: (received) => progress.push(received),
    });

    // Assess
    const { manifest } = await loadManifest(manifestPath);
    expect(manifest).toMatchObject({
      name: 'vgg16-test-imagenet',
      file: 'vgg16-pretrained.onnx',
      pretrained: true,
      input: { name: 'input', colorOrder: 'RGB' },
      normalisation: { kind: 'mean-std' },
      output: { name: 'embedding', dimension: 512 },
    });
    expect(progress.at(-1)).toBe(classifier.length);
    expect((await readdir(dir)).sort()).toEqual([
      'vgg16-7.onnx',
      'vgg16-pretrained.manifest.json',
      'vgg16-pretrained.onnx',
    ]);
  });

  it('deletes a download whose checksum differs and labels nothing pretrained', async () => {
    // Prepare: the server sends other bytes of the announced size.
    const tampered = Uint8Array.from(classifier);
    tampered[tampered.length - 1] = (tampered.at(-1) ?? 0) ^ 1;
    const url = await serve(tampered);

    // Act
    const attempt = fetchPretrained({ modelDir: dir, source: publishedAs(classifier, [url]) });

    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'checksum_mismatch' });
    await expect(attempt).rejects.toThrow(/is not the test classifier.*It was deleted/s);
    expect(await readdir(dir)).toEqual([]);
  });

  it('with --file refuses a file that is not the published one and points to model:convert', async () => {
    // Prepare: the real Model Zoo checksum, a file that is not it.
    const file = join(dir, 'vgg16-7.onnx');
    await writeFile(file, classifier);

    // Act
    const attempt = fetchPretrained({ modelDir: dir, file });

    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'checksum_mismatch' });
    const message = await attempt.catch((error: Error) => error.message);
    expect(message).toContain('f20805a3ecccaa88647bbab4ad011ff2412a9838485ea844de0fcbce349820b9');
    expect(message).toContain(`npm run model:convert -- ${file}`);
    expect(await readdir(dir)).toEqual(['vgg16-7.onnx']);
  });

  it('with --file converts a file that matches the published checksum without downloading', async () => {
    // Prepare: a source nobody can reach, so any download attempt would fail.
    const file = join(dir, 'by-hand.onnx');
    await writeFile(file, classifier);

    // Act
    const { manifest } = await fetchPretrained({
      modelDir: dir,
      file,
      source: publishedAs(classifier, [await refusedUrl()]),
    });

    // Assess
    expect(manifest.pretrained).toBe(true);
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
