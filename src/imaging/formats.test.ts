import { describe, expect, it } from 'vitest';
import { isImageKey } from './formats.ts';

describe('isImageKey', () => {
  it.each([
    'holiday.jpg',
    'holiday.JPG',
    'scans/2024/page.jpeg',
    'IMG_0001.JPEG',
    'logo.Png',
    'anim.gif',
    'photo.webp',
    'scan.TIF',
    'scan.tiff',
    'phone.heic',
    'phone.HEIF',
    'modern.avif',
    'dir.with.dots/pic.jpg',
  ])('accepts %s', (key) => {
    expect(isImageKey(key)).toBe(true);
  });

  it.each([
    'notes.txt',
    'drawing.svg',
    'report.pdf',
    'archive.jpg.zip',
    'jpg',
    'folder/',
    'no-extension',
    'photo.jpg ',
  ])('rejects %s', (key) => {
    expect(isImageKey(key)).toBe(false);
  });
});
