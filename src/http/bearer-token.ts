import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * The API's one bearer scheme (the cloud authorizer and the local server): true when the
 * `Authorization` header is `Bearer <expected>`. Compared in constant time: the digests have equal length
 * whatever the lengths of the tokens.
 */
export function tokenMatches(header: string | undefined, expected: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1] || expected.length === 0) return false;
  return timingSafeEqual(digest(match[1]), digest(expected));
}
