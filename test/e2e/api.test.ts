/**
 * End to end over HTTP against the started service (`local/main.ts` in its own process, as `npm start`
 * runs it): one service, one ingest of the fixture photos plus generated bad files, shared by the cases
 * below in order (the model embeds ~7 images/s on two cores, so re-ingesting per case would be slow).
 */
import { cp, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fixturesDir,
  getJson,
  keyPath,
  makeDataDir,
  removeDir,
  type Service,
  startService,
  waitForSettled,
} from '../../local/service-process.ts';
import { countResponse, ingestResponse, progressResponse, searchResponse } from '../../src/http/schemas.ts';
import { isImageKey } from '../../src/imaging/formats.ts';
import { BAD_FILES, E2E_MAX_PIXELS, writeBadFiles } from './bad-files.ts';

const MAX_UPLOAD_BYTES = 2_000_000;
// The 20 parallel searches below must all wait their turn: admission control (429) has its own test.
const ENV = {
  PIC_MAX_PIXELS: String(E2E_MAX_PIXELS),
  PIC_MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
  PIC_SEARCH_QUEUE: '32',
};

const sleep = (ms: number) => new Promise((resume) => setTimeout(resume, ms));

let workDir: string;
let service: Service;
let photos: string[];

async function search(query: Buffer | string, params = '', contentType = 'image/jpeg') {
  const response = await fetch(`${service.url}/search${params}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof query === 'string' ? query : new Uint8Array(query),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function searchResults(query: Buffer, params = '') {
  const { status, body } = await search(query, params);
  expect(status, JSON.stringify(body)).toBe(200);
  return searchResponse.parse(body).results;
}

const count = async () => countResponse.parse(await getJson(`${service.url}/count`)).count;

async function upload(files: { name: string; body: Buffer }[], prefix?: string) {
  const form = new FormData();
  if (prefix) form.append('prefix', prefix);
  for (const file of files) form.append('files', new Blob([new Uint8Array(file.body)]), file.name);
  const response = await fetch(`${service.url}/images`, { method: 'POST', body: form });
  return {
    status: response.status,
    body: (await response.json()) as {
      keys?: string[];
      rejected?: { name: string; error: string; message: string }[];
      error?: string;
    },
  };
}

beforeAll(async () => {
  workDir = await makeDataDir();
  const source = join(workDir, 'holiday');
  await mkdir(source);
  await cp(fixturesDir, source, { recursive: true });
  await writeBadFiles(source);
  photos = (await readdir(fixturesDir)).filter(isImageKey).sort();
  service = await startService(join(workDir, 'data'), ENV);
});

afterAll(async () => {
  await service?.stop();
  await removeDir(workDir);
});

describe('the running service', () => {
  it('indexes every fixture photo and fails each bad file with its reason', async () => {
    // Act
    const response = await fetch(`${service.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: join(workDir, 'holiday'), prefix: 'photos/' }),
    });
    const report = ingestResponse.parse(await response.json());
    const progress = progressResponse.parse(
      await waitForSettled(service, (p) => p.indexed + p.failed === photos.length + BAD_FILES.length),
    );
    // Assess
    expect(response.status).toBe(202);
    expect(report.queued).toBe(photos.length + BAD_FILES.length);
    expect(await count()).toBe(photos.length);
    expect(progress).toMatchObject({ indexed: photos.length, failed: BAD_FILES.length, pending: 0 });
    for (const bad of BAD_FILES) {
      const failure = progress.recentFailures.find((f) => f.key === `photos/${bad.name}`);
      expect(failure?.reason, bad.name).toMatch(bad.reason);
    }
  });

  it('copies and re-indexes nothing that is unchanged when the same folder is ingested again', async () => {
    const response = await fetch(`${service.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: join(workDir, 'holiday'), prefix: 'photos/' }),
    });
    const report = ingestResponse.parse(await response.json());
    expect(report.files?.copied).toBe(0);
    expect(report.unchanged).toBe(photos.length);
    // Unchanged files that failed may be tried again; nothing indexed is.
    expect(report.queued).toBeLessThanOrEqual(BAD_FILES.length);
    await waitForSettled(service);
    expect(await count()).toBe(photos.length);
  });

  it.each(['chimpanzee.jpg', 'red-vintage-car.jpg', 'orange-rose.jpg', 'lake-hill-reflection.jpg'])(
    'ranks the original first for a resized, re-encoded copy of %s',
    async (name) => {
      // Prepare
      const original = await readFile(join(fixturesDir, name));
      const resized = await sharp(original).resize({ width: 160 }).jpeg({ quality: 70 }).toBuffer();
      const webp = await sharp(original).resize({ width: 300 }).webp({ quality: 60 }).toBuffer();
      // Act
      const [fromJpeg, fromWebp] = [
        await searchResults(resized, '?topK=3'),
        await searchResults(webp, '?topK=3'),
      ];
      // Assess
      expect(fromJpeg[0]?.key).toBe(`photos/${name}`);
      expect(fromWebp[0]?.key).toBe(`photos/${name}`);
    },
  );

  it('honours topK, minScore and prefix, best first, scores within [-1, 1]', async () => {
    // Prepare
    const query = await readFile(join(fixturesDir, 'pizza.jpg'));
    // Act
    const one = await searchResults(query, '?topK=1');
    const five = await searchResults(query, '?topK=5');
    const all = await searchResults(query, '?topK=100');
    const strict = await searchResults(query, `?topK=100&minScore=${all[3]?.score}`);
    const none = await searchResults(query, '?prefix=nowhere/');
    // Assess
    expect(one).toHaveLength(1);
    expect(five).toHaveLength(5);
    expect(all).toHaveLength(photos.length);
    expect(one[0]).toMatchObject({ key: 'photos/pizza.jpg' });
    expect(one[0]?.score).toBeCloseTo(1, 4);
    const scores = all.map((r) => r.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(scores.every((s) => s >= -1 && s <= 1.0001)).toBe(true);
    expect(strict.length).toBeGreaterThanOrEqual(4);
    expect(strict.length).toBeLessThan(all.length);
    expect(none).toEqual([]);
  });

  it('searches by multipart part "image" and by an indexed key ("more like this")', async () => {
    const form = new FormData();
    form.append(
      'image',
      new Blob([new Uint8Array(await readFile(join(fixturesDir, 'chimpanzee.jpg')))]),
      'q.jpg',
    );
    const multipart = await fetch(`${service.url}/search?topK=2`, { method: 'POST', body: form });
    const byKey = await search(
      JSON.stringify({ key: 'photos/chimpanzee.jpg' }),
      '?topK=2',
      'application/json',
    );
    expect(searchResponse.parse(await multipart.json()).results[0]?.key).toBe('photos/chimpanzee.jpg');
    expect(searchResponse.parse(byKey.body).results[0]?.key).toBe('photos/chimpanzee.jpg');
  });

  it('serves the image bytes and a WebP thumbnail for a result', async () => {
    const image = await fetch(`${service.url}/images/photos/pizza.jpg`);
    const thumbnail = await fetch(`${service.url}/thumbnails/photos/pizza.jpg`);
    expect(
      Buffer.from(await image.arrayBuffer()).equals(await readFile(join(fixturesDir, 'pizza.jpg'))),
    ).toBe(true);
    expect(thumbnail.headers.get('content-type')).toBe('image/webp');
    expect((await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata()).format).toBe('webp');
  });

  it.each([
    ['?topK=0', 400],
    ['?topK=101', 400],
    ['?topK=1.5', 400],
    ['?topK=ten', 400],
    ['?minScore=2', 400],
    ['?minScore=high', 400],
  ])('answers POST /search%s with %i and a JSON reason', async (params, status) => {
    const { status: got, body } = await search(await readFile(join(fixturesDir, 'pizza.jpg')), params);
    expect(got).toBe(status);
    expect(body).toMatchObject({ error: 'bad_request', message: expect.stringMatching(/topK|minScore/) });
  });

  it('answers 404 for unknown keys and routes', async () => {
    const missing = 'photos/no such photo.jpg';
    const responses = await Promise.all([
      fetch(`${service.url}/images/${keyPath(missing)}`),
      fetch(`${service.url}/thumbnails/${keyPath(missing)}`),
      fetch(`${service.url}/images/${keyPath(missing)}`, { method: 'DELETE' }),
      fetch(`${service.url}/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: missing }),
      }),
      fetch(`${service.url}/count/extra`),
    ]);
    for (const response of responses) {
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ error: 'not_found', message: expect.any(String) });
    }
  });

  it('answers 413 for a body or a file over the upload limit', async () => {
    const big = Buffer.alloc(MAX_UPLOAD_BYTES + 1, 7);
    const raw = await search(big);
    const form = await upload([{ name: 'big.jpg', body: big }]);
    expect(raw).toMatchObject({ status: 413, body: { error: 'payload_too_large' } });
    expect(form).toMatchObject({ status: 413, body: { error: 'payload_too_large' } });
  });

  it('answers 415 with the decoder reason for something that is not an image', async () => {
    const query = await search(Buffer.from('not a picture'));
    const uploaded = await upload([{ name: 'notes.jpg', body: Buffer.from('not a picture') }]);
    expect(query).toMatchObject({
      status: 415,
      body: { error: 'not_an_image', message: expect.stringMatching(/not an image/) },
    });
    expect(uploaded).toMatchObject({ status: 415, body: { error: 'not_an_image' } });
  });

  it('stores the good files of a multipart upload and lists each refused one with its reason', async () => {
    const photo = await readFile(join(fixturesDir, photos[0] as string));

    const mixed = await upload(
      [
        { name: 'kept.jpg', body: photo },
        { name: 'notes.jpg', body: Buffer.from('not a picture') },
        { name: 'cut.jpg', body: photo.subarray(0, 300) },
      ],
      'mixed/',
    );
    await waitForSettled(service);

    expect(mixed.status).toBe(201);
    expect(mixed.body.keys).toEqual(['mixed/kept.jpg']);
    expect(mixed.body.rejected?.map((r) => [r.name, r.error])).toEqual([
      ['notes.jpg', 'not_an_image'],
      ['cut.jpg', expect.any(String)],
    ]);
    expect(mixed.body.rejected?.[1]?.message).toMatch(/^'cut.jpg': \w/);
    expect((await fetch(`${service.url}/images/mixed/notes.jpg`)).status).toBe(404);
    expect((await fetch(`${service.url}/images/mixed/kept.jpg`)).status).toBe(200);
  });

  it('answers 400 for an ingest path that does not exist, or a body that is not JSON', async () => {
    const post = (body: string) =>
      fetch(`${service.url}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const missing = await post(JSON.stringify({ path: join(workDir, 'nowhere') }));
    const broken = await post('{"path":');
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { message: string }).message).toMatch(/no such file or folder/);
    expect(broken.status).toBe(400);
  });

  it('stores, serves, searches and deletes keys with spaces, unicode and shell metacharacters', async () => {
    // Prepare
    const body = await sharp(await readFile(join(fixturesDir, 'sheep-on-pasture.jpg')))
      .resize({ width: 200 })
      .jpeg()
      .toBuffer();
    const names = ['café crème über 日本.jpg', "$(touch pwned) & `id`; rm -rf ~ 'x' | *?#%20+.jpg"];
    // Act
    const { status, body: stored } = await upload(
      names.map((name) => ({ name, body })),
      'odd names/',
    );
    const put = await fetch(`${service.url}/images/${keyPath('odd names/ünïcödé put ✓.jpg')}`, {
      method: 'PUT',
      headers: { 'content-type': 'image/jpeg' },
      body: new Uint8Array(body),
    });
    await waitForSettled(service);
    // Assess
    expect(status).toBe(201);
    const keys = [...(stored.keys ?? []), 'odd names/ünïcödé put ✓.jpg'];
    expect(keys).toEqual([...names.map((name) => `odd names/${name}`), 'odd names/ünïcödé put ✓.jpg']);
    expect(put.status).toBe(201);
    for (const key of keys) {
      const image = await fetch(`${service.url}/images/${keyPath(key)}`);
      expect(Buffer.from(await image.arrayBuffer()).equals(body), key).toBe(true);
      const similar = await search(
        JSON.stringify({ key }),
        '?topK=3&prefix=odd%20names/',
        'application/json',
      );
      expect(
        searchResponse
          .parse(similar.body)
          .results.map((r) => r.key)
          .sort(),
      ).toEqual([...keys].sort());
    }
    const deleted = await fetch(`${service.url}/images/${keyPath(keys[1] as string)}`, { method: 'DELETE' });
    expect(await deleted.json()).toEqual({ deleted: keys[1] });
    expect((await fetch(`${service.url}/images/${keyPath(keys[1] as string)}`)).status).toBe(404);
  });

  it('answers 20 searches in parallel, all successfully, while an ingest runs', async () => {
    // Prepare: more images to index, queued at once by the upload
    const original = await readFile(join(fixturesDir, 'grand-canyon-rim.jpg'));
    const variants = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => ({
        name: `crop-${i}.jpg`,
        body: await sharp(original)
          .extract({ left: i * 20, top: i * 10, width: 400, height: 300 })
          .jpeg()
          .toBuffer(),
      })),
    );
    const before = await count();
    expect((await upload(variants, 'more/')).status).toBe(201);
    const during = progressResponse.parse(await getJson(`${service.url}/progress`));
    // Act
    const query = await sharp(original).resize({ width: 200 }).jpeg().toBuffer();
    const answers = await Promise.all(Array.from({ length: 20 }, () => search(query, '?topK=5')));
    await waitForSettled(service);
    // Assess
    expect(during.pending).toBeGreaterThan(0);
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    for (const answer of answers) expect(searchResponse.parse(answer.body).results).toHaveLength(5);
    expect(await count()).toBe(before + variants.length);
  });

  it('deletes one image: the count drops and search no longer returns it', async () => {
    const before = await count();
    const response = await fetch(`${service.url}/images/photos/pizza.jpg`, { method: 'DELETE' });
    const results = await searchResults(await readFile(join(fixturesDir, 'pizza.jpg')), '?topK=100');
    expect(await response.json()).toEqual({ deleted: 'photos/pizza.jpg' });
    expect(await count()).toBe(before - 1);
    expect(results.map((r) => r.key)).not.toContain('photos/pizza.jpg');
  });

  it('does nothing on DELETE /images without confirm=true', async () => {
    const before = await count();
    const refused = await fetch(`${service.url}/images`, { method: 'DELETE' });
    const wrong = await fetch(`${service.url}/images?confirm=yes`, { method: 'DELETE' });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({
      error: 'bad_request',
      message: expect.stringMatching(/confirm=true/),
    });
    expect(wrong.status).toBe(400);
    expect(await count()).toBe(before);
  });

  it('keeps everything across a restart (SIGTERM exits 0)', async () => {
    // Prepare
    const before = { count: await count(), progress: await getJson(`${service.url}/progress`) };
    // Act
    const exitCode = await service.stop('SIGTERM');
    service = await startService(service.dataDir, ENV);
    // The start-up reconcile (after the server listens) retries the failed files once; their reasons come
    // back the same. Settled only counts once it has queued them.
    const reconciled = () => service.output().includes('bucket folder reconciled with the catalogue');
    for (let waited = 0; !reconciled() && waited < 60_000; waited += 100) await sleep(100);
    await waitForSettled(service);
    // Assess
    expect(exitCode).toBe(0);
    expect(reconciled()).toBe(true);
    expect(await count()).toBe(before.count);
    expect(await getJson(`${service.url}/progress`)).toMatchObject({
      indexed: (before.progress as { indexed: number }).indexed,
      failed: (before.progress as { failed: number }).failed,
    });
    const results = await searchResults(await readFile(join(fixturesDir, 'chimpanzee.jpg')), '?topK=1');
    expect(results[0]?.key).toBe('photos/chimpanzee.jpg');
  });

  it('deletes everything with confirm=true', async () => {
    const before = await count();
    const response = await fetch(`${service.url}/images?confirm=true`, { method: 'DELETE' });
    const body = (await response.json()) as { deleted: number; task: { id: string; state: string } };
    expect(response.status).toBe(202);
    expect(body).toMatchObject({ deleted: before, task: { state: 'running' } });
    expect(await count()).toBe(0);
    // The worker removes the records in the background.
    await expect
      .poll(() => getJson(`${service.url}/progress`), { timeout: 30_000, interval: 200 })
      .toMatchObject({
        total: 0,
        indexed: 0,
        failed: 0,
        tasks: { deleteAll: { id: body.task.id, state: 'done' } },
      });
  });
});
