import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/domain/errors.ts';
import type { ObjectStore, StoredObject } from '../../src/domain/ports.ts';

export interface ObjectStoreFixture {
  store: ObjectStore;
  cleanup: () => Promise<void>;
}

const bytes = (text: string) => new TextEncoder().encode(text);

async function collect(iterable: AsyncIterable<StoredObject>): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** S3 lists keys in the order of their UTF-8 bytes. */
function utf8Sorted(keys: string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** What the product relies on from a bucket: each test gets a fresh, empty store from `make`. */
export function describeObjectStoreContract(name: string, make: () => Promise<ObjectStoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fixture: ObjectStoreFixture;
    let store: ObjectStore;

    beforeEach(async () => {
      fixture = await make();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('gets back exactly the bytes that were put, with the metadata put returned', async () => {
      // Prepare
      const body = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);

      // Act
      const stored = await store.put('photos/cat.jpg', body, 'image/jpeg');
      const read = await store.get('photos/cat.jpg');

      // Assess
      expect(Buffer.compare(read.body, Buffer.from(body))).toBe(0);
      expect(read).toMatchObject({ key: 'photos/cat.jpg', size: body.length, etag: stored.etag });
      expect(read.lastModified).toBeInstanceOf(Date);
      expect(stored).toMatchObject({ key: 'photos/cat.jpg', size: body.length });
      expect(stored.etag).toMatch(/\S/);
      expect(stored.lastModified).toBeInstanceOf(Date);
    });

    it('heads an object with the size and etag that put returned, and undefined for a missing key', async () => {
      const stored = await store.put('a/b/c.png', bytes('hello'));

      const head = await store.head('a/b/c.png');
      const missing = await store.head('a/b/missing.png');

      expect(head).toMatchObject({ key: 'a/b/c.png', size: 5, etag: stored.etag });
      expect(missing).toBeUndefined();
    });

    it('throws NotFoundError when getting a missing key', async () => {
      await expect(store.get('nothing/here.jpg')).rejects.toBeInstanceOf(NotFoundError);
    });

    it('changes the etag when the content is overwritten', async () => {
      const first = await store.put('x.jpg', bytes('first version'));

      const second = await store.put('x.jpg', bytes('second, longer version'));

      expect(second.etag).not.toBe(first.etag);
      expect((await store.head('x.jpg'))?.etag).toBe(second.etag);
      const read = await store.get('x.jpg');
      expect(read.body.toString()).toBe('second, longer version');
      expect(read.etag).toBe(second.etag);
    });

    it('lists every object recursively in key order, and only those under a prefix when asked', async () => {
      const keys = ['b.jpg', 'a/2.jpg', 'a/1.jpg', 'a/sub/3.jpg', 'ab.jpg', 'a.jpg'];
      for (const key of keys) await store.put(key, bytes(key));

      const all = await collect(store.list());
      const underA = await collect(store.list('a/'));

      expect(all.map((o) => o.key)).toEqual(utf8Sorted(keys));
      expect(underA.map((o) => o.key)).toEqual(['a/1.jpg', 'a/2.jpg', 'a/sub/3.jpg']);
      expect(all.find((o) => o.key === 'a/sub/3.jpg')).toMatchObject({ size: 'a/sub/3.jpg'.length });
      expect(all.every((o) => o.etag.length > 0 && o.lastModified instanceof Date)).toBe(true);
    });

    it('resumes a listing after a key, within a prefix, whether or not the key still exists', async () => {
      const keys = ['r/a.jpg', 'r/b/1.jpg', 'r/b/2.jpg', 'r/ba.jpg', 'r/c/3.jpg', 'rz.jpg'];
      for (const key of keys) await store.put(key, bytes(key));

      const afterFirstInFolder = await collect(store.list('r/', { startAfter: 'r/b/1.jpg' }));
      const afterGone = await collect(store.list('r/', { startAfter: 'r/b/15.jpg' }));
      const afterLast = await collect(store.list('r/', { startAfter: 'r/c/3.jpg' }));

      expect(afterFirstInFolder.map((o) => o.key)).toEqual(['r/b/2.jpg', 'r/ba.jpg', 'r/c/3.jpg']);
      expect(afterGone.map((o) => o.key)).toEqual(['r/b/2.jpg', 'r/ba.jpg', 'r/c/3.jpg']);
      expect(afterLast).toEqual([]);
    });

    it('lists the same etag as head', async () => {
      await store.put('e/one.jpg', bytes('one'));

      const [listed] = await collect(store.list('e/'));

      expect(listed?.etag).toBe((await store.head('e/one.jpg'))?.etag);
    });

    it('deletes an object, and deleting a missing key is not an error', async () => {
      await store.put('gone/soon.jpg', bytes('x'));
      await store.put('gone/stays.jpg', bytes('y'));

      await store.delete('gone/soon.jpg');
      await store.delete('gone/never-existed.jpg');

      expect(await store.head('gone/soon.jpg')).toBeUndefined();
      await expect(store.get('gone/soon.jpg')).rejects.toBeInstanceOf(NotFoundError);
      expect((await collect(store.list('gone/'))).map((o) => o.key)).toEqual(['gone/stays.jpg']);
    });

    it('round-trips keys with spaces, unicode and shell metacharacters', async () => {
      const keys = [
        'holiday photos/beach day 1.jpg',
        'ünïcødé/猫 の 写真.png',
        'shell/$(touch pwned); rm -rf `x` & | > <.jpg',
        'quotes/it\'s "quoted" #1 ?a=b %20.jpg',
        'emoji/🐈‍⬛.webp',
        'plus/a+b=c.jpg',
      ];

      for (const key of keys) await store.put(key, bytes(`body of ${key}`));

      for (const key of keys) {
        expect((await store.get(key)).body.toString()).toBe(`body of ${key}`);
        expect((await store.head(key))?.key).toBe(key);
      }
      expect((await collect(store.list())).map((o) => o.key)).toEqual(utf8Sorted(keys));
    });

    it('gives a download link that names the key, encoded for a URL', async () => {
      await store.put('folder/a b.jpg', bytes('x'));

      const url = await store.downloadUrl('folder/a b.jpg');

      expect(url).toContain('a%20b.jpg');
      expect(url).not.toContain(' ');
    });
  });
}
