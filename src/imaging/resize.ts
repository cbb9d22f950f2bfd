/**
 * Nearest-neighbour resize of interleaved 8-bit pixels, sample for sample what Pillow's
 * `Image.resize(size, Image.NEAREST)` does (the resize inside Keras `load_img`): Pillow takes its
 * ImagingScaleAffine path with scale = source ÷ target as a double, starts at scale × 0.5 and adds the
 * scale once per output pixel, truncating each running sum. The running sum (not (x + 0.5) × scale) is
 * kept on purpose: the two differ in the last bit at exact integer boundaries and pick another pixel.
 * See python-pillow/Pillow src/libImaging/Geometry.c (ImagingScaleAffine) and _imaging.c (_resize).
 */
export function resizeNearestLikePillow(
  source: Uint8Array,
  width: number,
  height: number,
  channels: number,
  targetWidth: number,
  targetHeight: number,
): Uint8Array {
  const columns = sampledPositions(width, targetWidth);
  const rows = sampledPositions(height, targetHeight);
  const out = new Uint8Array(targetWidth * targetHeight * channels);
  let o = 0;
  for (let y = 0; y < targetHeight; y++) {
    const rowStart = (rows[y] as number) * width * channels;
    for (let x = 0; x < targetWidth; x++) {
      const s = rowStart + (columns[x] as number) * channels;
      for (let c = 0; c < channels; c++) out[o++] = source[s + c] as number;
    }
  }
  return out;
}

function sampledPositions(sourceSize: number, targetSize: number): Int32Array {
  const scale = sourceSize / targetSize;
  const positions = new Int32Array(targetSize);
  let position = scale * 0.5;
  for (let i = 0; i < targetSize; i++) {
    // The last sum is source - scale/2 < source; the clamp only guards against rounding.
    positions[i] = Math.min(Math.trunc(position), sourceSize - 1);
    position += scale;
  }
  return positions;
}
