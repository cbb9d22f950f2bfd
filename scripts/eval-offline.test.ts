import { describe, expect, it } from 'vitest';
import { exactCopies } from './eval-offline.ts';

const unit = (...values: number[]) => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (v) => v / norm);
};

describe('exact copies across precisions', () => {
  it('scores each int8 vector against its own fp32 vector and the best other one', () => {
    const fp32 = [unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)];
    // Photo 0's int8 vector drifts towards photo 1 but stays closer to itself; photo 2's crosses over.
    const int8 = [unit(0.9, 0.3, 0), unit(0, 1, 0), unit(0, 0.8, 0.6)];
    const copies = exactCopies(fp32, int8, 0.7);
    expect(copies).toMatchObject({ photos: 3, first: 2, duplicates: 2 });
    expect(copies.ownMin).toBeCloseTo(0.6, 5);
    expect(copies.impostorMax).toBeCloseTo(0.8, 5);
  });

  it('refuses vectors of different photos', () => {
    expect(() => exactCopies([unit(1, 0)], [unit(1, 0)], 0.5)).toThrow(/two at least/);
    expect(() => exactCopies([unit(1, 0), unit(0, 1)], [unit(1, 0)], 0.5)).toThrow(/same photos/);
  });
});
