import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, REPO_ROOT, SEEDED_MANIFEST } from '../app/test-system.ts';
import { ImageError } from '../domain/errors.ts';
import { loadManifest } from '../model/manifest.ts';
import { OnnxEmbedder } from './onnx-embedder.ts';
import { maxDifference, vectorOf } from './test-support.ts';
import {
  EMBEDDER_GAVE_UP_EXIT_CODE,
  ingestSessions,
  ThreadedEmbedder,
  type ThreadedEmbedderOptions,
} from './threaded-embedder.ts';

/** The longest gap between ticks of a 10 ms timer while `work` runs: how long this event loop stalled. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; gapMs: number }> {
  let last = performance.now();
  let gapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - last);
    last = now;
  }, 10);
  try {
    const result = await work();
    return { result, gapMs: Math.max(gapMs, performance.now() - last) };
  } finally {
    clearInterval(timer);
  }
}

/** The first `count` fixture photos, a ThreadedEmbedder with `options`, and an embedder on this thread to compare. */
async function openWithReference(options: ThreadedEmbedderOptions, count: number) {
  const names = (await readdir(FIXTURES)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  const [images, threaded, local] = await Promise.all([
    Promise.all(names.slice(0, count).map((name) => readFile(resolve(FIXTURES, name)))),
    ThreadedEmbedder.create(SEEDED_MANIFEST, options),
    loadManifest(SEEDED_MANIFEST).then((loaded) => OnnxEmbedder.create(loaded, { batchSize: 8 })),
  ]);
  return { images, threaded, local };
}

describe('ThreadedEmbedder with the seeded VGG16', () => {
  let threaded: ThreadedEmbedder;
  let local: OnnxEmbedder;
  let images: Buffer[];

  beforeAll(async () => {
    ({ images, threaded, local } = await openWithReference({ batchSize: 8 }, 8));
  });
  afterAll(async () => {
    await Promise.all([threaded?.close(), local?.close()]);
  });

  it('describes the model its thread loaded', () => {
    expect(threaded.info).toEqual(local.info);
  });

  it('gives the same vectors as the embedder on this thread for the same bytes', async () => {
    const fromThread = await threaded.embed(images);
    const here = await local.embed(images);
    const one = await threaded.embedOne(images[0] as Buffer);

    expect(fromThread).toHaveLength(images.length);
    for (const [i, outcome] of fromThread.entries()) {
      expect(maxDifference(vectorOf(outcome), vectorOf(here[i]))).toBeLessThanOrEqual(1e-6);
    }
    expect(maxDifference(one.vector, vectorOf(here[0]))).toBeLessThanOrEqual(1e-6);
    expect(images[0]?.length).toBeGreaterThan(0);
  });

  it('reports a bad image with its reason while the others embed', async () => {
    const junk = Buffer.from('this is not an image');

    const outcomes = await threaded.embed([images[0] as Buffer, junk, images[1] as Buffer]);
    const single = threaded.embedOne(junk);

    expect(outcomes[0]?.ok).toBe(true);
    expect(outcomes[2]?.ok).toBe(true);
    expect(outcomes[1]).toMatchObject({ ok: false, reason: expect.stringMatching(/\w/) });
    await expect(single).rejects.toBeInstanceOf(ImageError);
  });

  it('keeps this event loop responsive while the thread embeds a batch of 8', async () => {
    const { result, gapMs } = await longestStall(() => threaded.embed(images));

    expect(result.every((outcome) => outcome.ok)).toBe(true);
    expect(gapMs).toBeLessThan(250);
  });
});

describe('ThreadedEmbedder with two sessions, taking images one at a time', () => {
  let pooled: ThreadedEmbedder;
  let local: OnnxEmbedder;
  let images: Buffer[];

  beforeAll(async () => {
    const options = { batchSize: 8, sessions: 2, intraOpNumThreads: 1 };
    ({ images, threaded: pooled, local } = await openWithReference(options, 6));
  });
  afterAll(async () => {
    await Promise.all([pooled?.close(), local?.close()]);
  });

  it('gives each image its own vector, in the order given, for batches in flight at once', async () => {
    const here = await local.embed(images);

    const [first, second] = await Promise.all([pooled.embed(images), pooled.embed([...images].reverse())]);

    expect(first).toHaveLength(images.length);
    expect(second).toHaveLength(images.length);
    for (const [i, outcome] of first.entries()) {
      expect(maxDifference(vectorOf(outcome), vectorOf(here[i]))).toBeLessThanOrEqual(1e-6);
      const mirrored = second[images.length - 1 - i];
      expect(maxDifference(vectorOf(mirrored), vectorOf(here[i]))).toBeLessThanOrEqual(1e-6);
    }
  });

  it('reports a bad image at its position while the others embed', async () => {
    const junk = Buffer.from('this is not an image');

    const outcomes = await pooled.embed([images[0] as Buffer, junk, images[1] as Buffer, junk]);

    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true, false, true, false]);
    expect(outcomes[1]).toMatchObject({ ok: false, code: 'not_an_image' });
  });
});

describe('ingestSessions', () => {
  it('opens one single-threaded session per CPU thread, up to four, sharing the threads beyond', () => {
    expect(ingestSessions(2, ['cpu'])).toEqual({ sessions: 2, intraOpNumThreads: 1 });
    expect(ingestSessions(16, ['cpu'])).toEqual({ sessions: 4, intraOpNumThreads: 4 });
  });

  it('opens one session for CUDA, whole batches, with all the threads', () => {
    expect(ingestSessions(8, ['cuda'])).toEqual({ sessions: 1, intraOpNumThreads: 8 });
  });

  it('takes the configured count, never leaving a session without a thread', () => {
    expect(ingestSessions(8, ['cpu'], 3)).toEqual({ sessions: 3, intraOpNumThreads: 2 });
    expect(ingestSessions(2, ['cpu'], 6)).toEqual({ sessions: 6, intraOpNumThreads: 1 });
  });
});

describe('ThreadedEmbedder from a bundle, as the worker container runs it', () => {
  it('starts its thread from the sibling bundle embedder-thread.mjs', async () => {
    // Inside the repository, so the bundles find node_modules as the container's /app/dist does.
    await mkdir(join(REPO_ROOT, '.cache'), { recursive: true });
    const dist = await mkdtemp(join(REPO_ROOT, '.cache/bundle-'));
    try {
      const options = {
        bundle: true,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        logLevel: 'silent',
      } as const;
      await build({
        ...options,
        entryPoints: [resolve(import.meta.dirname, 'threaded-embedder.ts')],
        outfile: join(dist, 'threaded-embedder.mjs'),
      });
      await build({
        ...options,
        entryPoints: [resolve(import.meta.dirname, 'embedder-thread.ts')],
        outfile: join(dist, 'embedder-thread.mjs'),
      });
      const bundled = (await import(pathToFileURL(join(dist, 'threaded-embedder.mjs')).href)) as {
        ThreadedEmbedder: typeof ThreadedEmbedder;
      };
      const embedder = await bundled.ThreadedEmbedder.create(SEEDED_MANIFEST, { batchSize: 1 });
      try {
        const image = await readFile(
          resolve(FIXTURES, (await readdir(FIXTURES)).filter((n) => n.endsWith('.jpg')).sort()[0] as string),
        );
        const { vector } = await embedder.embedOne(image);
        expect(vector).toHaveLength(embedder.info.dimension);
      } finally {
        await embedder.close();
      }
    } finally {
      await rm(dist, { recursive: true, force: true });
    }
  });
});

describe('ThreadedEmbedder when a session thread crashes', () => {
  /** Resolves with the next call of a callback option. */
  function nextCall<A extends unknown[]>(): { called: Promise<A>; callback: (...args: A) => void } {
    let callback: (...args: A) => void = () => undefined;
    const called = new Promise<A>((resolve) => {
      callback = (...args) => resolve(args);
    });
    return { called, callback };
  }

  it('starts the thread again, then gives up past its bound and rejects every later call', async () => {
    const photo = await readFile(resolve(FIXTURES, 'chimpanzee.jpg'));
    const restarted = nextCall<[Error, number]>();
    const gaveUp = nextCall<[Error]>();
    const embedder = await ThreadedEmbedder.create(SEEDED_MANIFEST, {
      restarts: { count: 1, windowMs: 60_000 },
      onRestart: restarted.callback,
      onGiveUp: gaveUp.callback,
    });
    try {
      const before = await embedder.embedOne(photo);

      embedder.crashSessionForTest();
      const [crash, restarts] = await restarted.called;
      const after = await embedder.embedOne(photo);

      expect(crash.message).toMatch(/embedder thread crashed: simulated embedder thread crash/);
      expect(restarts).toBe(1);
      expect(maxDifference(after.vector, before.vector)).toBe(0);

      embedder.crashSessionForTest();
      const [fatal] = await gaveUp.called;

      expect(fatal.message).toMatch(/crashed 2 times within 60 s, so the embedder gives up/);
      await expect(embedder.embedOne(photo)).rejects.toThrow(/gives up/);
    } finally {
      await embedder.close();
    }
  });

  it('ends a service process with a fatal log line when it gives up, for its supervisor to restart it', async () => {
    const fixture = join(import.meta.dirname, 'fixtures', 'crash-until-exit.ts');

    const child = await promisify(execFile)(process.execPath, ['--import', 'tsx', fixture], {
      encoding: 'utf8',
    }).catch((error: { code: number; stderr: string }) => error);

    expect('code' in child && child.code).toBe(EMBEDDER_GAVE_UP_EXIT_CODE);
    const fatal = child.stderr
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
      .find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/the embedder gave up; exiting \(70\) to be restarted/);
    expect(fatal?.err?.message).toMatch(/simulated embedder thread crash; it crashed 1 time within 60 s/);
  });
});
