import { describe, expect, it } from 'vitest';
import { float16Bits } from './float16.ts';

describe('float16Bits', () => {
  it('encodes exact, rounded, subnormal, overflowing and special values like IEEE binary16', () => {
    // Prepare: expected bit patterns from the binary16 definition (1 sign, 5 exponent, 10 mantissa bits).
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds up past the largest finite value
      [1e6, 0x7c00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // halfway to zero: ties to even
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even
      [1 + 3 * 2 ** -11, 0x3c02],
      [Number.POSITIVE_INFINITY, 0x7c00],
    ];

    // Act
    const actual = cases.map(([value]) => float16Bits(value));

    // Assess
    expect(actual).toEqual(cases.map(([, bits]) => bits));
    expect(float16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(float16Bits(Number.NaN) & 0x3ff).not.toBe(0);
  });
});
