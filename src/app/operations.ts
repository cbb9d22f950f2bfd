/**
 * The product's operations, defined once for both modes. HTTP handlers (src/http) and the CLI call these;
 * they are implemented over the ports only (src/domain/ports.ts) in src/app/pic-search.ts.
 */
import type { EmbedderInfo, EmbedTimings, IndexIdentity, ProgressCounts } from '../domain/ports.ts';
import type { TaskView } from './tasks.ts';

/** How a query may be turned: `any` also finds rotated and mirrored copies (8 embeddings a query). */
export const ORIENTATIONS = ['upright', 'any'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];

/** What a score means, from thresholds calibrated per model and descriptor (docs/search-quality.md). */
export const MATCH_LABELS = ['duplicate', 'similar', 'weak'] as const;
export type MatchLabel = (typeof MATCH_LABELS)[number];

export interface SearchResult {
  key: string;
  id: string;
  /** Cosine similarity in [-1, 1]; 1 is the same picture. */
  score: number;
  match: MatchLabel;
  imageUrl: string;
  thumbnailUrl: string;
}

export interface SearchResponse {
  results: SearchResult[];
  topK: number;
  model: string;
  profile: string;
  pretrained: boolean;
  /** Milliseconds: decode and embed the query, vector search, catalogue lookup, link signing, total. */
  timings: EmbedTimings & { searchMs: number; lookupMs: number; signMs: number; totalMs: number };
}

export interface SearchRequest {
  topK: number;
  minScore?: number;
  prefix?: string;
  /** @default 'upright' */
  orientation?: Orientation;
}

export interface Progress extends Omit<ProgressCounts, 'recentlyIndexed' | 'windowSeconds'> {
  /** Images indexed per second over the recent window. */
  throughput: number;
  /**
   * Seconds until the work outstanding is done at the current throughput; null when unknown. Outstanding:
   * the pending images or the queue's messages, whichever is more (objects dropped into the bucket are in
   * the queue before they have a record).
   */
  etaSeconds: number | null;
  queue: { visible: number; inFlight: number };
  outage?: OutageReport;
  /**
   * The newest background tasks: a delete-all's cleanup, the last verification (its report when done) and
   * the last re-index (its step and the generations it goes from and to).
   */
  tasks: { deleteAll: TaskView | null; verify: TaskView | null; reindex: TaskView | null };
}

export interface UploadReport {
  /** Keys of the images stored (and so queued for indexing). */
  keys: string[];
  /** Files refused, each with the reason; the others were stored all the same. */
  rejected: { name: string; error: string; message: string }[];
}

export interface IngestReport {
  /** Objects queued because they are new or changed. */
  queued: number;
  /** Objects already indexed with the same content. */
  unchanged: number;
  /** Catalogue entries (and vectors) removed because their object is gone. */
  removed: number;
  /** Photos a delete-all kept, left out (the automatic reconciles only; an ingest asked for includes them). */
  keptOut: number;
  /** Key prefix the ingested objects live under. */
  prefix: string;
  /** Embedded folder ingest only: what the copy of the folder into the bucket did. */
  files?: FolderSyncReport;
}

export interface FolderSyncReport {
  /** Image files found in the folder (recursively). */
  images: number;
  /** Copied into the bucket because they were new or changed. */
  copied: number;
  /** Already in the bucket with the same size and an older-or-equal modification time. */
  unchanged: number;
  /** Bucket copies deleted because their file is gone from the folder. */
  deleted: number;
  /** Files without an image extension, left out. */
  skipped: number;
}

/**
 * Where a browser sends one file. Embedded: a PUT of the raw bytes with `headers`. Cloud: a presigned S3
 * POST form, `fields` first and then the file as the part named "file", at most `maxBytes`.
 */
export type UploadTarget =
  | { key: string; url: string; method: 'PUT'; headers: Record<string, string>; expiresInSeconds: number }
  | {
      key: string;
      url: string;
      method: 'POST';
      fields: Record<string, string>;
      maxBytes: number;
      expiresInSeconds: number;
    };

export interface Health {
  status: 'ok' | 'degraded';
  mode: 'embedded' | 'cloud';
  model: EmbedderInfo;
  index: IndexIdentity | undefined;
  outage?: OutageReport;
}

/** A store the worker cannot reach; it receives nothing meanwhile (docs/consistency.md). */
export interface OutageReport {
  store: string;
  since: Date;
  reason: string;
  /** "index unavailable since 2026-12-05T23:50:00.000Z" */
  message: string;
}

export interface Operations {
  searchByImage(image: Uint8Array, request: SearchRequest): Promise<SearchResponse>;
  /** "More like this": search with the stored vector of an indexed key. NotFoundError when unknown. */
  searchByKey(key: string, request: SearchRequest): Promise<SearchResponse>;
  count(): Promise<number>;
  progress(recentFailures?: number): Promise<Progress>;
  /**
   * Queue every object under `prefix` that is not indexed with its current content; forget the gone.
   * `skipKept`: leave out the photos a delete-all kept (the embedded start-up and watcher reconciles).
   */
  backfill(prefix: string, options?: { skipKept?: boolean }): Promise<IngestReport>;
  /**
   * Store uploaded images in the bucket; they are ingested like any drop. A file that is not a usable image
   * is refused with its reason and the others are stored; ImageError when every file is refused.
   */
  upload(
    files: { name: string; body: Uint8Array; contentType?: string }[],
    prefix?: string,
  ): Promise<UploadReport>;
  /** Presigned browser uploads (cloud); embedded mode answers with its own upload route. */
  uploadTargets(files: { name: string; contentType: string }[], prefix?: string): Promise<UploadTarget[]>;
  deleteImage(key: string, options?: { keepObject?: boolean }): Promise<void>;
  /**
   * Every vector and catalogue entry; the objects too only when `deleteObjects`. Search and count are
   * empty when it returns; the cleanup runs in the background (src/app/tasks.ts), its task in /progress.
   * Kept photos stay out of the index until they are ingested again.
   */
  deleteAll(options: { deleteObjects: boolean }): Promise<{ deleted: number; task: TaskView }>;
  /** Starts a verification of bucket, catalogue and index (with `repair`, fixing what it finds) in the background. */
  verify(options: { repair: boolean }): Promise<TaskView>;
  /**
   * Starts re-indexing the bucket with the configured model into a new index generation (docs/models.md);
   * the live one answers meanwhile. Returns the running one when it was started already; ConflictError when
   * the index is built by the configured model already.
   */
  reindex(): Promise<TaskView>;
  getImage(key: string): Promise<{ body: Buffer; contentType: string }>;
  getThumbnail(key: string): Promise<{ body: Buffer; contentType: string }>;
  health(): Promise<Health>;
}
