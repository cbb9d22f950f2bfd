/**
 * The page's state and every action a person can take. Views read the state and call these methods;
 * each action reports its outcome as a notice, so nothing fails silently.
 */

import { isSettled } from '../../src/app/settle.ts';
import {
  type Api,
  ApiError,
  describe,
  type Health,
  type ProgressView,
  type SearchHit,
  type SearchResponse,
  type UploadOutcome,
} from './api.ts';
import { plural } from './format.ts';
import { shrinkForSearch } from './shrink.ts';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

export interface Query {
  label: string;
  /** Object URL of a dropped file, or the thumbnail URL of an indexed key. */
  preview: string;
  /** What to send again when top-K changes. */
  source: { file: Blob } | { key: string };
}

export interface State {
  health?: Health;
  healthError?: string;
  count?: number;
  progress?: ProgressView;
  pollError?: string;
  topK: number;
  query?: Query;
  searching: boolean;
  search?: { response: SearchResponse; roundTripMs: number };
  searchError?: string;
  ingesting: boolean;
  upload?: { done: number; total: number };
  lastIngest?: string;
  notices: Notice[];
}

export const TOP_K_MAX = 100;
const UPLOAD_BATCH = 16;
const POLL_FAST_MS = 1000;
const POLL_IDLE_MS = 5000;
const NOTICE_MS = 8000;

export class App {
  state: State = { topK: 10, searching: false, ingesting: false, notices: [] };
  private noticeId = 0;
  private searchSeq = 0;
  private fastPollUntil = 0;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly media = new Map<string, string | Promise<void>>();

  constructor(
    readonly api: Api,
    private readonly onChange: () => void,
  ) {}

  get mode(): 'embedded' | 'cloud' {
    return this.api.config.mode;
  }

  async start(): Promise<void> {
    try {
      this.set({ health: await this.api.health(), healthError: undefined });
    } catch (error) {
      this.set({ healthError: describe(error) });
    }
    await this.poll();
  }

  set(patch: Partial<State>): void {
    Object.assign(this.state, patch);
    this.onChange();
  }

  notify(kind: Notice['kind'], text: string): void {
    const notice = { id: ++this.noticeId, kind, text };
    this.set({ notices: [...this.state.notices, notice] });
    // Errors stay until dismissed: a person must be able to read them.
    if (kind === 'info') setTimeout(() => this.dismiss(notice.id), NOTICE_MS);
  }

  dismiss(id: number): void {
    this.set({ notices: this.state.notices.filter((n) => n.id !== id) });
  }

  /** URL for an <img>: direct without auth; with a bearer token, a fetched blob (undefined until loaded). */
  imageSrc(url: string): string | undefined {
    if (this.api.config.auth.kind === 'none' || url.startsWith('blob:')) return this.api.url(url);
    const cached = this.media.get(url);
    if (typeof cached === 'string') return cached || undefined;
    if (!cached)
      this.media.set(
        url,
        this.fetchImage(url).then(() => this.onChange()),
      );
    return undefined;
  }

  /** Like imageSrc, for a view that cannot wait for a re-render (the full-size viewer). */
  async loadImage(url: string): Promise<string | undefined> {
    const src = this.imageSrc(url);
    if (src) return src;
    await this.media.get(url);
    const loaded = this.media.get(url);
    return typeof loaded === 'string' && loaded ? loaded : undefined;
  }

  private async fetchImage(url: string): Promise<void> {
    try {
      this.media.set(url, URL.createObjectURL(await this.api.blob(url)));
    } catch (error) {
      this.media.set(url, ''); // the alt text shows; no retry loop on every render
      this.notify('error', `Could not load ${url}: ${describe(error)}`);
    }
  }

  /** False (and says why) when the value is not a whole number in 1..TOP_K_MAX. */
  setTopK(value: number): boolean {
    if (!Number.isInteger(value) || value < 1 || value > TOP_K_MAX) {
      this.notify('error', `Top-K must be a whole number from 1 to ${TOP_K_MAX}.`);
      return false;
    }
    this.set({ topK: value });
    return true;
  }

  async searchFile(original: Blob, label: string): Promise<void> {
    const previous = this.state.query;
    if (previous && 'file' in previous.source) URL.revokeObjectURL(previous.preview);
    const file = await shrinkForSearch(original);
    return this.runSearch({ label, preview: URL.createObjectURL(file), source: { file } });
  }

  searchLike(hit: SearchHit): Promise<void> {
    return this.runSearch({ label: hit.key, preview: hit.thumbnailUrl, source: { key: hit.key } });
  }

  /** The Search button: run the current query again (say, after changing top-K). */
  rerun(): Promise<void> {
    const query = this.state.query;
    if (!query) {
      this.notify('error', 'Choose, drop or paste a photo first, then press Search.');
      return Promise.resolve();
    }
    return this.runSearch(query);
  }

  private async runSearch(query: Query): Promise<void> {
    const seq = ++this.searchSeq;
    this.set({ query, searching: true, searchError: undefined });
    const started = performance.now();
    try {
      const options = { topK: this.state.topK };
      const response =
        'file' in query.source
          ? await this.api.searchByImage(query.source.file, options)
          : await this.api.searchByKey(query.source.key, options);
      if (seq !== this.searchSeq) return;
      this.set({ search: { response, roundTripMs: performance.now() - started }, searching: false });
    } catch (error) {
      if (seq !== this.searchSeq) return;
      const message = `Search failed: ${describe(error)}`;
      this.set({ searching: false, search: undefined, searchError: message });
      this.notify('error', message);
    }
  }

  async ingestFolder(path: string, prefix: string): Promise<void> {
    if (!path.trim()) return this.notify('error', 'Type the path of a folder on the server first.');
    await this.ingest(() => this.api.ingestFolder(path.trim(), prefix.trim() || undefined));
  }

  async backfill(prefix: string): Promise<void> {
    await this.ingest(() => this.api.backfill(prefix.trim()));
  }

  private async ingest(call: () => ReturnType<Api['backfill']>): Promise<void> {
    this.set({ ingesting: true });
    try {
      const report = await call();
      const text =
        `Loading "${report.prefix}": ${plural(report.queued, 'new or changed image')} queued, ` +
        `${report.unchanged} already indexed, ${report.removed} removed.`;
      this.set({ lastIngest: text });
      this.notify('info', text);
      this.watchProgress();
    } catch (error) {
      this.notify('error', `Loading failed: ${describe(error)}`);
    } finally {
      this.set({ ingesting: false });
    }
  }

  async upload(files: File[], prefix: string): Promise<void> {
    if (files.length === 0) return this.notify('error', 'Choose one or more photos to upload.');
    const outcomes: UploadOutcome[] = [];
    this.set({ upload: { done: 0, total: files.length } });
    const send = async (batch: File[]): Promise<UploadOutcome[]> => {
      try {
        return await this.api.upload(batch, prefix.trim() || undefined);
      } catch (error) {
        // A whole request can be refused (too large for the server, or every file bad): send the files one by
        // one, so the good ones get in and each bad one gets its own reason.
        const oneBad = error instanceof ApiError && error.status >= 400 && error.status < 500;
        if (oneBad && batch.length > 1) return (await Promise.all(batch.map((f) => send([f])))).flat();
        return batch.map((file) => ({ name: file.name, error: describe(error) }));
      }
    };
    for (let i = 0; i < files.length; i += UPLOAD_BATCH) {
      outcomes.push(...(await send(files.slice(i, i + UPLOAD_BATCH))));
      this.set({ upload: { done: outcomes.length, total: files.length } });
    }
    this.set({ upload: undefined });
    const failed = outcomes.filter((o) => o.error);
    for (const o of failed) this.notify('error', `Upload of ${o.name} failed: ${o.error}`);
    if (failed.length < outcomes.length) {
      this.notify('info', `Uploaded ${plural(outcomes.length - failed.length, 'photo')}; indexing follows.`);
    }
    this.watchProgress();
  }

  async deleteHit(hit: SearchHit): Promise<void> {
    try {
      await this.api.deleteImage(hit.key);
      const search = this.state.search;
      if (search) {
        const results = search.response.results.filter((r) => r.key !== hit.key);
        this.set({ search: { ...search, response: { ...search.response, results } } });
      }
      this.notify('info', `Deleted ${hit.key}.`);
    } catch (error) {
      this.notify('error', `Could not delete ${hit.key}: ${describe(error)}`);
    }
    await this.poll();
  }

  async deleteAll(deleteObjects: boolean): Promise<void> {
    try {
      const { deleted } = await this.api.deleteAll(deleteObjects);
      this.set({ search: undefined, searchError: undefined });
      this.notify('info', `Deleted ${plural(deleted, 'image')} from the library.`);
    } catch (error) {
      this.notify('error', `Could not delete everything: ${describe(error)}`);
    }
    await this.poll();
  }

  /** Poll fast for a while: workers pick jobs up a moment after they are queued. */
  private watchProgress(): void {
    this.fastPollUntil = Date.now() + 15_000;
    void this.poll();
  }

  async poll(): Promise<void> {
    clearTimeout(this.pollTimer);
    try {
      const [count, progress] = await Promise.all([this.api.count(), this.api.progress()]);
      this.set({ count, progress, pollError: undefined });
    } catch (error) {
      this.set({ pollError: describe(error) });
    }
    const progress = this.state.progress;
    const busy = (progress !== undefined && !isSettled(progress)) || Date.now() < this.fastPollUntil;
    this.pollTimer = setTimeout(() => void this.poll(), busy ? POLL_FAST_MS : POLL_IDLE_MS);
  }
}
