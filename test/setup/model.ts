import { resolve } from 'node:path';
import { ensureSeededModel } from '../../src/model/seeded.ts';

/**
 * Vitest global setup: makes sure models/vgg16-seeded.onnx (seed 42) exists and matches its manifest.
 * When it does this costs one SHA-256 of the file; otherwise it generates it (about a second).
 */
export default async function setup(): Promise<void> {
  // Services the tests start run the fp32 model, as on a fresh clone, even where model:quantize has made
  // the int8 model beside it, and never start a quantization in the background.
  process.env.PIC_MODEL_PRECISION ??= 'fp32';
  process.env.PIC_INT8_PREPARE ??= 'false';
  const { manifestPath, generated } = await ensureSeededModel({ modelDir: resolve('models') });
  if (generated) console.log(`Generated the seeded test model: ${manifestPath}`);
}
