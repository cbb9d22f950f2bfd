import { describe, expect, it } from 'vitest';
import { vectorIdOf } from './ids.ts';

describe('vectorIdOf', () => {
  it('is stable for the same key', () => {
    expect(vectorIdOf('photos/cat.jpg')).toBe(vectorIdOf('photos/cat.jpg'));
  });

  it('matches a value computed independently (sha256 → first 8 bytes → clear sign bit)', () => {
    // sha256("a") = ca978112ca1bbdca…; 0xca978112ca1bbdca & 0x7fff… = 0x4a978112ca1bbdca
    expect(vectorIdOf('a')).toBe(BigInt('0x4a978112ca1bbdca').toString());
  });

  it('is a positive int64 for many keys, including unicode and spaces', () => {
    for (const key of ['x', 'with space.jpg', 'ünïcødé/猫.png', '$(rm -rf)*.jpg']) {
      const id = BigInt(vectorIdOf(key));
      expect(id >= 0n && id < 1n << 63n).toBe(true);
    }
  });

  it('differs for different keys', () => {
    expect(vectorIdOf('a.jpg')).not.toBe(vectorIdOf('b.jpg'));
  });
});
