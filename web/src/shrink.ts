/**
 * Phone photos are often 5–12 MB, over the cloud API's 6 MB request limit and slow on mobile data; the
 * model sees 224×224 anyway. Big images are re-encoded at 1280 px before they are sent; anything the
 * browser cannot decode goes as it is, so the API's own error reaches the person.
 */
const SHRINK_ABOVE_BYTES = 1_500_000;
const MAX_SIDE = 1280;

export async function shrinkForSearch(file: Blob): Promise<Blob> {
  if (file.size <= SHRINK_ABOVE_BYTES) return file;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
  canvas.getContext('2d')?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const smaller = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
  return smaller.size < file.size ? smaller : file;
}
