/**
 * The 8 symmetries of a square (rotations by 0, 90, 180, 270° anticlockwise, each with and without a
 * left–right mirror), applied to size × size pixels with `channels` interleaved values per pixel. The
 * identity comes first. A rotated or mirrored copy of a photo, squashed to the model's square input,
 * equals one of these variants of the original's square (the squash scales each axis on its own).
 */
export function dihedralVariants(pixels: Uint8Array, size: number, channels = 3): Uint8Array[] {
  const variants: Uint8Array[] = [];
  for (const mirror of [false, true]) {
    for (let quarterTurns = 0; quarterTurns < 4; quarterTurns++) {
      variants.push(transform(pixels, size, channels, quarterTurns, mirror));
    }
  }
  return variants;
}

function transform(
  pixels: Uint8Array,
  size: number,
  channels: number,
  quarterTurns: number,
  mirror: boolean,
): Uint8Array {
  if (quarterTurns === 0 && !mirror) return pixels;
  const out = new Uint8Array(pixels.length);
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Where output pixel (x, y) comes from: mirror first, then turn anticlockwise.
      let sx = mirror ? last - x : x;
      let sy = y;
      for (let turn = 0; turn < quarterTurns; turn++) [sx, sy] = [last - sy, sx];
      const from = (sy * size + sx) * channels;
      const to = (y * size + x) * channels;
      for (let c = 0; c < channels; c++) out[to + c] = pixels[from + c] as number;
    }
  }
  return out;
}
