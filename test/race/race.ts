/**
 * The randomized race of docs/consistency.md, for any deployment: random puts, overwrites with valid or
 * corrupt bytes, deletes, re-puts and renames on a few dozen keys with random delays, then, once the
 * system has settled, every way the index and catalogue disagree with the bucket. Seeded: a failure
 * repeats with the same seed. Targets: embedded-race.ts (the service over HTTP), test/cloud/race.test.ts.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ImageRecord } from '../../src/domain/ports.ts';
import { SAMPLE_PHOTOS_DIR } from '../../src/sample-photos.ts';

/** A deployment under test: how to change its bucket and how to read its index and catalogue. */
export interface RaceTarget {
  /** `via` picks between the target's ways to write (0 ≤ via < 1), e.g. the API or the bucket itself. */
  put(key: string, body: Buffer, options: { valid: boolean; via: number }): Promise<void>;
  delete(key: string, via: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Resolves once the system has nothing left to do. */
  settle(): Promise<void>;
  count(): Promise<number>;
  progress(): Promise<{ indexed: number; failed: number; pending: number }>;
  search(body: Buffer, topK: number): Promise<{ key: string; score: number }[]>;
  records(): AsyncIterable<ImageRecord>;
  /** The object's current version; undefined when absent. */
  etagOf(key: string): Promise<string | undefined>;
}

export interface RaceOptions {
  seed: number;
  operations: number;
  keys: number;
  /** Prefix of the keys, e.g. 'race/' or 'images/race/'. */
  prefix: string;
  /** Longest random pause between two operations. @default 300 */
  maxDelayMs?: number;
}

export interface RaceReport {
  seed: number;
  operations: number;
  byKind: Record<string, number>;
  /** Valid and corrupt files in the bucket at the end. */
  valid: number;
  corrupt: number;
  /** Each way the system disagreed with the bucket after settling: must be empty. */
  divergences: string[];
  settleMs: number;
  /** What was done, one line an operation, for reading a failure. */
  journal: string[];
}

/** What each key holds: the content's number in the pool, or corrupt bytes. */
export type Content = { kind: 'valid'; content: number } | { kind: 'corrupt' };

/** mulberry32: a small seeded generator, so a run is repeated exactly by its seed. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Distinct valid photos: each sample photo small, as it is, mirrored, upside down and in grey. */
export async function contentPool(): Promise<Buffer[]> {
  const names = (await readdir(SAMPLE_PHOTOS_DIR)).filter((name) => name.endsWith('.jpg')).sort();
  const pool: Buffer[] = [];
  for (const name of names) {
    const small = sharp(await readFile(join(SAMPLE_PHOTOS_DIR, name))).resize(320, 320, { fit: 'inside' });
    pool.push(
      await small.clone().jpeg().toBuffer(),
      await small.clone().flop().jpeg().toBuffer(),
      await small.clone().rotate(180).jpeg().toBuffer(),
      await small.clone().grayscale().jpeg().toBuffer(),
    );
  }
  return pool;
}

export async function runRace(target: RaceTarget, pool: Buffer[], options: RaceOptions): Promise<RaceReport> {
  const { seed, maxDelayMs = 300 } = options;
  const random = seeded(seed);
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)] as T;
  const corruptBytes = [
    Buffer.from('a shopping list, not a photo'),
    (pool[0] as Buffer).subarray(0, 1500),
    Buffer.alloc(0),
  ];
  const state = new Map<string, Content>();
  const byKind: Record<string, number> = {};
  const journal: string[] = [];
  const keys = Array.from(
    { length: options.keys },
    (_, i) => `${options.prefix}k${String(i).padStart(3, '0')}.jpg`,
  );
  const freshContent = () => {
    const used = new Set([...state.values()].flatMap((c) => (c.kind === 'valid' ? [c.content] : [])));
    return pick(pool.map((_, i) => i).filter((i) => !used.has(i)));
  };

  for (let done = 0; done < options.operations; done++) {
    const key = pick(keys);
    const roll = random();
    let kind: string;
    if (!state.has(key)) kind = roll < 0.85 ? 'put' : 'put corrupt';
    else if (roll < 0.3) kind = 'overwrite valid';
    else if (roll < 0.45) kind = 'overwrite corrupt';
    else if (roll < 0.75) kind = 'delete';
    else kind = 'rename';
    let note = '';
    switch (kind) {
      case 'put':
      case 'overwrite valid': {
        const content = freshContent();
        await target.put(key, pool[content] as Buffer, { valid: true, via: random() });
        state.set(key, { kind: 'valid', content });
        break;
      }
      case 'put corrupt':
      case 'overwrite corrupt':
        await target.put(key, pick(corruptBytes), { valid: false, via: random() });
        state.set(key, { kind: 'corrupt' });
        break;
      case 'delete':
        await target.delete(key, random());
        state.delete(key);
        break;
      case 'rename': {
        const to = pick(keys.filter((k) => k !== key));
        await target.rename(key, to);
        state.set(to, state.get(key) as Content);
        state.delete(key);
        note = ` onto ${to}`;
        break;
      }
    }
    byKind[kind] = (byKind[kind] ?? 0) + 1;
    journal.push(`${new Date().toISOString()} ${kind} ${key}${note}`);
    // Bursts (no pause) and pauses up to maxDelayMs, so jobs overlap writes in every phase.
    if (random() < 0.7) await new Promise((resume) => setTimeout(resume, random() * maxDelayMs));
  }
  const started = Date.now();
  await target.settle();
  const settleMs = Date.now() - started;
  const valid = [...state.values()].filter((c) => c.kind === 'valid').length;
  return {
    seed,
    operations: options.operations,
    byKind,
    valid,
    corrupt: state.size - valid,
    divergences: await divergences(target, state, pool),
    settleMs,
    journal,
  };
}

/** Every way the settled system disagrees with the bucket, which holds `state` (pool contents by key). */
export async function divergences(
  target: Pick<RaceTarget, 'count' | 'progress' | 'search' | 'records' | 'etagOf'>,
  state: Map<string, Content>,
  pool: Buffer[],
): Promise<string[]> {
  const found: string[] = [];
  const valid = [...state].flatMap(([key, c]) => (c.kind === 'valid' ? [[key, c.content] as const] : []));
  const corrupt = [...state].filter(([, c]) => c.kind === 'corrupt').length;
  const count = await target.count();
  if (count !== valid.length) found.push(`count is ${count}, the bucket holds ${valid.length} valid files`);
  const progress = await target.progress();
  if (progress.indexed !== valid.length || progress.failed !== corrupt || progress.pending !== 0) {
    found.push(
      `progress says indexed ${progress.indexed}, failed ${progress.failed}, pending ${progress.pending}; ` +
        `the bucket holds ${valid.length} valid and ${corrupt} corrupt files`,
    );
  }
  for (const [key, content] of valid) {
    const [first] = await target.search(pool[content] as Buffer, 1);
    if (first?.key !== key || first.score < 0.999) {
      found.push(`${key}: its own bytes found ${first ? `${first.key} at ${first.score}` : 'nothing'}`);
    }
  }
  // topK 100 ≥ every key: one search returns every vector in the index.
  const validKeys = new Set(valid.map(([key]) => key));
  for (const hit of await target.search(pool[0] as Buffer, 100)) {
    if (!validKeys.has(hit.key)) found.push(`${hit.key}: returned, but the bucket holds no valid file there`);
  }
  const recorded = new Set<string>();
  for await (const record of target.records()) {
    recorded.add(record.key);
    const content = state.get(record.key);
    const etag = await target.etagOf(record.key);
    if (!content) found.push(`${record.key}: a ${record.state} record for a missing file`);
    else if (content.kind === 'valid' && (record.state !== 'indexed' || record.etag !== etag)) {
      found.push(
        `${record.key}: record ${record.state} (etag ${record.etag}), the file is valid (etag ${etag})`,
      );
    } else if (content.kind === 'corrupt' && record.state !== 'failed') {
      found.push(`${record.key}: record ${record.state}, the file is corrupt`);
    }
  }
  for (const key of state.keys()) if (!recorded.has(key)) found.push(`${key}: no record`);
  return found;
}
