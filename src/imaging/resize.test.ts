import { describe, expect, it } from 'vitest';
import { resizeNearestLikePillow } from './resize.ts';

/** One channel whose value is its own index, so the output lists the source pixels picked. */
function indexImage(width: number, height: number): Uint8Array {
  return Uint8Array.from({ length: width * height }, (_, i) => i);
}

describe('resizeNearestLikePillow', () => {
  it('picks the source pixel under each target pixel centre, truncated', () => {
    // 5 → 2: scale 2.5, centres at 1.25 and 3.75 → columns 1 and 3.
    expect([...resizeNearestLikePillow(indexImage(5, 1), 5, 1, 1, 2, 1)]).toEqual([1, 3]);
    // 3 → 2: scale 1.5, centres at 0.75 and 2.25 → columns 0 and 2.
    expect([...resizeNearestLikePillow(indexImage(3, 1), 3, 1, 1, 2, 1)]).toEqual([0, 2]);
  });

  it('repeats pixels when enlarging', () => {
    // 2 → 5: scale 0.4, centres at 0.2, 0.6, 1.0, 1.4, 1.8 → 0, 0, 1, 1, 1.
    expect([...resizeNearestLikePillow(indexImage(1, 2), 1, 2, 1, 1, 5)]).toEqual([0, 0, 1, 1, 1]);
  });

  it('samples rows and columns independently and keeps channels together', () => {
    const rgb = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i);

    const out = resizeNearestLikePillow(rgb, 4, 4, 3, 2, 2);

    // 4 → 2: centres at 1.0 and 3.0 → rows/columns 1 and 3; pixel (x, y) starts at (y × 4 + x) × 3.
    const pixel = (x: number, y: number) => [0, 1, 2].map((c) => (y * 4 + x) * 3 + c);
    expect([...out]).toEqual([...pixel(1, 1), ...pixel(3, 1), ...pixel(1, 3), ...pixel(3, 3)]);
  });

  it('follows the running sum, not (x + 0.5) × scale, at exact boundaries', () => {
    // 192 → 224: scale 6/7. Target x = 45 sits on an exact boundary, 45.5 × 6/7 = 39, which the running
    // sum reaches from below (38.999999999999986) and truncates to 38; Pillow 11.3 gives 38 too.
    const out = resizeNearestLikePillow(indexImage(192, 1), 192, 1, 1, 224, 1);

    expect(out[45]).toBe(38);
    expect(Math.trunc(45.5 * (192 / 224))).toBe(39);
  });
});
