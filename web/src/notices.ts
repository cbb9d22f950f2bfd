/**
 * Notices: each message shown once (a repeat refreshes the one on screen), dismissible, and gone by
 * itself after a while; errors carry advice that fits their cause, so a server that is down never reads
 * as a bad photo.
 */
import { ApiError } from './api.ts';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  text: string;
  advice?: string;
  /** How many times the same notice was raised while shown. */
  repeats: number;
}

/** What the person was doing: the same status can need different advice. */
export type Activity = 'search' | 'load' | 'upload' | 'delete' | 'duplicates' | 'other';

export const NOTICE_MS = { info: 6_000, error: 12_000 } as const;

export function adviceFor(error: unknown, activity: Activity): string | undefined {
  if (!(error instanceof ApiError)) return undefined;
  if (error.code === 'network') return 'Check that the server is running (npm start), then try again.';
  if (error.status === 401) return 'The API token was refused: enter it again when asked.';
  if (error.status === 409)
    return 'The index was built by another model: re-index it ("Re-index now" above), or start the server with the model that built it.';
  if (error.status === 413) return 'The file is larger than this server accepts: try a smaller one.';
  if (error.status === 429) return 'The server is busy: try again in a moment.';
  if (error.status >= 500) return 'The server failed: its log has the details. Try again in a moment.';
  if (error.status === 404 && activity === 'search') return 'That image is no longer in the library.';
  if (error.status === 415 && activity === 'search')
    return 'Try another photo (JPEG, PNG, WebP, GIF, TIFF or AVIF).';
  return undefined;
}

export class Notices {
  list: Notice[] = [];
  #nextId = 0;
  readonly #timers = new Map<number, ReturnType<typeof setTimeout>>();

  constructor(private readonly onChange: () => void) {}

  add(kind: Notice['kind'], text: string, advice?: string): void {
    const same = this.list.find((n) => n.kind === kind && n.text === text);
    const notice = same ?? { id: ++this.#nextId, kind, text, ...(advice ? { advice } : {}), repeats: 0 };
    if (same) same.repeats++;
    else this.list = [...this.list, notice];
    clearTimeout(this.#timers.get(notice.id));
    this.#timers.set(
      notice.id,
      setTimeout(() => this.dismiss(notice.id), NOTICE_MS[kind]),
    );
    this.onChange();
  }

  dismiss(id: number): void {
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    this.list = this.list.filter((n) => n.id !== id);
    this.onChange();
  }
}
