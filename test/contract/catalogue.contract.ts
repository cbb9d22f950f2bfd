import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/domain/errors.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import type { Catalogue, ImageRecord } from '../../src/domain/ports.ts';
import { versionNow } from '../../src/domain/versions.ts';

export interface CatalogueFixture {
  catalogue: Catalogue;
  /** A second handle on the same store, as another process (a Lambda function, a second worker) has. */
  otherProcess: Catalogue;
  cleanup: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function keysOf(iterable: AsyncIterable<ImageRecord>): Promise<string[]> {
  const keys: string[] = [];
  for await (const record of iterable) keys.push(record.key);
  return keys.sort();
}

const entry = (key: string) => ({ key, id: vectorIdOf(key) });

/**
 * The page size the fixtures give their catalogues (`pageSize`): small, so the contract crosses page
 * boundaries with few records (each write is a transaction, which moto's time grows with the table).
 */
export const CONTRACT_PAGE_SIZE = 50;

/** What ingest, the worker, progress and search rely on from the catalogue; a fresh one per test. */
export function describeCatalogueContract(name: string, make: () => Promise<CatalogueFixture>): void {
  describe(`Catalogue contract: ${name}`, () => {
    let fixture: CatalogueFixture;
    let catalogue: Catalogue;

    beforeEach(async () => {
      fixture = await make();
      catalogue = fixture.catalogue;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('records a pending image with its id, etag and size', async () => {
      // Prepare
      const image = { ...entry('photos/cat.jpg'), etag: 'etag-1', size: 1234 };

      // Act
      const [claim] = await catalogue.markPending([image]);
      const record = await catalogue.get('photos/cat.jpg');

      // Assess
      expect(claim).toEqual({ ok: true });
      expect(record).toMatchObject({ ...image, state: 'pending' });
      expect(record?.updatedAt).toBeInstanceOf(Date);
      expect(record?.reason).toBeUndefined();
      expect(await catalogue.get('photos/dog.jpg')).toBeUndefined();
    });

    it('reports a hash collision instead of merging two keys under one id', async () => {
      await catalogue.markPending([{ key: 'first.jpg', id: '4242' }]);

      const [collision] = await catalogue.markPending([{ key: 'second.jpg', id: '4242' }]);
      const [sameKeyAgain] = await catalogue.markPending([{ key: 'first.jpg', id: '4242' }]);

      expect(collision).toEqual({ ok: false, ownerKey: 'first.jpg' });
      expect(sameKeyAgain).toEqual({ ok: true });
      expect((await catalogue.getByIds(['4242'])).get('4242')?.key).toBe('first.jpg');
    });

    it('records the loser of a collision as failed without taking the id from its owner', async () => {
      await catalogue.markPending([{ key: 'owner.jpg', id: '77' }]);
      await catalogue.markIndexed([{ key: 'owner.jpg', id: '77', model: 'm', profile: 'p' }]);

      await catalogue.markFailed({ key: 'loser.jpg', id: '77', reason: 'vector id collides with owner.jpg' });

      expect(await catalogue.get('loser.jpg')).toMatchObject({ state: 'failed', reason: expect.any(String) });
      expect((await catalogue.getByIds(['77'])).get('77')?.key).toBe('owner.jpg');
      expect((await catalogue.get('owner.jpg'))?.state).toBe('indexed');
    });

    it('moves an image through pending, indexed, pending and failed, then indexed again', async () => {
      const image = entry('life.jpg');
      await catalogue.markPending([{ ...image, etag: 'v1' }]);

      await catalogue.markIndexed([{ ...image, etag: 'v1', model: 'vgg16', profile: 'caffe-224' }]);
      const indexed = await catalogue.get('life.jpg');
      await catalogue.markPending([{ ...image, etag: 'v2' }]);
      const pendingAgain = await catalogue.get('life.jpg');
      await catalogue.markFailed({ ...image, reason: 'corrupt: premature end of JPEG' });
      const failed = await catalogue.get('life.jpg');
      await catalogue.markIndexed([{ ...image, etag: 'v2', model: 'vgg16', profile: 'caffe-224' }]);
      const reindexed = await catalogue.get('life.jpg');

      expect(indexed).toMatchObject({ state: 'indexed', etag: 'v1', model: 'vgg16', profile: 'caffe-224' });
      expect(indexed?.indexedAt).toBeInstanceOf(Date);
      expect(pendingAgain).toMatchObject({ state: 'pending', etag: 'v2' });
      expect(failed).toMatchObject({ state: 'failed', reason: 'corrupt: premature end of JPEG' });
      expect(reindexed).toMatchObject({ state: 'indexed', etag: 'v2' });
      expect(reindexed?.reason).toBeUndefined();
    });

    it('counts progress by state, recent work, and the latest failures newest first', async () => {
      for (const key of ['p1', 'p2', 'i1', 'i2', 'i3', 'f1', 'f2']) await catalogue.markPending([entry(key)]);
      for (const key of ['i1', 'i2', 'i3']) {
        await catalogue.markIndexed([{ ...entry(key), model: 'm', profile: 'p' }]);
      }
      await catalogue.markFailed({ ...entry('f1'), reason: 'older failure' });
      await sleep(20);
      await catalogue.markFailed({ ...entry('f2'), reason: 'newer failure' });

      const progress = await catalogue.progress(1);
      const allFailures = await catalogue.progress(10);

      expect(progress).toMatchObject({ total: 7, pending: 2, indexed: 3, failed: 2, recentlyIndexed: 3 });
      expect(progress.windowSeconds).toBeGreaterThan(0);
      expect(progress.recentFailures).toEqual([{ key: 'f2', reason: 'newer failure', at: expect.any(Date) }]);
      expect(allFailures.recentFailures.map((f) => f.key)).toEqual(['f2', 'f1']);
    });

    it('keeps the counts right when an image changes state and when it is removed', async () => {
      await catalogue.markPending([entry('a')]);
      await catalogue.markPending([entry('b')]);
      await catalogue.markIndexed([{ ...entry('a'), model: 'm', profile: 'p' }]);
      await catalogue.markIndexed([{ ...entry('a'), model: 'm', profile: 'p' }]);
      await catalogue.markPending([entry('b')]);

      await catalogue.remove(['b'], versionNow());
      const progress = await catalogue.progress(5);

      expect(progress).toMatchObject({ total: 1, pending: 0, indexed: 1, failed: 0 });
    });

    it('marks a batch at once: one result per entry in order, the counts of the whole batch', async () => {
      await catalogue.markPending([{ key: 'owner.jpg', id: '31' }]);
      const batch = [entry('b1.jpg'), { key: 'intruder.jpg', id: '31' }, entry('b2.jpg'), entry('b3.jpg')];

      const claims = await catalogue.markPending(batch);
      await catalogue.markIndexed(
        [entry('b1.jpg'), entry('b3.jpg')].map((e) => ({ ...e, model: 'm', profile: 'p' })),
      );
      const progress = await catalogue.progress(0);

      expect(claims).toEqual([
        { ok: true },
        { ok: false, ownerKey: 'owner.jpg' },
        { ok: true },
        { ok: true },
      ]);
      expect(progress).toMatchObject({ total: 4, pending: 2, indexed: 2, failed: 0, recentlyIndexed: 2 });
    });

    it('refuses to mark indexed an image whose id belongs to another key', async () => {
      await catalogue.markPending([{ key: 'owner.jpg', id: '32' }]);

      const marking = catalogue.markIndexed([{ key: 'intruder.jpg', id: '32', model: 'm', profile: 'p' }]);

      await expect(marking).rejects.toBeInstanceOf(ConflictError);
      await expect(marking).rejects.toThrow(/already belongs to 'owner.jpg'/);
      expect((await catalogue.getByIds(['32'])).get('32')?.key).toBe('owner.jpg');
      expect(await catalogue.get('intruder.jpg')).toBeUndefined();
    });

    it('claims ids without recording a state, and reports a collision', async () => {
      await catalogue.markPending([{ key: 'owner.jpg', id: '51' }]);
      const claimed = entry('c/new.jpg');

      const results = await catalogue.claimIds([
        claimed,
        { key: 'c/intruder.jpg', id: '51' },
        { key: 'owner.jpg', id: '51' },
      ]);
      const [taken] = await catalogue.markPending([{ key: 'c/other.jpg', id: claimed.id }]);

      expect(results).toEqual([{ ok: true }, { ok: false, ownerKey: 'owner.jpg' }, { ok: true }]);
      expect(taken).toEqual({ ok: false, ownerKey: 'c/new.jpg' });
      expect(await catalogue.get('c/new.jpg')).toBeUndefined();
      expect(await catalogue.get('c/intruder.jpg')).toBeUndefined();
      expect(await catalogue.progress(0)).toMatchObject({ total: 1, pending: 1, indexed: 0, failed: 0 });
    });

    it('records the outcome of a claimed image as its first record, as the worker does', async () => {
      const [good, bad] = [entry('w/good.jpg'), entry('w/bad.jpg')];
      await catalogue.getMany([good.key, bad.key]);
      await catalogue.claimIds([good, bad]);

      await catalogue.markIndexed([{ ...good, etag: 'e1', model: 'm', profile: 'p' }]);
      await catalogue.markFailed({ ...bad, reason: 'corrupt: not a JPEG' });

      expect(await catalogue.get(good.key)).toMatchObject({ state: 'indexed', etag: 'e1', id: good.id });
      expect(await catalogue.get(bad.key)).toMatchObject({ state: 'failed', reason: 'corrupt: not a JPEG' });
      expect((await catalogue.getByIds([good.id])).get(good.id)?.key).toBe(good.key);
      expect(await catalogue.progress(5)).toMatchObject({
        total: 2,
        pending: 0,
        indexed: 1,
        failed: 1,
        recentlyIndexed: 1,
      });
    });

    it('lands marks right when another process changed the records after this one read them', async () => {
      const [created, removed] = [entry('s/created.jpg'), entry('s/removed.jpg')];
      await fixture.otherProcess.markPending([removed]);
      await catalogue.getMany([created.key, removed.key]);
      await catalogue.claimIds([created]);
      // Meanwhile another process queues one image and removes the other.
      await fixture.otherProcess.markPending([created]);
      await fixture.otherProcess.remove([removed.key], versionNow());

      await catalogue.markIndexed([created, removed].map((e) => ({ ...e, model: 'm', profile: 'p' })));

      expect((await catalogue.get(created.key))?.state).toBe('indexed');
      expect((await catalogue.get(removed.key))?.state).toBe('indexed');
      expect(await catalogue.progress(0)).toMatchObject({ total: 2, pending: 0, indexed: 2, failed: 0 });
    });

    it('looks up many keys at once, leaving unknown keys out', async () => {
      await catalogue.markPending([entry('k/1.jpg'), entry('k/2.jpg')]);
      await catalogue.markIndexed([{ ...entry('k/2.jpg'), model: 'm', profile: 'p' }]);

      const records = await catalogue.getMany(['k/1.jpg', 'k/2.jpg', 'k/unknown.jpg', 'k/1.jpg']);

      expect([...records.keys()].sort()).toEqual(['k/1.jpg', 'k/2.jpg']);
      expect(records.get('k/1.jpg')).toMatchObject({ key: 'k/1.jpg', state: 'pending' });
      expect(records.get('k/2.jpg')).toMatchObject({ key: 'k/2.jpg', state: 'indexed', model: 'm' });
    });

    it('looks up many ids at once, leaving unknown ids out', async () => {
      const keys = ['x/1.jpg', 'x/2.jpg', 'y/3.jpg'];
      for (const key of keys) await catalogue.markPending([entry(key)]);
      await catalogue.markIndexed([{ ...entry('x/1.jpg'), model: 'm', profile: 'p' }]);

      const found = await catalogue.getByIds([...keys.map(vectorIdOf), '123456789']);
      const none = await catalogue.getByIds([]);

      expect(found.size).toBe(3);
      for (const key of keys) expect(found.get(vectorIdOf(key))?.key).toBe(key);
      expect(found.get(vectorIdOf('x/1.jpg'))?.state).toBe('indexed');
      expect(found.has('123456789')).toBe(false);
      expect(none.size).toBe(0);
    });

    it('lists every record, or those whose key starts with a prefix', async () => {
      const keys = ['a/1.jpg', 'a/2.jpg', 'a/b/3.jpg', 'ab.jpg', 'b/4.jpg', 'ü/5.jpg'];
      for (const key of keys) await catalogue.markPending([entry(key)]);

      const all = await keysOf(catalogue.list());
      const underA = await keysOf(catalogue.list('a/'));
      const none = await keysOf(catalogue.list('zzz/'));

      expect(all).toEqual([...keys].sort());
      expect(underA).toEqual(['a/1.jpg', 'a/2.jpg', 'a/b/3.jpg']);
      expect(none).toEqual([]);
    });

    it('lists more records than fit in one page', async () => {
      const keys = Array.from(
        { length: 2 * CONTRACT_PAGE_SIZE + 20 },
        (_, i) => `many/${String(i).padStart(4, '0')}.jpg`,
      );
      for (const key of keys) await catalogue.markPending([entry(key)]);

      const listed = await keysOf(catalogue.list('many/'));

      expect(listed).toEqual(keys);
    });

    it('removes records and frees their ids', async () => {
      await catalogue.markPending([{ key: 'old.jpg', id: '99' }]);
      await catalogue.markPending([entry('keep.jpg')]);

      await catalogue.remove(['old.jpg', 'never-there.jpg'], versionNow());
      const [reclaim] = await catalogue.markPending([{ key: 'new.jpg', id: '99' }]);

      expect(await catalogue.get('old.jpg')).toBeUndefined();
      expect(reclaim).toEqual({ ok: true });
      expect(await keysOf(catalogue.list())).toEqual(['keep.jpg', 'new.jpg']);
    });

    it("removes a delete-all's leftovers as listed, keeps one rewritten since, frees their ids and moves the counts", async () => {
      const pending = entry('l/pending.jpg');
      const indexed = entry('l/indexed.jpg');
      const rewritten = entry('l/rewritten.jpg');
      await catalogue.markPending([pending, indexed, rewritten]);
      await catalogue.markIndexed([{ ...indexed, model: 'm', profile: 'p' }]);
      // The loser of a collision: failed, under an id another key owns.
      await catalogue.markFailed({ key: 'l/loser.jpg', id: rewritten.id, reason: 'collision' });
      const listed: ImageRecord[] = [];
      for await (const record of catalogue.list('l/')) listed.push(record);
      await sleep(5);
      // Another process (a worker) writes one of them again after the cleanup listed it.
      await fixture.otherProcess.markIndexed([{ ...rewritten, model: 'm', profile: 'p' }]);

      const removed = await catalogue.removeLeftovers(listed);

      expect(removed.sort()).toEqual(['l/indexed.jpg', 'l/loser.jpg', 'l/pending.jpg']);
      expect(await keysOf(catalogue.list())).toEqual(['l/rewritten.jpg']);
      expect(await catalogue.progress(0)).toMatchObject({ total: 1, pending: 0, indexed: 1, failed: 0 });
      expect(await catalogue.markPending([{ key: 'l/other.jpg', id: pending.id }])).toEqual([{ ok: true }]);
      expect(await catalogue.markPending([{ key: 'l/another.jpg', id: rewritten.id }])).toEqual([
        { ok: false, ownerKey: 'l/rewritten.jpg' },
      ]);
    });

    it('refuses a late write of an older version after a newer one, also from another process', async () => {
      const image = entry('v/late.jpg');
      const [older, newer] = [versionNow(), versionNow()];
      // This process read the key (and claimed its id) before the other process wrote the newer version:
      // what it remembers of the key is out of date when its older write comes.
      await catalogue.getMany([image.key]);
      await catalogue.claimIds([image]);
      await fixture.otherProcess.markIndexed([
        { ...image, etag: 'new', model: 'm', profile: 'p', version: newer },
      ]);

      const staleIndexed = await catalogue.markIndexed([
        { ...image, etag: 'old', model: 'm', profile: 'p', version: older },
      ]);
      const staleFailed = await catalogue.markFailed({
        ...image,
        reason: 'old bytes corrupt',
        version: older,
      });
      const sameAgain = await catalogue.markIndexed([
        { ...image, etag: 'new', model: 'm', profile: 'p', version: newer },
      ]);

      expect(staleIndexed).toEqual([image.key]);
      expect(staleFailed).toBe(false);
      expect(sameAgain).toEqual([]);
      expect(await catalogue.get(image.key)).toMatchObject({ state: 'indexed', etag: 'new', version: newer });
      expect(await catalogue.progress(5)).toMatchObject({
        total: 1,
        indexed: 1,
        failed: 0,
        recentFailures: [],
      });
    });

    it("refuses a late upsert older than a delete's tombstone, and takes a newer one", async () => {
      const image = entry('v/deleted.jpg');
      const [lookBeforeDelete, deleted, lookAfter] = [versionNow(), versionNow(), versionNow()];
      await catalogue.markIndexed([
        { ...image, etag: 'e1', model: 'm', profile: 'p', version: lookBeforeDelete },
      ]);
      await fixture.otherProcess.remove([image.key], deleted);

      const resurrected = await catalogue.markIndexed([
        { ...image, etag: 'e1', model: 'm', profile: 'p', version: lookBeforeDelete },
      ]);
      const failedLate = await catalogue.markFailed({ ...image, reason: 'late', version: lookBeforeDelete });
      const afterTombstone = {
        record: await catalogue.get(image.key),
        many: await catalogue.getMany([image.key]),
        byId: await catalogue.getByIds([image.id]),
        listed: await keysOf(catalogue.list('v/')),
        progress: await catalogue.progress(5),
        versions: await catalogue.versions([image.key]),
      };
      const putBack = await catalogue.markIndexed([
        { ...image, etag: 'e2', model: 'm', profile: 'p', version: lookAfter },
      ]);

      expect(resurrected).toEqual([image.key]);
      expect(failedLate).toBe(false);
      expect(afterTombstone).toEqual({
        record: undefined,
        many: new Map(),
        byId: new Map(),
        listed: [],
        progress: expect.objectContaining({
          total: 0,
          pending: 0,
          indexed: 0,
          failed: 0,
          recentFailures: [],
        }),
        versions: new Map([[image.key, deleted]]),
      });
      expect(putBack).toEqual([]);
      expect(await catalogue.get(image.key)).toMatchObject({
        state: 'indexed',
        etag: 'e2',
        version: lookAfter,
      });
      expect(await catalogue.progress(0)).toMatchObject({ total: 1, indexed: 1 });
    });

    it('leaves a tombstone for a key it never recorded, and refuses a removal older than the record', async () => {
      const [never, kept] = [entry('v/never.jpg'), entry('v/kept.jpg')];
      const [lookBefore, deleted, olderRemoval, newerLook] = [
        versionNow(),
        versionNow(),
        versionNow(),
        versionNow(),
      ];
      await catalogue.markIndexed([{ ...kept, etag: 'k', model: 'm', profile: 'p', version: newerLook }]);

      const refused = await catalogue.remove([never.key, kept.key], deleted);
      const refusedAgain = await catalogue.remove([kept.key], olderRemoval);
      const late = await catalogue.markIndexed([
        { ...never, etag: 'n', model: 'm', profile: 'p', version: lookBefore },
      ]);

      expect(refused).toEqual([kept.key]);
      expect(refusedAgain).toEqual([kept.key]);
      expect(late).toEqual([never.key]);
      expect(await catalogue.get(never.key)).toBeUndefined();
      expect(await catalogue.get(kept.key)).toMatchObject({ state: 'indexed', version: newerLook });
      expect(await catalogue.versions([never.key, kept.key, 'v/unknown.jpg'])).toEqual(
        new Map([
          [never.key, deleted],
          [kept.key, newerLook],
        ]),
      );
      expect(await catalogue.progress(0)).toMatchObject({ total: 1, indexed: 1 });
    });

    it('marks a removed key pending again without forgetting its tombstone version', async () => {
      const image = entry('v/again.jpg');
      const [lookBefore, deleted] = [versionNow(), versionNow()];
      await catalogue.remove([image.key], deleted);

      const [claim] = await catalogue.markPending([{ ...image, etag: 'again' }]);
      const late = await catalogue.markIndexed([{ ...image, model: 'm', profile: 'p', version: lookBefore }]);

      expect(claim).toEqual({ ok: true });
      expect(late).toEqual([image.key]);
      expect(await catalogue.get(image.key)).toMatchObject({ state: 'pending', etag: 'again' });
      expect(await catalogue.progress(0)).toMatchObject({ total: 1, pending: 1 });
    });

    it('clears everything', async () => {
      for (const key of ['1', '2', '3']) await catalogue.markPending([entry(key)]);
      await catalogue.markFailed({ ...entry('3'), reason: 'bad' });

      await catalogue.clear();

      expect(await keysOf(catalogue.list())).toEqual([]);
      expect(await catalogue.progress(5)).toMatchObject({
        total: 0,
        pending: 0,
        indexed: 0,
        failed: 0,
        recentFailures: [],
      });
      expect((await catalogue.getByIds([vectorIdOf('1')])).size).toBe(0);
    });
  });
}
