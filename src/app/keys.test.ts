import { describe, expect, it } from 'vitest';
import { ValidationError } from '../domain/errors.ts';
import { isIndexableKey, keyProblem, keyUnder, normalisePrefix, validKey } from './keys.ts';

describe('the key rule', () => {
  it.each([
    ['', /empty/],
    ['/etc/passwd', /starts with "\/"/],
    ['a/../b.jpg', /"\.\." segment/],
    ['./b.jpg', /"\." or/],
    ['a//b.jpg', /empty segment/],
    ['a\\b.jpg', /backslash/],
    ['a\u0000.jpg', /control character/],
    ['a\nb.jpg', /control character/],
    ['x'.repeat(1025), /over 1024 bytes/],
  ])('refuses %j with the reason', (key, reason) => {
    expect(keyProblem(key)).toMatch(reason);
    expect(() => validKey(key)).toThrow(ValidationError);
  });

  it.each(['a.jpg', 'holiday 2024/ünïcödé $(x) & y.jpg', 'a/b/c..d.jpg', '100%_off.png'])(
    'takes %j',
    (key) => {
      expect(validKey(key)).toBe(key);
    },
  );

  it('indexes only image keys that follow the rule', () => {
    expect(isIndexableKey('a/b.jpg')).toBe(true);
    expect(isIndexableKey('a/b.txt')).toBe(false);
    expect(isIndexableKey('a/../b.jpg')).toBe(false);
  });
});

describe('prefixes', () => {
  it('adds the missing slash, so "holiday" + "x.jpg" is "holiday/x.jpg"', () => {
    expect(normalisePrefix('holiday')).toBe('holiday/');
    expect(normalisePrefix('holiday/')).toBe('holiday/');
    expect(keyUnder('holiday', 'x.jpg')).toBe('holiday/x.jpg');
    expect(keyUnder('holiday/', 'x.jpg')).toBe('holiday/x.jpg');
  });

  it('leaves no prefix as none', () => {
    expect(normalisePrefix(undefined)).toBe('');
    expect(normalisePrefix('')).toBe('');
    expect(keyUnder(undefined, '2024/x.jpg')).toBe('2024/x.jpg');
  });

  it.each(['../', '..', 'a/../', '/etc', 'a//b', 'a\\b'])('refuses the prefix %j', (prefix) => {
    expect(() => normalisePrefix(prefix)).toThrow(/not a valid prefix/);
  });

  it('refuses a file name that climbs out of its prefix', () => {
    expect(() => keyUnder('uploads/', '../../x.jpg')).toThrow(
      /not a valid file name: it has a "\." or "\.\." segment/,
    );
  });
});
