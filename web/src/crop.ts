/** "Search this part": a box dragged over the query image, and the crop it selects, made in a canvas. */
import type { Crop } from './url-state.ts';

/** Crops smaller than this (a fraction of a side) are taken for a click, not a box. */
const MIN_SIDE = 0.05;

/**
 * Follows a pointer drag over `frame` and reports the box as fractions of the frame; `done` gets the final
 * box, or undefined for a click.
 */
export function dragCrop(
  start: PointerEvent,
  frame: HTMLElement,
  update: (crop: Crop) => void,
  done: (crop: Crop | undefined) => void,
): void {
  const rect = frame.getBoundingClientRect();
  const at = (event: PointerEvent) => ({
    x: clamp((event.clientX - rect.left) / rect.width),
    y: clamp((event.clientY - rect.top) / rect.height),
  });
  const origin = at(start);
  const boxTo = (event: PointerEvent): Crop => {
    const point = at(event);
    return {
      x: Math.min(origin.x, point.x),
      y: Math.min(origin.y, point.y),
      w: Math.abs(point.x - origin.x),
      h: Math.abs(point.y - origin.y),
    };
  };
  frame.setPointerCapture(start.pointerId);
  const move = (event: PointerEvent) => update(boxTo(event));
  const up = (event: PointerEvent) => {
    frame.removeEventListener('pointermove', move);
    frame.removeEventListener('pointerup', up);
    const box = boxTo(event);
    done(box.w >= MIN_SIDE && box.h >= MIN_SIDE ? box : undefined);
  };
  frame.addEventListener('pointermove', move);
  frame.addEventListener('pointerup', up);
}

/** The part of `image` inside `crop`, as a JPEG. */
export async function cropImage(image: Blob, crop: Crop): Promise<Blob> {
  const bitmap = await createImageBitmap(image);
  const sx = Math.round(crop.x * bitmap.width);
  const sy = Math.round(crop.y * bitmap.height);
  const width = Math.max(1, Math.round(crop.w * bitmap.width));
  const height = Math.max(1, Math.round(crop.h * bitmap.height));
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d')?.drawImage(bitmap, sx, sy, width, height, 0, 0, width, height);
  bitmap.close();
  return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
}

function clamp(n: number): number {
  return Math.min(1, Math.max(0, n));
}
