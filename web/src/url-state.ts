/**
 * What the address bar holds, so a search can be shared and survives a reload: the view, the query (by key;
 * a dropped file cannot travel in a link), its crop, top-K, orientation and the duplicates threshold.
 */
import type { Orientation } from './api.ts';

export type View = 'search' | 'library' | 'duplicates';

/** A part of the image as fractions of its width and height. */
export interface Crop {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface UrlState {
  view: View;
  key?: string;
  crop?: Crop;
  topK: number;
  orientation: Orientation;
  threshold?: number;
}

export const DEFAULT_TOP_K = 10;
export const TOP_K_MAX = 100;

export function readUrl(search: string): UrlState {
  const params = new URLSearchParams(search);
  const view = params.get('view');
  const topK = Number(params.get('k'));
  const threshold = Number(params.get('t'));
  const crop = params.get('crop')?.split(',').map(Number);
  const key = params.get('key');
  return {
    view: view === 'library' || view === 'duplicates' ? view : 'search',
    ...(key ? { key } : {}),
    ...(crop?.length === 4 && crop.every((n) => n >= 0 && n <= 1)
      ? { crop: { x: crop[0] as number, y: crop[1] as number, w: crop[2] as number, h: crop[3] as number } }
      : {}),
    topK: Number.isInteger(topK) && topK >= 1 && topK <= TOP_K_MAX ? topK : DEFAULT_TOP_K,
    orientation: params.get('o') === 'any' ? 'any' : 'upright',
    ...(threshold > 0 && threshold <= 1 ? { threshold } : {}),
  };
}

/** Only what differs from the defaults, so a plain visit keeps a plain address. */
export function writeUrl(state: UrlState): string {
  const params = new URLSearchParams();
  if (state.view !== 'search') params.set('view', state.view);
  if (state.key) params.set('key', state.key);
  if (state.key && state.crop) {
    const { x, y, w, h } = state.crop;
    params.set('crop', [x, y, w, h].map((n) => n.toFixed(3)).join(','));
  }
  if (state.topK !== DEFAULT_TOP_K) params.set('k', String(state.topK));
  if (state.orientation === 'any') params.set('o', 'any');
  if (state.threshold !== undefined) params.set('t', String(state.threshold));
  const query = params.toString();
  return query ? `?${query}` : window.location.pathname;
}
