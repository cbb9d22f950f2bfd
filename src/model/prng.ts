/**
 * xoshiro128** seeded through splitmix32: integer-only arithmetic, so a seed gives bit-identical
 * weights on every platform and Node version (no Math.sin/log as a Box–Muller normal would need).
 */
export function createPrng(seed: number): () => number {
  let state = seed >>> 0;
  const splitmix32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix32();
  let b = splitmix32();
  let c = splitmix32();
  let d = splitmix32();
  /** Uniform in [0, 1) with 24 random bits (exactly representable in float32). */
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return (result >>> 8) / 0x1000000;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
