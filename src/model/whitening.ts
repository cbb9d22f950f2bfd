/**
 * PCA whitening learnt without labels (Jégou & Chum 2012; as in R-MAC and GeM retrieval): centre the
 * descriptors, rotate onto the covariance's leading eigenvectors and scale each by (λ + s)^−power, where the
 * shrinkage s (`shrinkage` × the mean eigenvalue) keeps the weakest directions, estimated from few images,
 * from being blown up into noise. Full whitening is power ½ with s = 0; a gentler one (more shrinkage, a
 * lower power) amplifies those directions less, and with them any error of the vector it is applied to
 * (an int8 model's: docs/models.md). The result is L2-normalised again after projection
 * (src/embedder/vectors.ts).
 */

export interface WhiteningShape {
  /** Output dimensions: the leading eigenvectors kept. */
  dimension: number;
  /** s in (λ + s)^−power, in units of the mean eigenvalue. */
  shrinkage: number;
  power: number;
}

export interface LearntWhitening {
  mean: Float32Array;
  /** dimension × inputDimension, row-major. */
  projection: Float32Array;
}

export function learnWhitening(descriptors: Float32Array[], shape: WhiteningShape): LearntWhitening {
  return whiteningOf(principalComponents(descriptors), shape);
}

/** The descriptors' mean and their covariance's eigenpairs, largest eigenvalue first. */
export interface PrincipalComponents {
  mean: Float64Array;
  values: number[];
  /** Eigenvector k is row k, its sign fixed so that its largest entry is positive. */
  vectors: Float64Array[];
}

export function principalComponents(descriptors: Float32Array[]): PrincipalComponents {
  const count = descriptors.length;
  const input = descriptors[0]?.length ?? 0;
  if (count < 2) throw new Error('Whitening needs at least two calibration descriptors');
  const mean = new Float64Array(input);
  for (const d of descriptors)
    for (let i = 0; i < input; i++) mean[i] = (mean[i] as number) + (d[i] as number) / count;
  const covariance = new Float64Array(input * input);
  const centred = new Float64Array(input);
  for (const d of descriptors) {
    for (let i = 0; i < input; i++) centred[i] = (d[i] as number) - (mean[i] as number);
    for (let i = 0; i < input; i++) {
      const ci = (centred[i] as number) / count;
      if (ci === 0) continue;
      const row = i * input;
      for (let j = i; j < input; j++)
        covariance[row + j] = (covariance[row + j] as number) + ci * (centred[j] as number);
    }
  }
  for (let i = 0; i < input; i++)
    for (let j = 0; j < i; j++) covariance[i * input + j] = covariance[j * input + i] as number;
  const eigen = symmetricEigen(covariance, input);
  const order = Array.from({ length: input }, (_, i) => i).sort(
    (a, b) => (eigen.values[b] as number) - (eigen.values[a] as number),
  );
  const vectors = order.map((k) => {
    const vector = Float64Array.from({ length: input }, (_, i) => eigen.vectors[i * input + k] as number);
    const largest = vector.reduce((best, v) => (Math.abs(v) > Math.abs(best) ? v : best), 0);
    return largest < 0 ? vector.map((v) => -v) : vector;
  });
  return { mean, values: order.map((k) => Math.max(0, eigen.values[k] as number)), vectors };
}

export function whiteningOf(components: PrincipalComponents, shape: WhiteningShape): LearntWhitening {
  const { dimension, shrinkage, power } = shape;
  const input = components.mean.length;
  if (dimension > input) throw new Error(`Cannot whiten ${input} dimensions up to ${dimension}`);
  const s = (shrinkage * components.values.reduce((sum, v) => sum + v, 0)) / input;
  const projection = new Float32Array(dimension * input);
  for (let row = 0; row < dimension; row++) {
    const scale = ((components.values[row] as number) + s) ** -power;
    const vector = components.vectors[row] as Float64Array;
    for (let i = 0; i < input; i++) projection[row * input + i] = scale * (vector[i] as number);
  }
  return { mean: Float32Array.from(components.mean), projection };
}

/**
 * Eigenvalues and eigenvectors (columns) of a symmetric n × n matrix by cyclic Jacobi rotations:
 * slow (O(n³) a sweep) but simple and exact to rounding, and a 512 × 512 covariance takes seconds.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: number[]; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    let diagonal = 0;
    for (let p = 0; p < n; p++) {
      diagonal += (a[p * n + p] as number) ** 2;
      for (let q = p + 1; q < n; q++) off += (a[p * n + q] as number) ** 2;
    }
    if (off <= 1e-22 * diagonal) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q] as number;
        if (Math.abs(apq) < 1e-300) continue;
        const app = a[p * n + p] as number;
        const aqq = a[q * n + q] as number;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p] as number;
          const akq = a[k * n + q] as number;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k] as number;
          const aqk = a[q * n + k] as number;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p] as number;
          const vkq = v[k * n + q] as number;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Array.from({ length: n }, (_, i) => a[i * n + i] as number), vectors: v };
}
