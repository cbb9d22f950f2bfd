import { createHash } from 'node:crypto';
import type { ImageRecord } from './ports.ts';

const SIGN_BIT_CLEAR = (1n << 63n) - 1n;

/**
 * The vector id of an object key: the first 8 bytes of SHA-256(key) with the sign bit cleared, so it is
 * a positive int64 (Milvus's primary key type). Returned as a decimal string because JS numbers lose
 * precision above 2^53. Stable across processes and machines, so a re-delivered object overwrites.
 */
export function vectorIdOf(key: string): string {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  return (digest.readBigUInt64BE(0) & SIGN_BIT_CLEAR).toString();
}

/**
 * Whether a record shows its key owning the record's id: ids are claimed before a pending or indexed
 * record is written, while a failed one may be the loser of a hash collision (see the Catalogue port).
 */
export function ownsItsId(record: Pick<ImageRecord, 'state'>): boolean {
  return record.state === 'pending' || record.state === 'indexed';
}

/** One spelling of an unordered pair of vector ids: "a,b" with a before b. */
export function pairKey(a: string, b: string): string {
  return a < b ? `${a},${b}` : `${b},${a}`;
}
