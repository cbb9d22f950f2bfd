/**
 * The page's state and every action a person can take. Views read the state and call these methods;
 * each action reports its outcome as a notice, so nothing fails silently.
 */

import { isSettled } from '../../src/app/settle.ts';
import {
  type Api,
  ApiError,
  type DuplicateGroupView,
  type DuplicatesView,
  describe,
  type Health,
  type Orientation,
  type ProgressView,
  type SearchHit,
  type SearchResponse,
  type UploadOutcome,
} from './api.ts';
import { cropImage } from './crop.ts';
import { plural } from './format.ts';
import { advanceJob, finishedOf, type Job, startJob } from './jobs.ts';
import { type Activity, adviceFor, Notices } from './notices.ts';
import { shrinkForSearch } from './shrink.ts';
import { type Crop, readUrl, TOP_K_MAX, type UrlState, type View, writeUrl } from './url-state.ts';

export interface Query {
  label: string;
  /** Object URL of a dropped file, or the thumbnail URL of an indexed key. */
  preview: string;
  /** What to send again when an option changes. */
  source: { file: Blob } | { key: string; imageUrl: string };
  crop?: Crop;
}

export interface State {
  view: View;
  health?: Health;
  healthError?: string;
  count?: number;
  progress?: ProgressView;
  pollError?: string;
  topK: number;
  orientation: Orientation;
  showScores: boolean;
  query?: Query;
  searching: boolean;
  search?: { response: SearchResponse; roundTripMs: number };
  searchError?: { text: string; advice?: string };
  ingesting: boolean;
  upload?: { done: number; total: number };
  jobs: Job[];
  duplicates: {
    threshold?: number;
    loading: boolean;
    page?: DuplicatesView;
    /** Cursors of the pages before the one shown (for "previous"). */
    previous: (string | undefined)[];
    cursor?: string;
    error?: string;
  };
}

const UPLOAD_BATCH = 16;
const POLL_FAST_MS = 1000;
const POLL_IDLE_MS = 5000;
/** Typing "25" must not search with 2 first. */
const TOP_K_DEBOUNCE_MS = 350;

export class App {
  state: State;
  readonly notices: Notices;
  /** Set after a search that succeeded: the view scrolls the results into sight once rendered. */
  revealResults = false;
  private searchSeq = 0;
  private jobSeq = 0;
  private fastPollUntil = 0;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private topKTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly media = new Map<string, string | Promise<void>>();

  constructor(
    readonly api: Api,
    private readonly onChange: () => void,
  ) {
    const url = readUrl(window.location.search);
    this.state = {
      view: url.view,
      topK: url.topK,
      orientation: url.orientation,
      showScores: false,
      searching: false,
      ingesting: false,
      jobs: [],
      duplicates: { loading: false, previous: [], ...(url.threshold ? { threshold: url.threshold } : {}) },
    };
    this.notices = new Notices(onChange);
  }

  get mode(): 'embedded' | 'cloud' {
    return this.api.config.mode;
  }

  async start(): Promise<void> {
    const url = readUrl(window.location.search);
    const health = this.refreshHealth();
    if (url.key) void this.searchKey(url.key, url.crop);
    if (url.view === 'duplicates') void this.loadDuplicates();
    await health;
    await this.poll();
  }

  async refreshHealth(): Promise<void> {
    await this.api.health().then(
      (health) => this.set({ health, healthError: undefined }),
      (error: unknown) => this.set({ healthError: describe(error) }),
    );
  }

  set(patch: Partial<State>): void {
    Object.assign(this.state, patch);
    this.onChange();
  }

  notify(kind: 'error' | 'info', text: string, advice?: string): void {
    this.notices.add(kind, text, advice);
  }

  /** An error in words, with advice for its cause. */
  fail(activity: Activity, what: string, error: unknown): void {
    this.notify('error', `${what}: ${describe(error)}`, adviceFor(error, activity));
  }

  show(view: View): void {
    this.set({ view });
    this.syncUrl(true);
    if (view === 'duplicates') void this.loadDuplicates();
  }

  /** The address bar follows the state; `push` for a new place in history (a view), else replace. */
  syncUrl(push = false): void {
    const query = this.state.query;
    const url: UrlState = {
      view: this.state.view,
      topK: this.state.topK,
      orientation: this.state.orientation,
      ...(query && 'key' in query.source ? { key: query.source.key } : {}),
      ...(query?.crop ? { crop: query.crop } : {}),
      ...(this.state.duplicates.threshold ? { threshold: this.state.duplicates.threshold } : {}),
    };
    const target = writeUrl(url);
    if (
      target === `${window.location.search}` ||
      (target === window.location.pathname && !window.location.search)
    )
      return;
    if (push) history.pushState(null, '', target);
    else history.replaceState(null, '', target);
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
      this.fail('other', `Could not load ${url}`, error);
    }
  }

  /**
   * Top-K as typed: kept at once (so the next search uses it) and, when a query is shown, searched again
   * after a short pause. False (and says why) when it is not a whole number in 1..TOP_K_MAX.
   */
  setTopK(value: number, options: { now?: boolean } = {}): boolean {
    clearTimeout(this.topKTimer);
    if (!Number.isInteger(value) || value < 1 || value > TOP_K_MAX) {
      this.notify('error', `Top-K must be a whole number from 1 to ${TOP_K_MAX}.`);
      return false;
    }
    const changed = value !== this.state.topK;
    this.set({ topK: value });
    this.syncUrl();
    if (changed && this.state.query) {
      if (options.now) void this.rerun();
      else this.topKTimer = setTimeout(() => void this.rerun(), TOP_K_DEBOUNCE_MS);
    }
    return true;
  }

  setOrientation(orientation: Orientation): void {
    this.set({ orientation });
    this.syncUrl();
    // A search by key uses the stored vector: turning the query changes nothing there.
    if (this.state.query && !('key' in this.state.query.source && !this.state.query.crop)) void this.rerun();
  }

  async searchFile(original: Blob, label: string): Promise<void> {
    this.releasePreview();
    const file = await shrinkForSearch(original);
    return this.runSearch({ label, preview: URL.createObjectURL(file), source: { file } });
  }

  /** Searches with an indexed image's stored vector ("more like this"), or with a part of it. */
  searchLike(hit: Pick<SearchHit, 'key' | 'thumbnailUrl' | 'imageUrl'>): Promise<void> {
    this.releasePreview();
    return this.runSearch({
      label: hit.key,
      preview: hit.thumbnailUrl,
      source: { key: hit.key, imageUrl: hit.imageUrl },
    });
  }

  /** From the address bar: the key's links are the API's own routes. */
  private searchKey(key: string, crop: Crop | undefined): Promise<void> {
    const path = key.split('/').map(encodeURIComponent).join('/');
    return this.runSearch({
      label: key,
      preview: `/thumbnails/${path}`,
      source: { key, imageUrl: `/images/${path}` },
      ...(crop ? { crop } : {}),
    });
  }

  /** "Search this part" (a crop), or the whole image again (undefined). */
  searchPart(crop: Crop | undefined): Promise<void> {
    const query = this.state.query;
    if (!query) return Promise.resolve();
    const { crop: _, ...whole } = query;
    return this.runSearch(crop ? { ...whole, crop } : whole);
  }

  /** The Search button: run the current query again. */
  rerun(): Promise<void> {
    const query = this.state.query;
    if (!query) {
      this.notify('error', 'Choose, drop or paste a photo first.');
      return Promise.resolve();
    }
    return this.runSearch(query);
  }

  private releasePreview(): void {
    const previous = this.state.query;
    if (previous && 'file' in previous.source) URL.revokeObjectURL(previous.preview);
  }

  private async runSearch(query: Query): Promise<void> {
    clearTimeout(this.topKTimer);
    const seq = ++this.searchSeq;
    this.set({ view: 'search', query, searching: true, searchError: undefined });
    this.syncUrl();
    const started = performance.now();
    const { topK, orientation } = this.state;
    try {
      let response: SearchResponse;
      if ('file' in query.source || query.crop) {
        const image = 'file' in query.source ? query.source.file : await this.api.blob(query.source.imageUrl);
        const part = query.crop ? await cropImage(image, query.crop) : image;
        response = await this.api.searchByImage(part, { topK, orientation });
      } else {
        // One more than asked, without the query itself: "more like this" should show other images.
        const key = query.source.key;
        const wider = await this.api.searchByKey(key, { topK: Math.min(TOP_K_MAX, topK + 1), orientation });
        const results = wider.results.filter((hit) => hit.key !== key).slice(0, topK);
        response = { ...wider, topK, results };
      }
      if (seq !== this.searchSeq) return;
      this.revealResults = true;
      this.set({ search: { response, roundTripMs: performance.now() - started }, searching: false });
    } catch (error) {
      if (seq !== this.searchSeq) return;
      const advice = adviceFor(error, 'search');
      this.set({
        searching: false,
        search: undefined,
        searchError: { text: `Search failed: ${describe(error)}`, ...(advice ? { advice } : {}) },
      });
      this.fail('search', 'Search failed', error);
    }
  }

  async ingestFolder(path: string, prefix: string): Promise<void> {
    if (!path.trim()) return this.notify('error', 'Type the path of a folder on the server first.');
    await this.ingest(path.trim(), () => this.api.ingestFolder(path.trim(), prefix.trim() || undefined));
  }

  async backfill(prefix: string): Promise<void> {
    await this.ingest(prefix.trim() || 'the bucket', () => this.api.backfill(prefix.trim()));
  }

  /** The library's finished count now, read fresh: the base a new job's progress counts from. */
  private async finishedNow(): Promise<number> {
    try {
      return finishedOf(await this.api.progress(0));
    } catch {
      return this.state.progress ? finishedOf(this.state.progress) : 0;
    }
  }

  private addJob(label: string, queued: number, base: number): void {
    const job = startJob(++this.jobSeq, label, queued, base, Date.now());
    // The last five stay on screen; older finished ones go.
    this.set({ jobs: [job, ...this.state.jobs].slice(0, 5) });
  }

  private async ingest(label: string, call: () => ReturnType<Api['backfill']>): Promise<void> {
    this.set({ ingesting: true });
    try {
      const base = await this.finishedNow();
      const report = await call();
      this.addJob(`Loading ${label}`, report.queued, base);
      this.notify(
        'info',
        `Loading "${report.prefix}": ${plural(report.queued, 'new or changed image')} queued, ` +
          `${report.unchanged} already indexed, ${report.removed} removed.`,
      );
      this.watchProgress();
    } catch (error) {
      this.fail('load', 'Loading failed', error);
    } finally {
      this.set({ ingesting: false });
    }
  }

  async upload(files: File[], prefix: string): Promise<void> {
    if (files.length === 0) return this.notify('error', 'Choose one or more photos to upload.');
    const base = await this.finishedNow();
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
    const stored = outcomes.length - failed.length;
    if (stored > 0) {
      this.addJob(`Uploading ${plural(stored, 'photo')}`, stored, base);
      this.notify('info', `Uploaded ${plural(stored, 'photo')}; indexing follows.`);
    }
    this.watchProgress();
  }

  async deleteKey(key: string): Promise<boolean> {
    try {
      await this.api.deleteImage(key);
      const search = this.state.search;
      if (search) {
        const results = search.response.results.filter((r) => r.key !== key);
        this.set({ search: { ...search, response: { ...search.response, results } } });
      }
      this.notify('info', `Deleted ${key}.`);
      return true;
    } catch (error) {
      this.fail('delete', `Could not delete ${key}`, error);
      return false;
    } finally {
      void this.poll();
    }
  }

  async deleteAll(deleteObjects: boolean): Promise<void> {
    try {
      const { deleted } = await this.api.deleteAll(deleteObjects);
      this.set({ search: undefined, searchError: undefined, jobs: [] });
      this.notify('info', `Deleted ${plural(deleted, 'image')} from the library.`);
    } catch (error) {
      this.fail('delete', 'Could not delete everything', error);
    }
    await this.poll();
  }

  /** Starts the re-index the banner offers; the banner follows its progress. */
  async reindex(): Promise<void> {
    try {
      await this.api.reindex();
      this.notify('info', 'Re-index started: searches use the current index until the new one is complete.');
    } catch (error) {
      this.notify('error', `Could not start the re-index: ${describe(error)}`);
    }
    this.watchProgress();
  }

  async loadDuplicates(cursor?: string, previous: (string | undefined)[] = []): Promise<void> {
    const { threshold } = this.state.duplicates;
    this.set({ duplicates: { ...this.state.duplicates, loading: true, error: undefined } });
    try {
      const page = await this.api.duplicates({
        ...(threshold === undefined ? {} : { threshold }),
        ...(cursor ? { cursor } : {}),
      });
      this.set({
        duplicates: {
          ...this.state.duplicates,
          loading: false,
          page,
          previous,
          ...(cursor ? { cursor } : {}),
        },
      });
      if (!cursor) delete this.state.duplicates.cursor;
    } catch (error) {
      this.set({ duplicates: { ...this.state.duplicates, loading: false, error: describe(error) } });
      this.fail('duplicates', 'Could not list duplicates', error);
    }
  }

  async scanDuplicates(): Promise<void> {
    const { threshold } = this.state.duplicates;
    try {
      await this.api.scanDuplicates(threshold);
      this.notify(
        'info',
        'Looking for duplicates in the background; reload this view when the scan is done.',
      );
    } catch (error) {
      this.fail('duplicates', 'Could not start a scan for duplicates', error);
    }
    await this.reloadDuplicates();
  }

  nextDuplicates(): Promise<void> {
    const { page, cursor, previous } = this.state.duplicates;
    if (!page?.nextCursor) return Promise.resolve();
    return this.loadDuplicates(page.nextCursor, [...previous, cursor]);
  }

  previousDuplicates(): Promise<void> {
    const previous = [...this.state.duplicates.previous];
    const cursor = previous.pop();
    return this.loadDuplicates(cursor, previous);
  }

  setDuplicateThreshold(threshold: number): void {
    if (!(threshold > 0 && threshold <= 1)) {
      this.notify('error', 'The threshold must be a number above 0 and at most 1.');
      return;
    }
    this.set({ duplicates: { ...this.state.duplicates, threshold } });
    this.syncUrl();
    void this.loadDuplicates();
  }

  /** Deletes every member but the one to keep; the page is then read again. */
  async keepBest(group: DuplicateGroupView): Promise<void> {
    const others = group.members.filter((m) => m.key !== group.keep);
    let deleted = 0;
    for (const member of others) {
      try {
        await this.api.deleteImage(member.key);
        deleted++;
      } catch (error) {
        this.fail('delete', `Could not delete ${member.key}`, error);
      }
    }
    if (deleted > 0) this.notify('info', `Kept ${group.keep}; deleted ${plural(deleted, 'copy', 'copies')}.`);
    await Promise.all([this.reloadDuplicates(), this.poll()]);
  }

  async notDuplicates(group: DuplicateGroupView): Promise<void> {
    try {
      await this.api.dismissDuplicates(group.members.map((m) => m.key));
      this.notify('info', `${plural(group.members.length, 'image')} marked as not duplicates.`);
    } catch (error) {
      this.fail('duplicates', 'Could not mark them as not duplicates', error);
    }
    await this.reloadDuplicates();
  }

  private reloadDuplicates(): Promise<void> {
    const { cursor, previous } = this.state.duplicates;
    return this.loadDuplicates(cursor, previous);
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
      const now = Date.now();
      // A re-index that just finished switched the index: the model and identity shown change with it.
      const wasReindexing = this.state.progress?.tasks.reindex?.state === 'running';
      if (wasReindexing && progress.tasks.reindex?.state !== 'running') void this.refreshHealth();
      this.set({
        count,
        progress,
        pollError: undefined,
        jobs: this.state.jobs.map((job) => advanceJob(job, progress, now)),
      });
    } catch (error) {
      this.set({ pollError: describe(error) });
    }
    const progress = this.state.progress;
    const busy =
      (progress !== undefined && (!isSettled(progress) || progress.tasks.reindex?.state === 'running')) ||
      Date.now() < this.fastPollUntil;
    this.pollTimer = setTimeout(() => void this.poll(), busy ? POLL_FAST_MS : POLL_IDLE_MS);
  }
}
