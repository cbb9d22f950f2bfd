import type Database from 'better-sqlite3';
import { IndexMismatchError, ValidationError } from '../../domain/errors.ts';
import { describeIdentity, sameIdentity } from '../../domain/index-identity.ts';
import type {
  IndexIdentity,
  PairFinder,
  SearchOptions,
  VectorEntry,
  VectorHit,
  VectorIndex,
  VectorPair,
} from '../../domain/ports.ts';
import { INT8_ZERO_POINT, OnnxGemv } from './onnx-gemv.ts';
import { openSqlite } from './sqlite.ts';

export interface ExactVectorIndexOptions {
  /** Rows per memory block (one MatMul each). @default 65536 */
  blockRows?: number;
  /** Threads for scoring. @default os.availableParallelism() */
  threads?: number;
  /**
   * From this many vectors on, a search scans int8 codes of the vectors and re-scores the best candidates
   * in float32 (PIC_INDEX_INT8_FROM); below it, every vector is scored in float32. @default DEFAULT_INT8_FROM
   */
  int8From?: number;
}

/**
 * Where the int8 scan takes over: at 100k vectors the float32 scan already answers in ~15 ms, and below
 * it the exact answer costs little (docs/performance.md, vector index).
 */
export const DEFAULT_INT8_FROM = 100_000;
/**
 * Candidates the int8 scan hands to the float32 re-scoring: RERANK_FACTOR × topK, at least RERANK_MIN.
 * With these, recall@10 against the exact scan is 1.0 at 1M random 512-d vectors (scripts/bench-index.ts).
 */
const RERANK_FACTOR = 10;
const RERANK_MIN = 100;

/** A block's rows as int8 codes (+ INT8_ZERO_POINT), and 1 / each code's length. */
interface CodeBlock {
  codes: Uint8Array;
  inverseLengths: Float32Array;
}

const FIRST_BLOCK_ROWS = 1024;
/** Rows scored against the rest of the index in one MatMul by similarPairs. */
const SELF_JOIN_ROWS = 256;

/**
 * Exact (brute-force) nearest neighbours by cosine similarity. Vectors are kept in SQLite (one blob
 * per row, as given) and, unit-normalised, in memory as row-major Float32Array blocks that
 * onnxruntime scores with one MatMul per block; the best topK are then picked in one pass. Exact
 * search needs no index tuning and has perfect recall; it was measured against sqlite-vec's vec0 and a
 * JS loop in scripts/bench-index.ts and chosen for speed (docs/performance.md, vector index).
 *
 * From `int8From` vectors on, the scan reads int8 codes instead (one byte per dimension, scaled per
 * row, so a quarter of the memory traffic that bounds it) and the best RERANK_FACTOR × topK candidates,
 * filters applied, are re-scored exactly in float32: returned scores are exact, and a true top-k vector
 * is missed only when int8 rounding pushes it out of the candidates (recall@10 is measured).
 *
 * Another process (the CLI on the same data directory) may write the file; `PRAGMA data_version`
 * tells, and the memory copy is then reloaded. Operations run one at a time, so a search never sees
 * rows move under it.
 */
export class ExactVectorIndex implements VectorIndex, PairFinder {
  readonly #db: Database.Database;
  readonly #blockRows: number;
  readonly #threads: number | undefined;
  readonly #int8From: number;
  readonly #stmt;
  #queue: Promise<unknown> = Promise.resolve();
  #identity: IndexIdentity | undefined;
  #gemv: OnnxGemv | undefined;
  #int8Gemv: OnnxGemv<'int8'> | undefined;
  #dataVersion = -1;
  /** Writes by this connection: PRAGMA data_version counts only other connections' writes. */
  #ownWrites = 0;
  #blocks: Float32Array[] = [];
  #ids: string[] = [];
  #keys: string[] = [];
  #rowOf = new Map<string, number>();
  /** Per block, once a search has needed them (int8From), then kept in step with every write. */
  #codes: CodeBlock[] | undefined;

  constructor(dbPath: string, options: ExactVectorIndexOptions = {}) {
    this.#blockRows = options.blockRows ?? 65536;
    this.#threads = options.threads;
    this.#int8From = options.int8From ?? DEFAULT_INT8_FROM;
    this.#db = openSqlite(dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, key TEXT NOT NULL, vector BLOB NOT NULL, etag TEXT);`);
    addEtagColumn(this.#db);
    this.#stmt = {
      identity: this.#db.prepare<[], { value: string }>("SELECT value FROM meta WHERE name = 'identity'"),
      setIdentity: this.#db.prepare("INSERT OR REPLACE INTO meta (name, value) VALUES ('identity', ?)"),
      all: this.#db.prepare('SELECT id, key, vector FROM vectors').raw(true).safeIntegers(true),
      get: this.#db.prepare<[bigint], { vector: Buffer }>('SELECT vector FROM vectors WHERE id = ?'),
      upsert: this.#db.prepare(
        `INSERT INTO vectors (id, key, vector, etag) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET key = excluded.key, vector = excluded.vector, etag = excluded.etag`,
      ),
      entries: this.#db
        .prepare<[], { id: bigint; key: string; etag: string | null }>('SELECT id, key, etag FROM vectors')
        .safeIntegers(true),
      delete: this.#db.prepare('DELETE FROM vectors WHERE id = ?'),
      clear: this.#db.prepare('DELETE FROM vectors'),
    };
  }

  ensure(identity: IndexIdentity): Promise<void> {
    return this.#exclusive(async () => {
      const stored = this.#identity;
      if (stored === undefined) {
        if (!Number.isInteger(identity.dimension) || identity.dimension < 1) {
          throw new ValidationError(`vector dimension must be a positive integer, not ${identity.dimension}`);
        }
        this.#stmt.setIdentity.run(JSON.stringify(identity));
        this.#identity = { ...identity };
        return;
      }
      if (!sameIdentity(stored, identity)) {
        throw new IndexMismatchError(
          `the vector index was built by ${describeIdentity(stored)} but this service embeds with ` +
            `${describeIdentity(identity)}; their scores are not comparable. Re-index (POST /reindex) to ` +
            'rebuild it with this model, or use another data directory.',
        );
      }
    });
  }

  identity(): Promise<IndexIdentity | undefined> {
    return this.#exclusive(async () => this.#identity && { ...this.#identity });
  }

  upsert(items: (VectorEntry & { vector: Float32Array })[]): Promise<void> {
    return this.#exclusive(async () => {
      const dimension = this.#requireIdentity().dimension;
      const rows = items.map((item) => ({
        id: parseId(item.id),
        key: item.key,
        etag: item.etag ?? null,
        vector: item.vector,
        unit: unitVector(item.vector, dimension, `vector of '${item.key}'`),
      }));
      this.#db.transaction(() => {
        for (const row of rows) {
          const blob = Buffer.from(row.vector.buffer, row.vector.byteOffset, row.vector.byteLength);
          this.#stmt.upsert.run(row.id, row.key, blob, row.etag);
        }
      })();
      for (const row of rows) this.#put(row.id.toString(), row.key, row.unit);
      this.#ownWrites++;
    });
  }

  delete(ids: string[]): Promise<void> {
    return this.#exclusive(async () => {
      const parsed = ids.map(parseId);
      this.#db.transaction(() => {
        for (const id of parsed) this.#stmt.delete.run(id);
      })();
      for (const id of parsed) this.#remove(id.toString());
      this.#ownWrites++;
    });
  }

  search(vector: Float32Array, options: SearchOptions): Promise<VectorHit[]> {
    return this.#exclusive(async () => {
      const { topK, prefix, minScore } = options;
      if (!Number.isInteger(topK) || topK < 1) throw new ValidationError(`topK must be a positive integer`);
      if (this.#identity === undefined || this.#ids.length === 0) return [];
      const query = unitVector(vector, this.#identity.dimension, 'query vector');
      const best =
        this.#ids.length < this.#int8From
          ? await this.#scan(new TopK(topK, minScore), prefix, await this.#floatScores(query))
          : this.#rescore(
              await this.#scan(
                new TopK(Math.max(topK * RERANK_FACTOR, RERANK_MIN), undefined),
                prefix,
                await this.#int8Scores(query),
              ),
              query,
              new TopK(topK, minScore),
            );
      return best.rows().map(({ row, score }) => ({
        id: this.#ids[row] as string,
        key: this.#keys[row] as string,
        // Rounding in float32 can step a hair past ±1.
        score: Math.max(-1, Math.min(1, score)),
      }));
    });
  }

  /**
   * The exact self-join, over a copy of the vectors taken at once: searches and writes go on while it
   * runs (an O(n²) join takes seconds at 10k vectors), and its own MatMul session leaves the searches'
   * alone. Rows are taken SELF_JOIN_ROWS at a time and scored in one MatMul against themselves and every
   * later row, so each pair is scored once. ValidationError past `maxPairs`: a threshold that low lists
   * most of the library, not its duplicates.
   */
  async similarPairs(minScore: number, maxPairs: number): Promise<VectorPair[]> {
    const snapshot = await this.#exclusive(async () => {
      const total = this.#ids.length;
      if (this.#identity === undefined || total < 2) return undefined;
      const { dimension } = this.#identity;
      const matrix = new Float32Array(total * dimension);
      for (let row = 0; row < total; row++) matrix.set(this.#rowView(row, dimension), row * dimension);
      return { ids: [...this.#ids], keys: [...this.#keys], matrix, dimension };
    });
    if (!snapshot) return [];
    const { ids, keys, matrix, dimension } = snapshot;
    const total = ids.length;
    const gemv = await OnnxGemv.create(dimension, this.#threads);
    try {
      const pairs: VectorPair[] = [];
      const queries = new Float32Array(dimension * SELF_JOIN_ROWS);
      for (let first = 0; first < total; first += SELF_JOIN_ROWS) {
        const columns = Math.min(SELF_JOIN_ROWS, total - first);
        for (let j = 0; j < columns; j++) {
          for (let d = 0; d < dimension; d++) {
            queries[d * columns + j] = matrix[(first + j) * dimension + d] as number;
          }
        }
        // From the batch's own first row on, this.#blockRows rows per MatMul to bound the scores' size.
        for (let start = first; start < total; start += this.#blockRows) {
          const rows = Math.min(this.#blockRows, total - start);
          const scores = await gemv.scoresMany(
            matrix.subarray(start * dimension, (start + rows) * dimension),
            rows,
            queries.subarray(0, dimension * columns),
            columns,
          );
          for (let i = 0; i < rows; i++) {
            const row = start + i;
            for (let j = 0; j < columns && first + j < row; j++) {
              const score = scores[i * columns + j] as number;
              if (score < minScore) continue;
              if (pairs.length >= maxPairs) {
                throw new ValidationError(
                  `more than ${maxPairs} pairs of images score ${minScore} or more: raise the threshold`,
                );
              }
              const a = first + j;
              pairs.push({
                a: { id: ids[a] as string, key: keys[a] as string },
                b: { id: ids[row] as string, key: keys[row] as string },
                score: Math.min(1, score),
              });
            }
          }
        }
      }
      return pairs;
    } finally {
      await gemv.close();
    }
  }

  revision(): Promise<string> {
    return this.#exclusive(async () => `${this.#dataVersion}.${this.#ownWrites}`);
  }

  get(id: string): Promise<Float32Array | undefined> {
    return this.#exclusive(async () => {
      const row = this.#stmt.get.get(parseId(id));
      if (row === undefined) return undefined;
      // Copy: the blob's bytes need not be 4-byte aligned for a Float32Array view.
      return new Float32Array(new Uint8Array(row.vector).buffer);
    });
  }

  /** One scan per vector: this index lives in memory, so several vectors save no round trip. */
  async searchEach(vectors: Float32Array[], options: SearchOptions): Promise<VectorHit[][]> {
    return Promise.all(vectors.map((vector) => this.search(vector, options)));
  }

  async getMany(ids: string[]): Promise<Map<string, Float32Array>> {
    const found = new Map<string, Float32Array>();
    for (const id of ids) {
      const vector = await this.get(id);
      if (vector) found.set(id, vector);
    }
    return found;
  }

  count(): Promise<number> {
    return this.#exclusive(async () => this.#ids.length);
  }

  clear(): Promise<void> {
    return this.#exclusive(async () => {
      this.#stmt.clear.run();
      this.#reset();
      this.#ownWrites++;
    });
  }

  /**
   * A snapshot taken in one step, so that writes while the caller iterates do not move rows under it. Read
   * from the file (the etags are not kept in memory), which holds the same rows as the memory copy here.
   */
  async *entries(): AsyncIterable<VectorEntry> {
    const snapshot = await this.#exclusive(async () =>
      this.#stmt.entries.all().map(({ id, key, etag }) => ({
        id: id.toString(),
        key,
        ...(etag === null ? {} : { etag }),
      })),
    );
    yield* snapshot;
  }

  async close(): Promise<void> {
    await this.#exclusive(async () => {
      await this.#gemv?.close();
      await this.#int8Gemv?.close();
      this.#gemv = undefined;
      this.#int8Gemv = undefined;
      this.#db.close();
    });
  }

  /** Runs `task` after every earlier operation, first reloading when another process changed the file. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      this.#syncWithFile();
      return task();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #syncWithFile(): void {
    const version = this.#db.pragma('data_version', { simple: true }) as number;
    if (version === this.#dataVersion) return;
    this.#dataVersion = version;
    const stored = this.#stmt.identity.get();
    this.#identity = stored && (JSON.parse(stored.value) as IndexIdentity);
    this.#reset();
    if (this.#identity === undefined) return;
    const { dimension } = this.#identity;
    for (const [id, key, blob] of this.#stmt.all.iterate() as Iterable<[bigint, string, Buffer]>) {
      if (blob.byteLength !== dimension * 4) continue;
      const vector =
        blob.byteOffset % 4 === 0
          ? new Float32Array(blob.buffer, blob.byteOffset, dimension)
          : new Float32Array(new Uint8Array(blob).buffer);
      const row = this.#append(id.toString(), key, dimension);
      unitVector(vector, dimension, `stored vector ${id}`, this.#rowView(row, dimension));
    }
  }

  #requireIdentity(): IndexIdentity {
    if (this.#identity === undefined) {
      throw new ValidationError('the vector index has no model identity yet: call ensure() first');
    }
    return this.#identity;
  }

  /** Offers every row's score, block by block, to `best`: the rows whose key starts with `prefix`. */
  async #scan(
    best: TopK,
    prefix: string | undefined,
    scoresOf: (block: number, rows: number) => Promise<ArrayLike<number>>,
  ): Promise<TopK> {
    for (let block = 0; block < this.#blocks.length; block++) {
      const first = block * this.#blockRows;
      const rows = Math.min(this.#blockRows, this.#ids.length - first);
      if (rows <= 0) break;
      const scores = await scoresOf(block, rows);
      for (let i = 0; i < rows; i++) {
        const score = scores[i] as number;
        if (!best.admits(score)) continue;
        if (prefix !== undefined && !(this.#keys[first + i] as string).startsWith(prefix)) continue;
        best.add(score, first + i);
      }
    }
    return best;
  }

  async #floatScores(query: Float32Array) {
    const dimension = this.#requireIdentity().dimension;
    if (this.#gemv?.dimension !== dimension) {
      await this.#gemv?.close();
      this.#gemv = await OnnxGemv.create(dimension, this.#threads);
    }
    const gemv = this.#gemv;
    return (block: number, rows: number) => gemv.scores(this.#blocks[block] as Float32Array, rows, query);
  }

  /** Cosine estimates from the int8 codes: code · query code / (their lengths). */
  async #int8Scores(query: Float32Array) {
    const dimension = this.#requireIdentity().dimension;
    if (this.#int8Gemv?.dimension !== dimension) {
      await this.#int8Gemv?.close();
      this.#int8Gemv = await OnnxGemv.create(dimension, this.#threads, 'int8');
    }
    const gemv = this.#int8Gemv;
    const codes = this.#codes ?? this.#encodeAll(dimension);
    const stored = new Uint8Array(dimension);
    const queryScale = encodeInt8(query, stored, 0);
    const queryCode = Int8Array.from(stored, (code) => code - INT8_ZERO_POINT);
    return async (block: number, rows: number) => {
      const { codes: blockCodes, inverseLengths } = codes[block] as CodeBlock;
      const dots = await gemv.scores(blockCodes, rows, queryCode);
      const estimates = new Float32Array(rows);
      for (let i = 0; i < rows; i++) {
        estimates[i] = (dots[i] as number) * (inverseLengths[i] as number) * queryScale;
      }
      return estimates;
    };
  }

  /** The candidates' exact float32 scores offered to `best`. */
  #rescore(candidates: TopK, query: Float32Array, best: TopK): TopK {
    for (const { row } of candidates.rows()) {
      const vector = this.#rowView(row, query.length);
      let score = 0;
      for (let d = 0; d < query.length; d++) score += (vector[d] as number) * (query[d] as number);
      if (best.admits(score)) best.add(score, row);
    }
    return best;
  }

  #encodeAll(dimension: number): CodeBlock[] {
    const codes = this.#blocks.map((block) => ({
      codes: new Uint8Array(block.length),
      inverseLengths: new Float32Array(block.length / dimension),
    }));
    this.#codes = codes;
    for (let row = 0; row < this.#ids.length; row++) this.#encodeRow(row, dimension);
    return codes;
  }

  #encodeRow(row: number, dimension: number): void {
    if (this.#codes === undefined) return;
    const block = this.#codes[Math.floor(row / this.#blockRows)] as CodeBlock;
    const at = row % this.#blockRows;
    block.inverseLengths[at] = encodeInt8(this.#rowView(row, dimension), block.codes, at * dimension);
  }

  #put(id: string, key: string, unit: Float32Array): void {
    let row = this.#rowOf.get(id);
    if (row === undefined) row = this.#append(id, key, unit.length);
    else this.#keys[row] = key;
    this.#rowView(row, unit.length).set(unit);
    this.#encodeRow(row, unit.length);
  }

  #append(id: string, key: string, dimension: number): number {
    const row = this.#ids.length;
    this.#reserve(row + 1, dimension);
    this.#ids.push(id);
    this.#keys.push(key);
    this.#rowOf.set(id, row);
    return row;
  }

  /** Moves the last row into the hole so the rows stay dense. */
  #remove(id: string): void {
    const row = this.#rowOf.get(id);
    if (row === undefined) return;
    const last = this.#ids.length - 1;
    const dimension = this.#identity?.dimension ?? 0;
    if (row !== last) {
      this.#rowView(row, dimension).set(this.#rowView(last, dimension));
      this.#encodeRow(row, dimension);
      const movedId = this.#ids[last] as string;
      this.#ids[row] = movedId;
      this.#keys[row] = this.#keys[last] as string;
      this.#rowOf.set(movedId, row);
    }
    this.#ids.pop();
    this.#keys.pop();
    this.#rowOf.delete(id);
  }

  /** Full blocks of blockRows; the last one grows by doubling so a small index stays small. */
  #reserve(rows: number, dimension: number): void {
    const block = Math.floor((rows - 1) / this.#blockRows);
    const needed = rows - block * this.#blockRows;
    const current = this.#blocks[block];
    if (current !== undefined && current.length >= needed * dimension) return;
    let capacity = Math.max(FIRST_BLOCK_ROWS, (current?.length ?? 0) / dimension);
    while (capacity < needed) capacity *= 2;
    capacity = Math.min(capacity, this.#blockRows);
    this.#blocks[block] = grown(current, new Float32Array(capacity * dimension));
    if (this.#codes === undefined) return;
    const codes = this.#codes[block];
    this.#codes[block] = {
      codes: grown(codes?.codes, new Uint8Array(capacity * dimension)),
      inverseLengths: grown(codes?.inverseLengths, new Float32Array(capacity)),
    };
  }

  #rowView(row: number, dimension: number): Float32Array {
    const block = this.#blocks[Math.floor(row / this.#blockRows)] as Float32Array;
    const offset = (row % this.#blockRows) * dimension;
    return block.subarray(offset, offset + dimension);
  }

  #reset(): void {
    this.#blocks = [];
    this.#ids = [];
    this.#keys = [];
    this.#rowOf = new Map();
    this.#codes = undefined;
  }
}

function grown<T extends Float32Array | Uint8Array>(current: T | undefined, larger: T): T {
  if (current !== undefined) larger.set(current);
  return larger;
}

/**
 * Writes `unit`'s int8 code (each value × 127 / the largest magnitude, rounded) + INT8_ZERO_POINT into
 * `into` from `at` on, and returns 1 / the code's length. Scaling each vector to its own range keeps the
 * most precision; cosine does not see the scale.
 */
function encodeInt8(unit: Float32Array, into: Uint8Array, at: number): number {
  let largest = 0;
  for (let d = 0; d < unit.length; d++) {
    const value = unit[d] as number;
    if (value > largest) largest = value;
    else if (-value > largest) largest = -value;
  }
  const scale = 127 / largest;
  let sum = 0;
  for (let d = 0; d < unit.length; d++) {
    // Rounds half up; the value + 128.5 is positive, so truncation is floor.
    const stored = ((unit[d] as number) * scale + INT8_ZERO_POINT + 0.5) | 0;
    into[at + d] = stored;
    const code = stored - INT8_ZERO_POINT;
    sum += code * code;
  }
  return 1 / Math.sqrt(sum);
}

/** The best `k` rows seen so far, best first; ties keep the earlier row. */
class TopK {
  readonly #scores: number[] = [];
  readonly #rows: number[] = [];

  constructor(
    private readonly k: number,
    private readonly minScore: number | undefined,
  ) {}

  admits(score: number): boolean {
    if (this.minScore !== undefined && score < this.minScore) return false;
    return this.#scores.length < this.k || score > (this.#scores[this.k - 1] as number);
  }

  add(score: number, row: number): void {
    let at = this.#scores.length;
    while (at > 0 && (this.#scores[at - 1] as number) < score) at--;
    this.#scores.splice(at, 0, score);
    this.#rows.splice(at, 0, row);
    if (this.#scores.length > this.k) {
      this.#scores.pop();
      this.#rows.pop();
    }
  }

  rows(): { row: number; score: number }[] {
    return this.#rows.map((row, i) => ({ row, score: this.#scores[i] as number }));
  }
}

/**
 * Index files written before vectors kept their etag gain the column (null for their rows). Two
 * processes opening one such file at once may both try: the loser finds the column there.
 */
function addEtagColumn(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(vectors)').all();
  if (columns.some((column) => column.name === 'etag')) return;
  try {
    db.exec('ALTER TABLE vectors ADD COLUMN etag TEXT');
  } catch (error) {
    if (!/duplicate column/i.test(String(error))) throw error;
  }
}

function parseId(id: string): bigint {
  if (typeof id !== 'string' || !/^\d{1,19}$/.test(id) || BigInt(id) >= 1n << 63n) {
    throw new ValidationError(`vector id '${id}' is not a non-negative 63-bit integer`);
  }
  return BigInt(id);
}

/** The vector scaled to length 1 (cosine similarity is then a dot product). */
function unitVector(
  vector: Float32Array,
  dimension: number,
  what: string,
  into: Float32Array = new Float32Array(dimension),
): Float32Array {
  if (vector.length !== dimension) {
    throw new ValidationError(`${what} has ${vector.length} dimensions, the index ${dimension}`);
  }
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += (vector[i] as number) * (vector[i] as number);
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm) || norm === 0) {
    throw new ValidationError(`${what} is zero or not finite: it has no direction to compare`);
  }
  for (let i = 0; i < dimension; i++) into[i] = (vector[i] as number) / norm;
  return into;
}
