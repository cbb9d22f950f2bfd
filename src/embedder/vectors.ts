/** Scales `vector` in place to unit length (a zero vector stays zero) and returns it. */
export function l2Normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm;
  return vector;
}

/** Inner product; for unit vectors, the cosine similarity. */
export function dot(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length: ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

/** (vector − mean) projected by the whitening's rows; the caller normalises the result. */
export function whiten(
  vector: Float32Array,
  whitening: { mean: Float32Array; projection: Float32Array; dimension: number },
): Float32Array {
  const input = vector.length;
  const centred = new Float32Array(input);
  for (let i = 0; i < input; i++) centred[i] = (vector[i] as number) - (whitening.mean[i] as number);
  const out = new Float32Array(whitening.dimension);
  for (let row = 0; row < whitening.dimension; row++) {
    const offset = row * input;
    let sum = 0;
    for (let i = 0; i < input; i++)
      sum += (whitening.projection[offset + i] as number) * (centred[i] as number);
    out[row] = sum;
  }
  return out;
}
