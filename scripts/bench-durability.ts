/**
 * What durable writes cost the embedded ingest path: the SQLite catalogue and queue with synchronous=FULL
 * against NORMAL, and the folder object store's fsynced put against a plain write and rename. Each round
 * runs the write pattern of one worker batch per image batch (queue send, mark pending, receive,
 * read records, mark indexed, put thumbnails, ack) on a fresh data folder on the working disk; the last
 * setting adds what last-write-wins by version costs (the versions read before committing, and each
 * record write checked against the key's version in its transaction).
 *
 *   npm run bench:durability -- [--batches 40] [--batch-size 16] [--rounds 5] [--dir /path/on/the/disk]
 *
 * Prints the median per-image milliseconds of each setting and the difference.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { FolderObjectStore } from '../src/adapters/embedded/folder-object-store.ts';
import { sqliteDurability } from '../src/adapters/embedded/sqlite.ts';
import { SqliteCatalogue } from '../src/adapters/embedded/sqlite-catalogue.ts';
import { SqliteJobQueue } from '../src/adapters/embedded/sqlite-job-queue.ts';
import { versionNow } from '../src/domain/versions.ts';
import { median } from './bench-support.ts';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '40' },
    'batch-size': { type: 'string', default: '16' },
    rounds: { type: 'string', default: '5' },
    dir: { type: 'string', default: process.cwd() },
  },
});
const batches = Number(values.batches);
const batchSize = Number(values['batch-size']);
const rounds = Number(values.rounds);
/** About the size of a WebP thumbnail (README: 8.4 KB on average). */
const THUMBNAIL = randomBytes(8 * 1024);

type Writer = (folder: string, key: string) => Promise<void>;

const fsyncedPut =
  (store: FolderObjectStore): Writer =>
  async (_folder, key) => {
    await store.put(key, THUMBNAIL);
  };

/** The put without fsync, as it was: write a temporary file, rename it over the key. */
const plainPut: Writer = async (folder, key) => {
  const path = join(folder, key);
  await writeFile(`${path}.tmp`, THUMBNAIL);
  await rename(`${path}.tmp`, path);
};

async function round(synchronous: 'FULL' | 'NORMAL', fsync: boolean, versioned: boolean): Promise<number> {
  const dir = await mkdtemp(join(values.dir, '.bench-durability-'));
  sqliteDurability.synchronous = synchronous;
  const queue = new SqliteJobQueue(join(dir, 'queue.db'));
  const catalogue = new SqliteCatalogue(join(dir, 'catalogue.db'));
  const thumbnails = new FolderObjectStore(join(dir, 'thumbnails'));
  await thumbnails.put('warm-up.webp', THUMBNAIL);
  const put = fsync ? fsyncedPut(thumbnails) : plainPut;
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    const entries = Array.from({ length: batchSize }, (_, i) => {
      const key = `photo-${b}-${i}.jpg`;
      return { key, id: String(b * batchSize + i + 1), etag: `e${b}-${i}` };
    });
    await queue.send(entries.map(({ key, etag }) => ({ kind: 'upsert', key, etag })));
    await catalogue.markPending(entries);
    const received = await queue.receive(batchSize, 0);
    const version = versioned ? versionNow() : undefined;
    await catalogue.getMany(entries.map((entry) => entry.key));
    if (versioned) await catalogue.versions(entries.map((entry) => entry.key));
    await catalogue.markIndexed(entries.map((entry) => ({ ...entry, model: 'm', profile: 'p', version })));
    await Promise.all(entries.map((entry) => put(join(dir, 'thumbnails'), `${entry.key}.webp`)));
    await queue.ack(received.map((message) => message.receipt));
  }
  const msPerImage = (performance.now() - started) / (batches * batchSize);
  queue.close();
  catalogue.close();
  await rm(dir, { recursive: true, force: true });
  return msPerImage;
}

const settings = [
  { name: 'NORMAL, no fsync (before)', synchronous: 'NORMAL', fsync: false, versioned: false },
  { name: 'NORMAL, no fsync + versions', synchronous: 'NORMAL', fsync: false, versioned: true },
  { name: 'FULL, no fsync', synchronous: 'FULL', fsync: false, versioned: false },
  { name: 'FULL + fsynced files', synchronous: 'FULL', fsync: true, versioned: false },
  { name: 'FULL + fsync + versions (now)', synchronous: 'FULL', fsync: true, versioned: true },
] as const;
const results = new Map<string, number[]>(settings.map((s) => [s.name, []]));
// Interleaved so that a neighbour's load on the machine falls on every setting alike.
for (let r = 0; r < rounds; r++) {
  for (const s of settings) results.get(s.name)?.push(await round(s.synchronous, s.fsync, s.versioned));
}
console.log(`${batches} batches of ${batchSize} images, ${rounds} rounds, data folder under ${values.dir}`);
const base = median(results.get(settings[0].name) ?? []);
for (const s of settings) {
  const ms = median(results.get(s.name) ?? []);
  console.log(`${s.name.padEnd(30)} ${ms.toFixed(3)} ms per image (median)  +${(ms - base).toFixed(3)} ms`);
}
