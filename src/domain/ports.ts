import type { Version } from './versions.ts';

/**
 * The domain's only view of the outside world. Each port has one embedded adapter
 * (src/adapters/embedded) and one cloud adapter (src/adapters/aws, src/adapters/milvus);
 * one contract suite (test/contract) holds both families to the same behaviour.
 *
 * Vector ids are decimal strings of a 63-bit hash of the object key (src/domain/ids.ts):
 * int64 in Milvus, never a lossy JS number.
 */

/** Metadata of one object in the bucket. `etag` changes whenever the content changes. */
export interface StoredObject {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

/** An object read whole: its bytes and the metadata of exactly those bytes. */
export interface ObjectWithBody extends StoredObject {
  body: Buffer;
}

export interface ListOptions {
  startAfter?: string;
}

export interface ObjectStore {
  /** Throws NotFoundError when the key does not exist. */
  get(key: string): Promise<ObjectWithBody>;
  put(key: string, body: Uint8Array, contentType?: string): Promise<StoredObject>;
  /** undefined when the key does not exist. */
  head(key: string): Promise<StoredObject | undefined>;
  /**
   * Every object whose key starts with `prefix` (all objects when omitted), in the order of the keys'
   * UTF-8 bytes; with `startAfter`, only the keys after it (a listing resumed where a saved one stopped).
   */
  list(prefix?: string, options?: ListOptions): AsyncIterable<StoredObject>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** A link a browser can GET (local route or presigned URL). */
  downloadUrl(key: string): Promise<string>;
}

/**
 * What a worker is asked to do with one object. `force`: embed it again even when its record says this
 * content is indexed (a worker that found the bucket changed under its write sends it: the record may
 * describe another worker's vector, not the one left in the index).
 */
export type Job =
  | { kind: 'upsert'; key: string; etag?: string; size?: number; force?: boolean }
  | { kind: 'remove'; key: string };

/** One queue message: S3 may pack several records into one; a test event carries none. */
export interface ReceivedMessage {
  receipt: string;
  jobs: Job[];
  /** How many times this message has been delivered, this time included. */
  receiveCount: number;
  /** Set when the body could not be understood; the worker records it and lets redrive act. */
  malformed?: string;
  /** Set (and `jobs` empty) when the message asks for the next slice of a background task (src/app/tasks.ts). */
  taskId?: string;
}

export interface QueueDepth {
  visible: number;
  inFlight: number;
}

export interface JobQueue {
  send(jobs: Job[]): Promise<void>;
  /** Queues one slice of a background task; the worker that receives it runs the slice. */
  sendTask(taskId: string): Promise<void>;
  /** Long-polls up to `waitMs` for at most `max` messages; received messages are hidden until acked. */
  receive(max: number, waitMs: number): Promise<ReceivedMessage[]>;
  /** Done: the messages are gone for good. */
  ack(receipts: string[]): Promise<void>;
  /**
   * Hand the messages back now (graceful stop) so another worker takes them at once. 'uncounted': the
   * delivery does not count towards the dead-letter limit, where the queue can do that (the SQLite queue
   * can; SQS cannot: its receive count rises on every delivery). The worker hands back so in an outage.
   */
  release(receipts: string[], delivery?: 'counted' | 'uncounted'): Promise<void>;
  /** Keep the messages hidden for `seconds` more while a batch is still working. */
  extend(receipts: string[], seconds: number): Promise<void>;
  depth(): Promise<QueueDepth>;
}

export type ImageState = 'pending' | 'indexed' | 'failed';

export interface ImageRecord {
  key: string;
  id: string;
  state: ImageState;
  etag?: string;
  size?: number;
  /** Why the image failed, in words a person understands. */
  reason?: string;
  /** Model and preprocessing profile that produced the vector (set once indexed). */
  model?: string;
  profile?: string;
  updatedAt: Date;
  indexedAt?: Date;
  /** The version (src/domain/versions.ts) of the look its last versioned write came from. */
  version?: Version;
}

export interface Failure {
  key: string;
  reason: string;
  at: Date;
}

export interface ProgressCounts {
  total: number;
  pending: number;
  indexed: number;
  failed: number;
  /** Images indexed in the last `windowSeconds`, for throughput and ETA. */
  recentlyIndexed: number;
  windowSeconds: number;
  recentFailures: Failure[];
}

/** Outcome of claiming an id for a key: a different key already owning the id is a hash collision. */
export type ClaimResult = { ok: true } | { ok: false; ownerKey: string };

export interface PendingEntry {
  key: string;
  id: string;
  etag?: string;
  size?: number;
}

export interface IndexedEntry {
  key: string;
  id: string;
  etag?: string;
  model: string;
  profile: string;
  /** The look the vector's bytes came from; refused when the key records a newer one. */
  version?: Version;
}

export interface FailedEntry {
  key: string;
  id: string;
  reason: string;
  /** The look the failure came from; refused when the key records a newer one. */
  version?: Version;
}

/**
 * Where the state of each image is kept. Marks take a whole batch, as the worker and re-ingest hold one:
 * an adapter can share its writes between the entries (DynamoDB adds the batch's counter changes in one
 * request).
 *
 * Ids are claimed before any record that uses them is written, so a pending or indexed record always
 * owns its id; a failed one may not (the loser of a hash collision is recorded failed under an id that
 * another key owns).
 *
 * Last write wins, by version: a key keeps the version of its last versioned write, and a removal leaves
 * a tombstone with its version (kept TOMBSTONE_RETENTION_MS; never a record: not listed, counted, read
 * or shown). A versioned write older than what the key keeps is refused, atomically with the check, and
 * the counters move in the same atomic write as the records they count.
 */
export interface Catalogue {
  /** Records each id ↔ key mapping (or reports a collision) and marks the images pending: one result per entry. */
  markPending(entries: PendingEntry[]): Promise<ClaimResult[]>;
  /**
   * Records each id ↔ key mapping (or reports a collision) and nothing else: one result per entry. The
   * worker claims the ids of images it finds without a record of their own (objects it learnt of from
   * the bucket's notifications, images that failed before); their next record is the outcome.
   */
  claimIds(entries: { key: string; id: string }[]): Promise<ClaimResult[]>;
  /**
   * Marks the images indexed; returns the keys refused because they keep a newer version (stale).
   * ConflictError when an id has come to belong to another key meanwhile.
   */
  markIndexed(entries: IndexedEntry[]): Promise<string[]>;
  /** Records the failure; false when refused because the key keeps a newer version. */
  markFailed(entry: FailedEntry): Promise<boolean>;
  get(key: string): Promise<ImageRecord | undefined>;
  /** The records of many keys in one lookup; keys without a record are absent from the map. */
  getMany(keys: string[]): Promise<Map<string, ImageRecord>>;
  /** Batch lookup for search results; missing ids are absent from the map. */
  getByIds(ids: string[]): Promise<Map<string, ImageRecord>>;
  /** Every record whose key starts with `prefix`: re-ingest compares them with the bucket. */
  list(prefix?: string): AsyncIterable<ImageRecord>;
  /**
   * Removes the records and id claims, leaving a tombstone with `version` (the look that found the
   * objects gone, or the delete's); returns the keys refused because they keep a newer version.
   */
  remove(keys: string[], version: Version): Promise<string[]>;
  /**
   * Removes a delete-all's leftovers (records written before the emptying) as listed: each record, with its
   * id claim, only if unchanged since (a worker that rewrote it meanwhile keeps it), and the counters by
   * what was removed. No tombstone: the emptying mark already keeps older events out. Returns the keys removed.
   */
  removeLeftovers(records: ImageRecord[]): Promise<string[]>;
  /** The version each key keeps, its tombstone's included; keys that keep none are absent. */
  versions(keys: string[]): Promise<Map<string, Version>>;
  clear(): Promise<void>;
  progress(recentFailures: number): Promise<ProgressCounts>;
  /**
   * Sets the per-state counters to a count of the records themselves (verify's repair of counter drift);
   * returns the counts.
   */
  recount(): Promise<Record<ImageState, number>>;
}

export type TaskKind = 'delete-all' | 'verify' | 'duplicates' | 'reindex';

/**
 * A long piece of maintenance that the worker runs in the background (src/app/tasks.ts), in slices, one
 * queue message each: it survives crashes and restarts, and its record says how far it got.
 */
export interface Task {
  id: string;
  kind: TaskKind;
  state: 'running' | 'done' | 'failed';
  /**
   * What was asked: delete-all `deleteObjects`, verify `repair`, a duplicates scan `threshold`, a re-index
   * the identity it builds (`target`).
   */
  options: { deleteObjects?: boolean; repair?: boolean; threshold?: number; target?: IndexIdentity };
  /** Counts of work done so far, by name (e.g. recordsRemoved), for /progress. */
  progress: Record<string, number>;
  /** A verification's findings (src/app/verify.ts), set when it is done. */
  report?: unknown;
  /** Why it failed. */
  error?: string;
  startedAt: Date;
  updatedAt: Date;
  finishedAt?: Date;
}

/** A store the worker cannot reach: it receives nothing until the store answers again. */
export interface Outage {
  store: 'index' | 'catalogue' | 'object store' | 'queue';
  since: Date;
  reason: string;
}

/**
 * Where workers running in other processes report the store they cannot reach, for /progress and /health
 * (cloud mode: the worker is an ECS task, the API Lambda functions). A report stands for `freshMs` unless
 * renewed, so a worker that died in an outage does not show it for ever.
 */
export interface OutageReports {
  /** This worker's outage, or none (undefined: it recovered or stopped). */
  report(worker: string, outage: Outage | undefined, freshMs: number): Promise<void>;
  /** The earliest outage a worker reported that is still fresh; undefined when none. */
  current(): Promise<Outage | undefined>;
}

/** Where background tasks and the library's last emptying are kept. */
export interface TaskStore {
  /**
   * When the library was last emptied by delete-all; undefined when never. Objects last modified before
   * it and not ingested again since are kept out of the index (the photos a delete-all kept).
   */
  clearedAt(): Promise<Date | undefined>;
  /** Records a new task; with `clearedAt`, also moves the library's emptying mark to it, in one write. */
  start(task: Task, clearedAt?: Date): Promise<void>;
  save(task: Task): Promise<void>;
  get(id: string): Promise<Task | undefined>;
  /** The newest task of this kind. */
  latest(kind: TaskKind): Promise<Task | undefined>;
  /** Which vector index generation is live and which one a re-index builds; undefined before any is recorded. */
  indexGenerations(): Promise<IndexGenerations | undefined>;
  /** Replaces the record in one write: a re-index's switch is this one write. */
  saveIndexGenerations(generations: IndexGenerations): Promise<void>;
}

/**
 * One vector index of the library, built by one identity. `name` says where it lives (its own local index
 * file, its own Milvus collection); the empty name is the index the library had before generations.
 */
export interface IndexGeneration {
  name: string;
  identity: IndexIdentity;
}

/** The live generation answers searches; `building`, while a re-index runs, receives the new model's vectors. */
export interface IndexGenerations {
  live: IndexGeneration;
  building?: IndexGeneration;
}

/** Opens and drops the vector index of each generation (one adapter per backend). */
export interface IndexShelf<I extends VectorIndex = VectorIndex> {
  open(name: string): I;
  /** Removes the generation's index and everything in it; a missing one is not an error. */
  drop(name: string): Promise<void>;
  /** Lets go of every index opened. */
  close(): Promise<void>;
}

/**
 * The model files of each index generation, kept while the generation lives, so searches embed with the
 * live generation's model until a re-index switches, whatever the configured model has become.
 */
export interface ModelShelf {
  /** Keeps a copy of the model the manifest describes (it must be the generation's identity); a kept one stays. */
  keep(generation: IndexGeneration, manifestPath: string): Promise<void>;
  /** A local manifest path of the generation's kept model, fetched to local disk first where needed. */
  manifestOf(generation: IndexGeneration): Promise<string | undefined>;
  /** Removes the generation's copy; a missing one is not an error. */
  drop(generation: IndexGeneration): Promise<void>;
}

export interface IndexIdentity {
  model: string;
  profile: string;
  dimension: number;
}

export interface VectorHit {
  id: string;
  key: string;
  /** Cosine similarity in [-1, 1] (inner product of unit vectors). */
  score: number;
}

export interface SearchOptions {
  topK: number;
  /** Only keys that start with this prefix. */
  prefix?: string;
  /** Drop hits scoring below this. */
  minScore?: number;
}

/**
 * One vector as the index keeps it. `etag`: the etag of the object bytes it was embedded from, so
 * verify can tell a vector of other content than its record says (src/app/verify.ts); absent for
 * vectors written before indexes kept it.
 */
export interface VectorEntry {
  id: string;
  key: string;
  etag?: string;
}

export interface VectorIndex {
  /**
   * Creates the index for `identity` when it does not exist. Throws IndexMismatchError when it exists
   * but was built by another model, profile or dimension: mixing them returns nonsense.
   */
  ensure(identity: IndexIdentity): Promise<void>;
  identity(): Promise<IndexIdentity | undefined>;
  upsert(items: (VectorEntry & { vector: Float32Array })[]): Promise<void>;
  delete(ids: string[]): Promise<void>;
  /** Best first. */
  search(vector: Float32Array, options: SearchOptions): Promise<VectorHit[]>;
  /** The hits of several query vectors, in their order: one request where the index takes several (duplicates scan). */
  searchEach(vectors: Float32Array[], options: SearchOptions): Promise<VectorHit[][]>;
  /** The vector stored for `id`, for "more like this"; undefined when absent. */
  get(id: string): Promise<Float32Array | undefined>;
  /** The vectors stored for several ids, in one request where the index allows; absent ids are left out. */
  getMany(ids: string[]): Promise<Map<string, Float32Array>>;
  count(): Promise<number>;
  /** Removes every vector, keeps the identity. */
  clear(): Promise<void>;
  /** Every stored id with its key and etag, in no particular order: verify compares them with the catalogue. */
  entries(): AsyncIterable<VectorEntry>;
}

/** Two stored vectors alike enough to be near-duplicates, each pair listed once. */
export interface VectorPair {
  a: { id: string; key: string };
  b: { id: string; key: string };
  /** Cosine similarity of the two. */
  score: number;
}

/**
 * An index that can list every pair of its vectors at least `minScore` alike (the duplicates finder).
 * `revision` changes whenever a vector is written or removed, so the pairs of a revision can be kept.
 */
export interface PairFinder {
  similarPairs(minScore: number, maxPairs: number): Promise<VectorPair[]>;
  revision(): Promise<string>;
}

/** Pairs of vector ids a person said are not duplicates of each other ("not duplicates" on the page). */
export interface DismissedPairs {
  add(pairs: [string, string][]): Promise<void>;
  /** Every dismissed pair as pairKey(a, b) (src/domain/ids.ts). */
  all(): Promise<Set<string>>;
}

/** A finished duplicates scan (the worker's `duplicates` task): where its pairs are and what it asked. */
export interface DuplicateScan {
  id: string;
  /** The scan kept pairs at least this alike. */
  threshold: number;
  /** Its pairs are in chunks 0 … chunks - 1. */
  chunks: number;
  finishedAt: Date;
}

/**
 * The pairs a duplicates scan found (cloud mode, where no index can self-join), in numbered chunks of at
 * most MAX_PAIRS_PER_CHUNK pairs (src/app/tasks.ts), so each fits one store item whatever the library's size.
 */
export interface ScannedPairs {
  /** Writing a chunk number again replaces it: a repeated slice writes the same chunks. */
  put(scanId: string, chunk: number, pairs: VectorPair[]): Promise<void>;
  /** Makes the scan the one GET /duplicates reads. */
  finish(scan: DuplicateScan): Promise<void>;
  latest(): Promise<DuplicateScan | undefined>;
  pairs(scan: DuplicateScan): Promise<VectorPair[]>;
}

export interface EmbedderInfo {
  model: string;
  profile: string;
  dimension: number;
  /** Execution provider actually in use, e.g. 'cpu' or 'cuda'. */
  provider: string;
  /** False when seeded (random) weights stand in for pretrained ones. */
  pretrained: boolean;
  /** Scores from which a hit is a `duplicate` / `similar` match; absent when the model is uncalibrated. */
  matchThresholds?: { duplicate: number; similar: number };
}

/** A successful outcome carries the image's thumbnail when it was asked for and could be encoded. */
export type EmbedOutcome =
  | { ok: true; vector: Float32Array; thumbnail?: Uint8Array }
  | { ok: false; reason: string; code: string };

export interface EmbedOptions {
  thumbnails?: boolean;
}

export interface EmbedTimings {
  decodeMs: number;
  embedMs: number;
}

export interface Embedder {
  readonly info: EmbedderInfo;
  /**
   * One outcome per input, in order; a bad image never fails the others. With `thumbnails`, each
   * image's thumbnail is made from the same decode as its vector.
   */
  embed(images: Uint8Array[], options?: EmbedOptions): Promise<EmbedOutcome[]>;
  /** A single query image; throws ImageError for bad input. */
  embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }>;
  /**
   * The query's 8 dihedral variants (rotations by quarter turns, each mirrored or not) embedded as one
   * batch, upright first: a rotated or mirrored copy matches one of them. Throws ImageError for bad input.
   */
  embedOrientations(image: Uint8Array): Promise<{ vectors: Float32Array[]; timings: EmbedTimings }>;
  close(): Promise<void>;
}

/** One decode of an image: the model's input tensor and, when asked, its thumbnail (WebP). */
export interface ProcessedImage {
  /** 3 × size × size values, laid out as the model's manifest says (NCHW). */
  tensor: Float32Array;
  thumbnail?: Uint8Array;
}

/** Checks an upload before it is stored: reads the header only. */
export interface ImageInspector {
  /** Throws ImageError for what must not be decoded (format, pixel count, aspect ratio). */
  inspect(bytes: Uint8Array): Promise<void>;
}

/** Image files → what the model and the result grid need; the only place that decodes images. */
export interface ImageProcessor extends ImageInspector {
  /** Decodes once; throws ImageError for bad input. */
  process(bytes: Uint8Array, options: { thumbnail: boolean }): Promise<ProcessedImage>;
}

/**
 * Embedded folder ingest's provenance: which bucket objects an ingest of which folder copied in, so a
 * re-sync of that folder deletes only its own copies, never an upload, a drop or another folder's copy.
 */
export interface IngestLedger {
  /** Keys under `prefix` that an ingest of `source` (a real path) copied, with the etag each copy got. */
  copiedFrom(source: string, prefix: string): Promise<Map<string, string>>;
  /** Records copies of `source`, replacing what was recorded for those keys. */
  record(source: string, copies: { key: string; etag: string }[]): Promise<void>;
  forget(keys: string[]): Promise<void>;
  close(): void;
}
