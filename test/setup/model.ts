import { resolve } from 'node:path';
import { ensureSeededModel } from '../../src/model/seeded.ts';

/**
 * Vitest global setup: makes sure models/vgg16-seeded.onnx (seed 42) exists and matches its manifest.
 * When it does this costs one SHA-256 of the file; otherwise it generates it (about a second).
 */
export default async function setup(): Promise<void> {
  // Services the tests start stay on the fp32 model and never start a quantization in the background.
  process.env.PIC_INT8_PREPARE ??= 'false';
  const { manifestPath, generated } = await ensureSeededModel({ modelDir: resolve('models') });
  if (generated) console.log(`Generated the seeded test model: ${manifestPath}`);
}
