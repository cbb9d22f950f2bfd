import { describe, expect, it } from 'vitest';
import { createPrng } from './prng.ts';
import { learnWhitening, principalComponents, symmetricEigen, whiteningOf } from './whitening.ts';

describe('symmetricEigen', () => {
  it('diagonalises a symmetric matrix: A v = λ v for every pair', () => {
    const n = 6;
    const random = createPrng(1);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = random() - 0.5;
    const { values, vectors } = symmetricEigen(a, n);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < n; i++) {
        let product = 0;
        for (let j = 0; j < n; j++) product += (a[i * n + j] as number) * (vectors[j * n + k] as number);
        expect(product).toBeCloseTo((values[k] as number) * (vectors[i * n + k] as number), 9);
      }
    }
  });
});

describe('learnWhitening', () => {
  it('centres the descriptors and decorrelates them onto the leading directions', () => {
    // Prepare: 3-d points stretched along (1, 1, 0) around a mean of (1, 2, 3).
    const random = createPrng(2);
    const points = Array.from({ length: 400 }, () => {
      const along = (random() - 0.5) * 10;
      const across = random() - 0.5;
      return Float32Array.of(1 + along + across, 2 + along - across, 3 + (random() - 0.5) * 0.1);
    });

    // Act
    const { mean, projection } = learnWhitening(points, { dimension: 2, shrinkage: 1, power: 0.5 });

    // Assess
    expect(Array.from(mean).map((m) => Math.round(m))).toEqual([1, 2, 3]);
    expect(projection).toHaveLength(2 * 3);
    // The first row points along (1, 1, 0) (up to scale), the second along (1, -1, 0).
    const [a0, a1, a2] = projection.subarray(0, 3);
    expect((a0 as number) / (a1 as number)).toBeCloseTo(1, 1);
    expect(Math.abs(a2 as number)).toBeLessThan(Math.abs(a0 as number) / 10);
    const [b0, b1] = projection.subarray(3, 6);
    expect((b0 as number) / (b1 as number)).toBeCloseTo(-1, 1);
  });

  it('scales direction k by (λ_k + shrinkage × mean λ)^−power: full whitening gives unit variance, a gentler one amplifies weak directions less', () => {
    // Prepare: independent axes with standard deviations 10, 1 and 0.1.
    const random = createPrng(3);
    const spreads = [10, 1, 0.1];
    const points = Array.from({ length: 2000 }, () =>
      Float32Array.from(spreads, (s) => (random() - 0.5) * s),
    );
    const components = principalComponents(points);
    const outputSpread = (shrinkage: number, power: number) => {
      const { mean, projection } = whiteningOf(components, { dimension: 3, shrinkage, power });
      return [0, 1, 2].map((row) => {
        const values = points.map((p) =>
          [0, 1, 2].reduce(
            (sum, i) => sum + (projection[row * 3 + i] as number) * ((p[i] as number) - (mean[i] as number)),
            0,
          ),
        );
        return Math.sqrt(values.reduce((sum, v) => sum + v * v, 0) / values.length);
      });
    };

    // Act
    const full = outputSpread(0, 0.5);
    const gentle = outputSpread(4, 0.25);

    // Assess: full whitening equalises the directions; the weakest is amplified 100× relative to the
    // strongest by it, and far less by the gentle one, whose scales follow the formula.
    for (const spread of full) expect(spread).toBeCloseTo(1, 2);
    const meanValue = components.values.reduce((sum, v) => sum + v, 0) / 3;
    const scale = (k: number) => ((components.values[k] as number) + 4 * meanValue) ** -0.25;
    for (const k of [0, 1, 2])
      expect(gentle[k] as number).toBeCloseTo(Math.sqrt(components.values[k] as number) * scale(k), 4);
    expect(scale(2) / scale(0)).toBeLessThan(2);
  });
});
