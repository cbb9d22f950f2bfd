import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../domain/errors.ts';
import type { StoredObject } from '../../domain/ports.ts';
import { FolderObjectStore } from './folder-object-store.ts';

async function keys(iterable: AsyncIterable<StoredObject>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of iterable) out.push(o.key);
  return out;
}

describe('FolderObjectStore', () => {
  let dir: string;
  let root: string;
  let outside: string;
  let store: FolderObjectStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'folder-store-'));
    root = join(dir, 'bucket');
    outside = join(dir, 'outside');
    await mkdir(root, { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret.txt'), 'top secret');
    store = new FolderObjectStore(root);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['a parent segment', '../outside/secret.txt'],
    ['a parent segment in the middle', 'a/../../outside/secret.txt'],
    ['an absolute path', '/etc/passwd'],
    ['a NUL byte', 'a\0b.jpg'],
    ['a backslash', '..\\outside\\secret.txt'],
    ['an encoded parent segment', '%2e%2e/outside/secret.txt'],
    ['a double-encoded parent segment', '%252e%252e/outside/secret.txt'],
    ['an encoded slash before a parent segment', 'a%2f..%2f..%2foutside/secret.txt'],
    ['an empty segment', 'a//b.jpg'],
    ['a dot segment', './a.jpg'],
    ['an empty key', ''],
  ])('refuses a key with %s', async (_, key) => {
    await expect(store.get(key)).rejects.toBeInstanceOf(ValidationError);
    await expect(store.head(key)).rejects.toBeInstanceOf(ValidationError);
    await expect(store.put(key, new Uint8Array([1]))).rejects.toBeInstanceOf(ValidationError);
    await expect(store.delete(key)).rejects.toBeInstanceOf(ValidationError);
  });

  it('refuses to read through a symlink that points outside the folder', async () => {
    await symlink(join(outside, 'secret.txt'), join(root, 'link.txt'));
    await symlink(outside, join(root, 'linked-dir'));

    await expect(store.get('link.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(store.head('link.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(store.get('linked-dir/secret.txt')).rejects.toBeInstanceOf(ValidationError);
    expect(await keys(store.list())).toEqual([]);
  });

  it('refuses to write or delete through a symlinked folder that points outside', async () => {
    await symlink(outside, join(root, 'linked-dir'));

    await expect(store.put('linked-dir/new.txt', new Uint8Array([1]))).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(store.delete('linked-dir/secret.txt')).rejects.toBeInstanceOf(ValidationError);
    expect(await readdir(outside)).toEqual(['secret.txt']);
  });

  it('serves a symlink that stays inside the folder', async () => {
    await store.put('real/cat.jpg', new TextEncoder().encode('meow'));
    await symlink(join(root, 'real', 'cat.jpg'), join(root, 'alias.jpg'));

    expect((await store.get('alias.jpg')).body.toString()).toBe('meow');
    expect(await keys(store.list())).toEqual(['alias.jpg', 'real/cat.jpg']);
  });

  it('never lists its own half-written temporary files', async () => {
    await store.put('a/done.jpg', new Uint8Array([1, 2]));
    await writeFile(join(root, 'a', '.done.jpg.0123456789abcdef.tmp'), 'partial');

    expect(await keys(store.list())).toEqual(['a/done.jpg']);
  });

  it('lists files dropped into the folder by hand, with an etag that changes when they change', async () => {
    await mkdir(join(root, 'dropped'), { recursive: true });
    await writeFile(join(root, 'dropped', 'x.jpg'), 'one');
    const before = await store.head('dropped/x.jpg');

    await writeFile(join(root, 'dropped', 'x.jpg'), 'two!');
    const after = await store.head('dropped/x.jpg');

    expect(before?.size).toBe(3);
    expect(after?.size).toBe(4);
    expect(after?.etag).not.toBe(before?.etag);
    expect(await keys(store.list('dropped/'))).toEqual(['dropped/x.jpg']);
  });

  it('lists in UTF-8 byte order like S3, not JS string order', async () => {
    // U+FF5E sorts before U+1F408 in UTF-16 code units, after it in UTF-8 bytes.
    for (const key of ['\u{1F408}.jpg', '\uFF5E.jpg', 'z.jpg']) await store.put(key, new Uint8Array([1]));

    expect(await keys(store.list())).toEqual(['z.jpg', '\uFF5E.jpg', '\u{1F408}.jpg']);
  });

  it('removes folders left empty by a delete', async () => {
    await store.put('deep/er/still/x.jpg', new Uint8Array([1]));

    await store.delete('deep/er/still/x.jpg');

    expect(await readdir(root)).toEqual([]);
  });

  it('reports a conflict when a key needs a folder where an object already is', async () => {
    await store.put('photo.jpg', new Uint8Array([1]));

    await expect(store.put('photo.jpg/inner.jpg', new Uint8Array([1]))).rejects.toBeInstanceOf(ConflictError);
  });

  it('builds download links under its route, one encoded segment per key segment', async () => {
    const thumbnails = new FolderObjectStore(join(dir, 'thumbnails'), {
      urlBase: 'http://localhost:8080/thumbnails/',
    });

    expect(await store.downloadUrl('a b/c#d?.jpg')).toBe('/images/a%20b/c%23d%3F.jpg');
    expect(await thumbnails.downloadUrl('猫.webp')).toBe('http://localhost:8080/thumbnails/%E7%8C%AB.webp');
  });
});
