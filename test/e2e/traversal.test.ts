/**
 * GET /images/{key} and /thumbnails/{key} never serve anything outside the bucket folder, whatever the
 * path says: raw and encoded "..", absolute paths, backslashes, symlinks out of the bucket. Requests go
 * through node:http with the path as written (fetch would normalise "..").
 */

import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDataDir, removeDir, type Service, startService } from '../../local/service-process.ts';

const SECRET = 'TOP-SECRET-CONTENT-3f9a';

let workDir: string;
let service: Service;

function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const url = new URL(service.url);
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString('latin1');
      });
      response.on('end', () => done({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

beforeAll(async () => {
  workDir = await makeDataDir();
  const dataDir = join(workDir, 'data');
  await mkdir(join(dataDir, 'bucket', 'photos'), { recursive: true });
  await writeFile(join(workDir, 'secret.txt'), SECRET);
  await writeFile(join(dataDir, 'secret.jpg'), SECRET);
  await symlink(join(workDir, 'secret.txt'), join(dataDir, 'bucket', 'photos', 'link.jpg'));
  await symlink(workDir, join(dataDir, 'bucket', 'linked-folder'));
  service = await startService(dataDir, { PIC_WATCH: 'false' });
});

afterAll(async () => {
  await service?.stop();
  await removeDir(workDir);
});

describe('path traversal', () => {
  it.each([
    '/images/../secret.jpg',
    '/images/photos/../../secret.jpg',
    '/images/%2e%2e/secret.jpg',
    '/images/%2E%2E%2Fsecret.jpg',
    '/images/photos/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/images/..%5csecret.jpg',
    '/images//etc/passwd',
    '/images/%2Fetc%2Fpasswd',
    '/images/%2e%2e/%2e%2e/secret.txt',
    '/thumbnails/../../secret.jpg',
    '/thumbnails/%2e%2e/%2e%2e/secret.txt',
    '/images/photos/link.jpg',
    '/thumbnails/photos/link.jpg',
    '/images/linked-folder/secret.txt',
    '/images/linked-folder/data/secret.jpg',
    '/images/photos/%00.jpg',
  ])('refuses GET %s without leaking what is outside', async (path) => {
    const { status, body } = await rawGet(path);
    expect([400, 404]).toContain(status);
    expect(body).not.toContain(SECRET);
    expect(body).not.toContain('root:');
    expect(JSON.parse(body)).toMatchObject({ error: expect.any(String), message: expect.any(String) });
  });

  it.each([
    '/../secret.txt',
    '/%2e%2e/%2e%2e/secret.txt',
    '/..%2f..%2fsecret.txt',
    '/assets/../../secret.jpg',
  ])('answers static path %s with a 404 JSON, never a file outside the page', async (path) => {
    const { status, body } = await rawGet(path);
    expect(status).toBe(404);
    expect(body).not.toContain(SECRET);
    expect(JSON.parse(body)).toMatchObject({ error: 'not_found' });
  });
});
