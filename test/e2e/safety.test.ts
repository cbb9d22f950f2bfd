/**
 * Safe by default (issue 14): each attack that once worked against `npm start` is tried again over HTTP
 * against the real service, which must refuse it and lose nothing. One service (with a token, so every
 * request below carries it unless the case is about the token), started with flags as a user would.
 * The load test runs first, while the worker is idle, so it measures the searches alone.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE } from '../../local/data-lock.ts';
import {
  fixturesDir,
  makeDataDir,
  removeDir,
  type Service,
  startService,
} from '../../local/service-process.ts';

const TOKEN = 'e2e-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const MAX_FILE_BYTES = 2_000_000;
/** Query images up to 20 MP; ingest keeps its 100 MP. */
const MAX_QUERY_PIXELS = 20_000_000;
/** Two searches embed at once and four wait: with 32 at once, at least 26 must be told 429. */
const RUNNING = 2;
const QUEUED = 4;
const SECRET = 'TOP-SECRET-CONTENT-7c1e';

let workDir: string;
let allowed: string;
let service: Service;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request through node:http, so Host, Origin and the body are exactly as written. */
function send(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Reply> {
  return new Promise((done, fail) => {
    const url = new URL(service.url);
    const req = request({ host: url.hostname, port: url.port, path, method, headers }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      response.on('end', () =>
        done({ status: response.statusCode ?? 0, headers: response.headers, body: text }),
      );
    });
    req.on('error', fail);
    req.end(body);
  });
}

const json = (reply: Reply) =>
  JSON.parse(reply.body) as { error: string; message: string } & Record<string, unknown>;

function postJson(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return send(
    'POST',
    path,
    { ...AUTH, 'content-type': 'application/json', ...headers },
    JSON.stringify(body),
  );
}

async function uploadForm(files: { name: string; body: Buffer }[], prefix: string) {
  const form = new FormData();
  form.append('prefix', prefix);
  for (const file of files) form.append('files', new Blob([new Uint8Array(file.body)]), file.name);
  const response = await fetch(`${service.url}/images`, { method: 'POST', headers: AUTH, body: form });
  return { status: response.status, body: (await response.json()) as { keys?: string[]; error?: string } };
}

const imageStatus = async (key: string) =>
  (await fetch(`${service.url}/images/${key}`, { headers: AUTH })).status;

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** The PID of a process that has exited. */
function deadPid(): number {
  return Number(
    execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString(),
  );
}

beforeAll(async () => {
  workDir = await makeDataDir();
  allowed = join(workDir, 'allowed');
  await mkdir(join(allowed, 'trip'), { recursive: true });
  await writeFile(join(workDir, 'secret.jpg'), SECRET);
  await symlink(join(workDir, 'secret.jpg'), join(allowed, 'trip', 'leak.jpg'));
  await copyFile(join(fixturesDir, 'pizza.jpg'), join(allowed, 'trip', 'pizza.jpg'));
  await symlink('/etc', join(allowed, 'etc-link'));
  const dataDir = join(workDir, 'data');
  await mkdir(dataDir);
  // A lock left by a service that died: taken over.
  await writeFile(join(dataDir, LOCK_FILE), `${deadPid()}\n`);
  const port = await freePort();
  service = await startService(
    join(workDir, 'elsewhere'),
    {
      PIC_API_TOKEN: TOKEN,
      PIC_INGEST_ROOTS: allowed,
      PIC_THREADS: String(RUNNING),
      PIC_SEARCH_QUEUE: String(QUEUED),
      PIC_MAX_QUERY_PIXELS: String(MAX_QUERY_PIXELS),
      PIC_MAX_UPLOAD_BYTES: String(MAX_FILE_BYTES),
      PIC_WATCH: 'false',
    },
    ['--port', String(port), '--data-dir', dataDir],
  );
  expect(service.url).toBe(`http://127.0.0.1:${port}`);
});

afterAll(async () => {
  await service?.stop();
  await removeDir(workDir);
});

describe('admission control (attack 5)', () => {
  it('answers /health within 100 ms (p99) while 32 bomb searches saturate the embedder, refusing the excess with 429', async () => {
    // Prepare: a 16 MP PNG of a few KB that decodes to 48 MB of pixels.
    const bomb = await sharp({
      create: { width: 4000, height: 4000, channels: 3, background: { r: 200, g: 30, b: 90 } },
    })
      .png({ compressionLevel: 9 })
      .toBuffer();
    expect(bomb.length).toBeLessThan(200_000);
    const search = () =>
      fetch(`${service.url}/search?topK=3`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'image/png' },
        body: new Uint8Array(bomb),
      });
    // Act: 32 searches at once, /health probed one after another until they are all answered.
    let searching = true;
    const searches = Promise.all(Array.from({ length: 32 }, search)).finally(() => {
      searching = false;
    });
    const latencies: number[] = [];
    const deadline = Date.now() + 60_000;
    while (searching && Date.now() < deadline && latencies.length < 2_000) {
      const started = performance.now();
      const health = await fetch(`${service.url}/health`, { headers: AUTH });
      await health.arrayBuffer();
      latencies.push(performance.now() - started);
      expect(health.status).toBe(200);
      await new Promise((pause) => setTimeout(pause, 10));
    }
    const answers = await searches;
    // Assess
    const statuses = answers.map((answer) => answer.status);
    const busy = answers.filter((answer) => answer.status === 429);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(RUNNING);
    expect(busy.length).toBeGreaterThanOrEqual(32 - RUNNING - QUEUED);
    expect(statuses.every((status) => status === 200 || status === 429)).toBe(true);
    expect(busy[0]?.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await busy[0]?.json()).toMatchObject({ error: 'too_busy' });
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1] as number;
    console.log(
      `/health under load: ${latencies.length} probes, p50 ${latencies[Math.floor(latencies.length / 2)]?.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ${busy.length} of 32 searches refused with 429`,
    );
    expect(latencies.length).toBeGreaterThanOrEqual(5);
    expect(p99).toBeLessThan(100);
  });

  it('refuses a query image over the query pixel limit with 415, before decoding it', async () => {
    const big = await sharp({ create: { width: 5000, height: 5000, channels: 3, background: '#fff' } })
      .png()
      .toBuffer();
    const reply = await send('POST', '/search', { ...AUTH, 'content-type': 'image/png' }, big);
    expect(reply.status).toBe(415);
    expect(json(reply)).toMatchObject({
      error: 'too_many_pixels',
      message: expect.stringMatching(/20\.0 MP limit/),
    });
  });
});

describe('cross-site requests (attack 1)', () => {
  const ingest = () => JSON.stringify({ path: join(allowed, 'trip') });

  it('refuses the text/plain POST from another site that once got 202', async () => {
    const reply = await send(
      'POST',
      '/ingest',
      { ...AUTH, host: 'evil.example', origin: 'http://evil.example', 'content-type': 'text/plain' },
      JSON.stringify({ path: allowed }),
    );
    expect(reply.status).toBe(403);
    expect(json(reply).error).toBe('forbidden');
  });

  it('refuses a rebound Host name, a foreign Origin, a non-JSON body and a missing token, each on its own', async () => {
    const local = new URL(service.url).host;
    const rebound = await send(
      'POST',
      '/ingest',
      { ...AUTH, host: 'evil.example:80', 'content-type': 'application/json' },
      ingest(),
    );
    const foreign = await send(
      'POST',
      '/ingest',
      { ...AUTH, host: local, origin: 'http://evil.example', 'content-type': 'application/json' },
      ingest(),
    );
    const plain = await send(
      'POST',
      '/ingest',
      { ...AUTH, host: local, 'content-type': 'text/plain' },
      ingest(),
    );
    const anonymous = await send(
      'POST',
      '/ingest',
      { host: local, 'content-type': 'application/json' },
      ingest(),
    );
    const wrongToken = await send('GET', '/count', { authorization: 'Bearer not-the-token-at-all' });
    expect([rebound.status, foreign.status, plain.status, anonymous.status, wrongToken.status]).toEqual([
      403, 403, 415, 401, 401,
    ]);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');
    expect(json(plain).error).toBe('unsupported_media_type');
    expect(await imageStatus('trip/pizza.jpg')).toBe(404);
  });

  it('takes the same request from its own page (same Origin, JSON, token)', async () => {
    const local = new URL(service.url).host;
    const reply = await send(
      'POST',
      '/ingest',
      { ...AUTH, host: local, origin: service.url, 'content-type': 'application/json' },
      ingest(),
    );
    expect(reply.status).toBe(202);
    expect(await imageStatus('trip/pizza.jpg')).toBe(200);
  });
});

describe('ingest roots and symlinks (attack 2)', () => {
  it.each(['/etc', '/proc/self'])('refuses to read %s, naming the roots', async (path) => {
    const reply = await postJson('/ingest', { path });
    expect(reply.status).toBe(400);
    expect(json(reply).message).toContain(allowed);
  });

  it('refuses a symlink inside a root that leads out of it', async () => {
    const reply = await postJson('/ingest', { path: join(allowed, 'etc-link') });
    expect(reply.status).toBe(400);
    expect(json(reply).message).toMatch(/only under/);
  });

  it('never copies what a symlink in the folder points at outside it', async () => {
    const reply = await postJson('/ingest', { path: join(allowed, 'trip') });
    expect(reply.status).toBe(202);
    const leak = await send('GET', '/images/trip/leak.jpg', AUTH);
    expect(leak.status).toBe(404);
    expect(leak.body).not.toContain(SECRET);
    const progress = (await (
      await fetch(`${service.url}/progress?failures=100`, { headers: AUTH })
    ).json()) as {
      recentFailures: { key: string; reason: string }[];
    };
    expect(progress.recentFailures).toContainEqual(
      expect.objectContaining({ key: 'trip/leak.jpg', reason: expect.stringMatching(/outside the folder/) }),
    );
  });
});

describe('folder sync deletes only its own copies (attack 3)', () => {
  it('keeps uploads and drops under the prefix, and deletes a copy once its file is gone', async () => {
    // Prepare: an upload and a drop under "shared/", then a folder ingested into the same prefix.
    const photo = await readFile(join(fixturesDir, 'pizza.jpg'));
    expect((await uploadForm([{ name: 'uploaded.jpg', body: photo }], 'shared')).status).toBe(201);
    await mkdir(join(workDir, 'data', 'bucket', 'shared'), { recursive: true });
    await copyFile(join(fixturesDir, 'pizza.jpg'), join(workDir, 'data', 'bucket', 'shared', 'dropped.jpg'));
    const folder = join(allowed, 'shared');
    await mkdir(folder);
    await copyFile(join(fixturesDir, 'pizza.jpg'), join(folder, 'mine.jpg'));
    // Act
    const first = json(await postJson('/ingest', { path: folder, prefix: 'shared/' }));
    await rm(join(folder, 'mine.jpg'));
    const second = json(await postJson('/ingest', { path: folder, prefix: 'shared/' }));
    // Assess
    expect(first.files).toMatchObject({ copied: 1, deleted: 0 });
    expect(second.files).toMatchObject({ copied: 0, deleted: 1 });
    expect(await imageStatus('shared/uploaded.jpg')).toBe(200);
    expect(await imageStatus('shared/dropped.jpg')).toBe(200);
    expect(await imageStatus('shared/mine.jpg')).toBe(404);
  });
});

describe('one key and prefix rule (attack 4)', () => {
  it.each([
    ['/ingest with prefix "../"', () => postJson('/ingest', { path: join(allowed, 'trip'), prefix: '../' })],
    ['/ingest backfill of "../"', () => postJson('/ingest', { prefix: '../' })],
    [
      '/uploads for "../../x.jpg"',
      () => postJson('/uploads', { files: [{ name: '../../x.jpg', contentType: 'image/jpeg' }] }),
    ],
    [
      '/uploads under "a//b"',
      () => postJson('/uploads', { files: [{ name: 'x.jpg', contentType: 'image/jpeg' }], prefix: 'a//b' }),
    ],
  ])('refuses %s with 400 and the reason', async (_name, attempt) => {
    const reply = await attempt();
    expect(reply.status).toBe(400);
    expect(json(reply).message).toMatch(/not a valid (key|prefix|file name): it (has|starts)/);
  });

  it('puts a file under a prefix given without its slash, alike in /uploads and POST /images', async () => {
    const targets = json(
      await postJson('/uploads', {
        files: [{ name: 'x.jpg', contentType: 'image/jpeg' }],
        prefix: 'holiday',
      }),
    );
    const photo = await readFile(join(fixturesDir, 'pizza.jpg'));
    const uploaded = await uploadForm([{ name: 'x.jpg', body: photo }], 'holiday');
    expect((targets.uploads as { key: string }[])[0]?.key).toBe('holiday/x.jpg');
    expect(uploaded.body.keys).toEqual(['holiday/x.jpg']);
  });
});

describe('streaming upload limits (attack 6)', () => {
  /** The service's resident memory, from /proc (Linux). */
  async function rssBytes(): Promise<number> {
    const status = await readFile(`/proc/${service.process.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  }

  it('refuses a 200 MB multipart upload early, growing the service by under 50 MB', async () => {
    const boundary = 'pic-search-boundary';
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
    );
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    const url = new URL(service.url);
    const before = await rssBytes();
    let peak = before;
    const sampler = setInterval(() => {
      // A sample still in flight when the service stops has nothing to read: no figure, no error.
      void rssBytes().then(
        (rss) => {
          peak = Math.max(peak, rss);
        },
        () => undefined,
      );
    }, 5);
    // Chunked (no Content-Length): the limit must be found while the body streams.
    const reply = await new Promise<{ status: number; body: string }>((done, fail) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/images',
          method: 'POST',
          headers: { ...AUTH, 'content-type': `multipart/form-data; boundary=${boundary}` },
        },
        (response) => {
          let text = '';
          response.on('data', (part: Buffer) => {
            text += part.toString();
          });
          response.on('end', () => done({ status: response.statusCode ?? 0, body: text }));
        },
      );
      // A write that fails because the service stopped reading is no failure if its answer still arrives.
      req.on('error', (error) => setTimeout(() => fail(error), 1000));
      let sent = 0;
      const pump = () => {
        while (sent < 200 && !req.destroyed) {
          sent++;
          if (!req.write(sent === 1 ? Buffer.concat([head, chunk]) : chunk))
            return void req.once('drain', pump);
        }
        if (!req.destroyed) req.end(`\r\n--${boundary}--\r\n`);
      };
      pump();
    }).finally(() => clearInterval(sampler));
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).message).toMatch(/huge\.jpg.*per file/);
    const growth = peak - before;
    console.log(`200 MB upload refused: service RSS grew by ${(growth / 1e6).toFixed(1)} MB`);
    expect(growth).toBeLessThan(50 * 1024 * 1024);
  });

  it('refuses more files than the per-request count limit with 413', async () => {
    const files = Array.from({ length: 101 }, (_, i) => ({ name: `f${i}.jpg`, body: Buffer.from('x') }));
    const reply = await uploadForm(files, 'many');
    expect(reply.status).toBe(413);
    expect(reply.body.error).toBe('payload_too_large');
  });
});

describe('unknown paths and the page (attack 10)', () => {
  it.each(['/api/nope', '/healthz', '/assets/nope.js', '/index.htm'])(
    'answers GET %s with a 404 JSON, not the page',
    async (path) => {
      const reply = await send('GET', path, {});
      expect(reply.status).toBe(404);
      expect(json(reply)).toMatchObject({ error: 'not_found' });
    },
  );

  it('serves the page at / with a strict Content-Security-Policy', async () => {
    const reply = await send('GET', '/', {});
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(/<!doctype html/i);
    expect(reply.headers['content-security-policy']).toMatch(
      /default-src 'self'.*script-src 'self'.*frame-ancestors 'none'/,
    );
    expect(reply.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(reply.headers['x-content-type-options']).toBe('nosniff');
  });
});

describe('starting up (issue 17 item 2)', () => {
  it('refuses a second service on the same data folder, naming the PID that holds it', async () => {
    const attempt = startService(join(workDir, 'other'), { PIC_API_TOKEN: TOKEN }, [
      '--data-dir',
      join(workDir, 'data'),
    ]);
    await expect(attempt).rejects.toThrow(
      new RegExp(`in use by another pic-search service \\(PID ${service.process.pid}\\)`),
    );
  });

  it('refuses to listen beyond loopback without a token, and unknown flags with exit code 2', async () => {
    await expect(startService(join(workDir, 'open'), { HOST: '0.0.0.0' })).rejects.toThrow(
      /exited with 2[\s\S]*Refusing to listen on 0\.0\.0\.0/,
    );
    await expect(startService(join(workDir, 'open'), {}, ['--nope'])).rejects.toThrow(
      /exited with 2[\s\S]*unknown option '--nope'/,
    );
  });
});
