/**
 * Learns a model's whitening from the calibration photos the project ships (samples/calibration, built
 * from Debian packages with their licences by scripts/photo-sets.ts) — never from a user's library or
 * queries, nor from the evaluation photos — and records it in the model's manifest.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { OnnxEmbedder } from '../embedder/onnx-embedder.ts';
import { jpegView, storedSize } from '../imaging/decode.ts';
import { loadManifest, type ModelManifest } from './manifest.ts';
import { sha256Of, writeManifest } from './model-files.ts';
import { createPrng } from './prng.ts';
import { learnWhitening, type WhiteningShape } from './whitening.ts';

export const CALIBRATION_DIR = resolve(import.meta.dirname, '../../samples/calibration');
/** Random crops a photo gives besides itself and its mirror: 27 photos → 270 descriptors. */
const CROPS_PER_PHOTO = 8;
const CALIBRATION_SEED = 15;

/**
 * Each calibration photo whole, mirrored, and in seeded random crops (40–90 % of each side): the crops
 * stand in for the views of a scene that a larger set would hold, so the covariance sees how descriptors
 * vary when framing does.
 */
export async function calibrationImages(dir = CALIBRATION_DIR): Promise<Buffer[]> {
  const random = createPrng(CALIBRATION_SEED);
  const images: Buffer[] = [];
  for (const name of (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort()) {
    const path = join(dir, name);
    const { width, height } = await storedSize(path);
    images.push(await jpegView(path), await jpegView(path, { mirror: true }));
    for (let i = 0; i < CROPS_PER_PHOTO; i++) {
      const w = Math.round(width * (0.4 + 0.5 * random()));
      const h = Math.round(height * (0.4 + 0.5 * random()));
      const left = Math.floor(random() * (width - w));
      const top = Math.floor(random() * (height - h));
      images.push(await jpegView(path, { crop: { left, top, width: w, height: h } }));
    }
  }
  return images;
}

const learntOn = ({ shrinkage, power }: WhiteningShape) =>
  `PCA on the photos of samples/calibration (whole, mirrored, ${CROPS_PER_PHOTO} seeded crops each), each direction scaled by (λ + ${shrinkage} × mean λ)^−${power}`;

/**
 * Embeds the calibration images with the model of `manifestPath` (which must not be whitened yet), learns
 * a whitening of `shape`, writes it beside the model and records it in the manifest. `learnt`: the bytes
 * of a whitening of that shape learnt so before for this very model (the seeded model ships one), used as is.
 */
export async function addWhitening(
  manifestPath: string,
  shape: WhiteningShape,
  learnt?: { bytes: Uint8Array; from: string },
): Promise<ModelManifest> {
  const { dimension, shrinkage, power } = shape;
  const loaded = await loadManifest(manifestPath);
  if (loaded.manifest.output.whitening) throw new Error(`${manifestPath} is already whitened`);
  const inputDimension = loaded.manifest.output.dimension;
  const bytes = learnt?.bytes ?? (await learnFromCalibration(manifestPath, shape));
  const file = `${basename(loaded.modelPath, '.onnx')}.whitening-${dimension}.f32`;
  await writeFile(join(dirname(loaded.modelPath), file), bytes);
  const manifest: ModelManifest = {
    ...loaded.manifest,
    output: {
      ...loaded.manifest.output,
      dimension,
      whitening: {
        file,
        sha256: sha256Of(bytes),
        inputDimension,
        dimension,
        shrinkage,
        power,
        learntOn: `${learntOn(shape)}${learnt ? `; learnt once and shipped as ${learnt.from}` : ''}`,
      },
    },
  };
  await writeManifest(manifestPath, manifest);
  // Loading checks that the bytes fit the dimensions.
  await loadManifest(manifestPath);
  return manifest;
}

async function learnFromCalibration(manifestPath: string, shape: WhiteningShape): Promise<Uint8Array> {
  const embedder = await OnnxEmbedder.create(await loadManifest(manifestPath));
  let descriptors: Float32Array[];
  try {
    const outcomes = await embedder.embed(await calibrationImages());
    descriptors = outcomes.flatMap((outcome) => (outcome.ok ? [outcome.vector] : []));
  } finally {
    await embedder.close();
  }
  const { mean, projection } = learnWhitening(descriptors, shape);
  const bytes = new Uint8Array(mean.length * 4 + projection.length * 4);
  const values = new Float32Array(bytes.buffer);
  values.set(mean);
  values.set(projection, mean.length);
  return bytes;
}
