import { ConsistencyLevelEnum, DataType, MilvusClient } from '@zilliz/milvus2-sdk-node';
import {
  AppError,
  IndexMismatchError,
  ServiceUnavailableError,
  ValidationError,
} from '../../domain/errors.ts';
import { describeIdentity, sameIdentity } from '../../domain/index-identity.ts';
import type {
  IndexIdentity,
  SearchOptions,
  VectorEntry,
  VectorHit,
  VectorIndex,
} from '../../domain/ports.ts';

export interface MilvusVectorIndexOptions {
  /** host:port (plaintext gRPC) or https://endpoint (TLS, Zilliz Cloud). */
  address: string;
  /** Zilliz Cloud API key, or "user:password"; omitted for servers without auth (Milvus Lite). */
  token?: string;
  collection: string;
  /**
   * Zilliz Cloud builds only AUTOINDEX; self-hosted Milvus and Milvus Lite take HNSW with explicit
   * parameters. @default 'AUTOINDEX' for https:// addresses, 'HNSW' otherwise
   */
  indexType?: 'HNSW' | 'AUTOINDEX';
  /** Deadline of every call. @default 30000 (Zilliz serverless clusters can take seconds to wake) */
  timeoutMs?: number;
}

/** S3 keys are at most 1024 UTF-8 bytes; VarChar max_length counts bytes. */
const KEY_MAX_BYTES = 1024;
/** S3 etags are an MD5 in quotes, with "-<parts>" after multipart uploads: well under this. */
const ETAG_MAX_BYTES = 128;
const PROPERTY = { model: 'pic.model', profile: 'pic.profile', dimension: 'pic.dimension' } as const;
const HNSW = { M: 16, efConstruction: 200 };
const NOT_LOADED = /\b101\b.*(released|not loaded)|collection not loaded/i;
/** Rows one query of entries() may return (Milvus allows up to 16384); a range that fills it is split. */
const ENTRIES_PAGE = 1000;
/** Ids are non-negative 63-bit integers: [0, 2^63). */
const ID_END = 1n << 63n;
/** Milvus caps top-k at 16384; the API caps it far lower. */
const MAX_TOP_K = 16_384;

/**
 * Milvus / Zilliz Cloud over gRPC (@zilliz/milvus2-sdk-node). One collection: `id` Int64 primary key
 * (our 63-bit ids, passed and returned as decimal strings, never JS numbers), `key` VarChar (the object
 * key, for prefix filters), `etag` VarChar (of the bytes the vector came from; collections created before
 * it have no such field, and their vectors none), `vector` FloatVector with COSINE: scores are cosine
 * similarity whether or not the caller normalised, and vectors come back from get() as they were stored. The model identity is
 * kept in the collection's properties so a different model is refused (IndexMismatchError).
 */
export class MilvusVectorIndex implements VectorIndex {
  readonly #client: MilvusClient;
  readonly #address: string;
  readonly #collection: string;
  readonly #indexType: 'HNSW' | 'AUTOINDEX';
  #identity: IndexIdentity | undefined;
  /** Whether the collection has the `etag` field; read with the identity. */
  #keepsEtags = false;
  #loading: Promise<void> | undefined;
  /** The last write sent, settled or not: the next one waits for it (#oneWriteAtATime). */
  #lastWrite: Promise<unknown> = Promise.resolve();

  constructor(options: MilvusVectorIndexOptions) {
    this.#address = options.address;
    this.#collection = options.collection;
    this.#indexType = options.indexType ?? (options.address.startsWith('https://') ? 'AUTOINDEX' : 'HNSW');
    this.#client = new MilvusClient({
      address: options.address,
      ...(options.token ? { token: options.token } : {}),
      timeout: options.timeoutMs ?? 30_000,
      // Heartbeat RPCs on a timer are useless in Lambda and unimplemented by Milvus Lite.
      telemetry: { enabled: false },
      // The SDK logs every request at debug when NODE_ENV=test (its winston default); our errors say enough.
      logLevel: 'warn',
    } as ConstructorParameters<typeof MilvusClient>[0]);
    // Connection failures surface on the first call (with the address, mapped below); not as an unhandled rejection.
    this.#client.connectPromise.catch(() => undefined);
  }

  get collection(): string {
    return this.#collection;
  }

  ensure(identity: IndexIdentity): Promise<void> {
    return this.#call('ensure', async () => {
      if (!Number.isInteger(identity.dimension) || identity.dimension < 1) {
        throw new ValidationError(`vector dimension must be a positive integer, not ${identity.dimension}`);
      }
      this.#identity = undefined;
      let stored = await this.#readIdentity();
      if (stored === undefined) {
        await this.#create(identity).catch(async (error: unknown) => {
          // Another worker may have created it first: then its identity decides below.
          if ((await this.#readIdentity()) === undefined) throw error;
        });
        stored = await this.#readIdentity();
      }
      if (stored === undefined || !sameIdentity(stored, identity)) {
        throw new IndexMismatchError(
          `the Milvus collection '${this.#collection}' was built by ` +
            `${stored ? describeIdentity(stored) : 'an unknown model'} but this service embeds with ` +
            `${describeIdentity(identity)}; their scores are not comparable. Re-index (POST /reindex) to ` +
            'rebuild it with this model, or set MILVUS_COLLECTION to another name.',
        );
      }
      await this.#loaded();
      this.#identity = stored;
    });
  }

  identity(): Promise<IndexIdentity | undefined> {
    return this.#call('identity', () => this.#readIdentity());
  }

  upsert(items: (VectorEntry & { vector: Float32Array })[]): Promise<void> {
    return this.#oneWriteAtATime('upsert', async () => {
      if (items.length === 0) return;
      const dimension = (await this.#requireIdentity()).dimension;
      const data = items.map((item) => {
        if (item.vector.length !== dimension) {
          throw new ValidationError(
            `vector of '${item.key}' has ${item.vector.length} dimensions, the index ${dimension}`,
          );
        }
        return {
          id: checkId(item.id),
          key: item.key,
          ...(this.#keepsEtags ? { etag: item.etag ?? '' } : {}),
          vector: Array.from(item.vector),
        };
      });
      check(await this.#client.upsert({ collection_name: this.#collection, data }));
    });
  }

  delete(ids: string[]): Promise<void> {
    return this.#oneWriteAtATime('delete', async () => {
      if (ids.length === 0 || (await this.#readIdentity()) === undefined) return;
      check(
        await this.#client.delete({
          collection_name: this.#collection,
          filter: `id in [${ids.map(checkId).join(',')}]`,
        }),
      );
    });
  }

  async search(vector: Float32Array, options: SearchOptions): Promise<VectorHit[]> {
    return (await this.searchEach([vector], options))[0] ?? [];
  }

  searchEach(vectors: Float32Array[], options: SearchOptions): Promise<VectorHit[][]> {
    return this.#call('search', async () => {
      const { topK, prefix, minScore } = options;
      if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) {
        throw new ValidationError(`topK must be an integer from 1 to ${MAX_TOP_K}`);
      }
      const filter = prefixFilter(prefix);
      if (vectors.length === 0 || (await this.#readIdentity()) === undefined) return vectors.map(() => []);
      const result = await this.#client.search({
        collection_name: this.#collection,
        data: vectors.map((vector) => Array.from(vector)),
        anns_field: 'vector',
        limit: topK,
        metric_type: 'COSINE',
        // Milvus Lite returns the primary key only when it is asked for by name.
        output_fields: ['id', 'key'],
        ...(filter ? { filter } : {}),
        ...(this.#indexType === 'HNSW' ? { params: { ef: Math.max(64, topK) } } : {}),
      });
      check(result.status);
      // The SDK returns one query vector's hits as a flat list, several as a list per vector; ids are
      // strings (int64). The prefix is in the filter, so these are the topK best under it; only the score
      // threshold is applied here.
      type Hit = { id: string; key: string; score: number };
      const lists = (vectors.length === 1 ? [result.results] : result.results) as unknown as Hit[][];
      return lists.map((hits) =>
        hits
          .filter((hit) => minScore === undefined || hit.score >= minScore)
          .map((hit) => ({ id: String(hit.id), key: hit.key, score: Math.max(-1, Math.min(1, hit.score)) })),
      );
    });
  }

  async get(id: string): Promise<Float32Array | undefined> {
    return (await this.getMany([id])).get(id);
  }

  getMany(ids: string[]): Promise<Map<string, Float32Array>> {
    return this.#call('get', async () => {
      const found = new Map<string, Float32Array>();
      if (ids.length === 0 || (await this.#readIdentity()) === undefined) return found;
      const result = await this.#client.query({
        collection_name: this.#collection,
        filter: `id in [${ids.map(checkId).join(',')}]`,
        output_fields: ['id', 'vector'],
        consistency_level: ConsistencyLevelEnum.Strong,
      });
      check(result.status);
      for (const row of result.data as { id: string | number; vector?: number[] }[]) {
        if (row.vector) found.set(String(row.id), Float32Array.from(row.vector));
      }
      return found;
    });
  }

  count(): Promise<number> {
    return this.#call('count', async () => {
      if ((await this.#readIdentity()) === undefined) return 0;
      // Strong: a count right after upserts or deletes must include them (milvus-io/milvus#32031).
      const result = await this.#client.query({
        collection_name: this.#collection,
        output_fields: ['count(*)'],
        consistency_level: ConsistencyLevelEnum.Strong,
      });
      check(result.status);
      return Number((result.data[0] as Record<string, unknown> | undefined)?.['count(*)'] ?? 0);
    });
  }

  /**
   * Lists the collection in ranges of ids: a limited query's rows come in no guaranteed order (Milvus Lite
   * returns any 1000 of a larger match, so paging by "id > last seen" skips rows), so each range must
   * match fewer rows than the limit; a range that fills it is split in two and read again. Ids are
   * 63-bit hashes, spread evenly, so ranges sized from the count rarely need splitting. Strong, so recent
   * writes are listed.
   */
  async *entries(): AsyncIterable<VectorEntry> {
    const total = await this.count();
    const fields = ['id', 'key', ...(this.#keepsEtags ? ['etag'] : [])];
    if (total === 0) return;
    const parts = BigInt(Math.max(1, Math.ceil((2 * total) / ENTRIES_PAGE)));
    const ranges: [bigint, bigint][] = [];
    for (let i = parts - 1n; i >= 0n; i--) ranges.push([(ID_END * i) / parts, (ID_END * (i + 1n)) / parts]);
    while (ranges.length > 0) {
      const [low, high] = ranges.pop() as [bigint, bigint];
      const rows = await this.#call('entries', async () => {
        const result = await this.#client.query({
          collection_name: this.#collection,
          // Inclusive upper bound: 2^63 itself is past int64 and matches nothing.
          filter: `id >= ${low} and id <= ${high - 1n}`,
          output_fields: fields,
          limit: ENTRIES_PAGE,
          consistency_level: ConsistencyLevelEnum.Strong,
        });
        check(result.status);
        return result.data as { id: string | number; key: string; etag?: string }[];
      });
      if (rows.length >= ENTRIES_PAGE && high - low > 1n) {
        const middle = (low + high) / 2n;
        ranges.push([middle, high], [low, middle]);
        continue;
      }
      for (const { id, key, etag } of rows) yield { id: String(id), key, ...(etag ? { etag } : {}) };
    }
  }

  /** Drops and re-creates the collection with the same identity: faster than deleting every row. */
  clear(): Promise<void> {
    return this.#oneWriteAtATime('clear', async () => {
      const identity = await this.#readIdentity();
      if (identity === undefined) return;
      check(await this.#client.dropCollection({ collection_name: this.#collection }));
      await this.#create(identity);
      await this.#loaded();
    });
  }

  /** Removes the collection itself, identity included (tests and tear-down). */
  drop(): Promise<void> {
    return this.#oneWriteAtATime('drop', async () => {
      check(await this.#client.dropCollection({ collection_name: this.#collection }));
      this.#identity = undefined;
    });
  }

  async close(): Promise<void> {
    await this.#client.closeConnection();
  }

  async #create(identity: IndexIdentity): Promise<void> {
    check(
      await this.#client.createCollection({
        collection_name: this.#collection,
        description: JSON.stringify(identity),
        fields: [
          { name: 'id', data_type: DataType.Int64, is_primary_key: true, autoID: false },
          { name: 'key', data_type: DataType.VarChar, max_length: KEY_MAX_BYTES },
          { name: 'etag', data_type: DataType.VarChar, max_length: ETAG_MAX_BYTES },
          { name: 'vector', data_type: DataType.FloatVector, dim: identity.dimension },
        ],
        properties: {
          [PROPERTY.model]: identity.model,
          [PROPERTY.profile]: identity.profile,
          [PROPERTY.dimension]: String(identity.dimension),
        },
      } as Parameters<MilvusClient['createCollection']>[0]),
    );
    check(
      await this.#client.createIndex({
        collection_name: this.#collection,
        field_name: 'vector',
        index_type: this.#indexType,
        metric_type: 'COSINE',
        ...(this.#indexType === 'HNSW' ? { params: HNSW } : {}),
      }),
    );
    this.#keepsEtags = true;
  }

  /** Loads the collection unless it is loaded; concurrent callers share one load. */
  #loaded(): Promise<void> {
    this.#loading ??= (async () => {
      const state = await this.#client.getLoadState({ collection_name: this.#collection });
      check(state.status);
      if (state.state !== 'LoadStateLoaded') {
        check(await this.#client.loadCollectionSync({ collection_name: this.#collection }));
      }
    })().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #requireIdentity(): Promise<IndexIdentity> {
    const identity = this.#identity ?? (await this.#readIdentity());
    if (identity === undefined) {
      throw new ValidationError(
        `the Milvus collection '${this.#collection}' does not exist yet: call ensure() first`,
      );
    }
    return identity;
  }

  /** The identity from the collection's properties (or its description, where properties are not kept). */
  async #readIdentity(): Promise<IndexIdentity | undefined> {
    if (this.#identity) return this.#identity;
    const has = await this.#client.hasCollection({ collection_name: this.#collection });
    check(has.status);
    if (!has.value) {
      this.#identity = undefined;
      return undefined;
    }
    const described = await this.#client.describeCollection({ collection_name: this.#collection });
    check(described.status);
    this.#keepsEtags = (described.schema?.fields ?? []).some((field) => field.name === 'etag');
    const props = new Map((described.properties ?? []).map((p) => [p.key, String(p.value)]));
    const model = props.get(PROPERTY.model);
    const profile = props.get(PROPERTY.profile);
    const dimension = Number(props.get(PROPERTY.dimension));
    if (model && profile && dimension > 0) {
      this.#identity = { model, profile, dimension };
      return this.#identity;
    }
    try {
      const parsed = JSON.parse(described.schema?.description ?? '') as IndexIdentity;
      if (parsed.model && parsed.profile && parsed.dimension > 0) {
        this.#identity = { model: parsed.model, profile: parsed.profile, dimension: parsed.dimension };
        return this.#identity;
      }
    } catch {
      // Not ours: reported as a mismatch by ensure().
    }
    return { model: 'unknown', profile: 'unknown', dimension: vectorDimension(described.schema?.fields) };
  }

  /**
   * Sends this process's writes one after another. Milvus Lite's gRPC server is single-writer per
   * collection (milvus_lite/adapter/grpc/server.py says so): 960 rows upserted three batches at a time
   * all counted while it ran, yet 32 and 648 of them came back after a restart; sent one at a time, all
   * 960. Milvus and Zilliz Cloud take concurrent writes, but the worker writes once per batch, for far
   * less time than the batch's inference takes, so waiting costs it nothing.
   */
  #oneWriteAtATime<T>(operation: string, write: () => Promise<T>): Promise<T> {
    const run = () => this.#call(operation, write);
    const result = this.#lastWrite.then(run, run);
    this.#lastWrite = result.catch(() => undefined);
    return result;
  }

  /**
   * Wraps every call. A collection that is no longer loaded (Milvus Lite forgets the load state when it
   * restarts; Milvus error 101) is loaded and the call tried once more. Unreachable servers and rejected
   * tokens become ServiceUnavailableError with the address.
   */
  async #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      try {
        return await run();
      } catch (error) {
        if (!(error instanceof Error) || !NOT_LOADED.test(error.message)) throw error;
        await this.#loaded();
        return await run();
      }
    } catch (error) {
      if (error instanceof AppError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      if (
        /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|ENOTFOUND|No connection established|timeout/i.test(
          message,
        )
      ) {
        throw new ServiceUnavailableError(
          `Milvus at ${this.#address} is unreachable (${operation}): ${message}`,
        );
      }
      if (/UNAUTHENTICATED|auth|token|permission|PERMISSION_DENIED|credential/i.test(message)) {
        throw new ServiceUnavailableError(
          `Milvus at ${this.#address} rejected the token (${operation}): ${message}. Check MILVUS_TOKEN or the secret in MILVUS_TOKEN_SECRET_ARN.`,
        );
      }
      throw new ServiceUnavailableError(`Milvus at ${this.#address} failed (${operation}): ${message}`);
    }
  }
}

/** Milvus answers most calls with a status instead of throwing. */
function check<
  T extends { error_code?: string | number; reason?: string; code?: number } | { status: unknown },
>(response: T): T {
  const status = ('status' in response ? response.status : response) as {
    error_code?: unknown;
    reason?: string;
  };
  if (status?.error_code !== undefined && status.error_code !== 'Success' && status.error_code !== 0) {
    throw new Error(`${String(status.error_code)}: ${status.reason ?? ''}`);
  }
  return response;
}

function checkId(id: string): string {
  if (!/^-?\d{1,19}$/.test(id)) throw new ValidationError(`vector id must be a decimal int64, not '${id}'`);
  return id;
}

/**
 * Exactly the keys under `prefix`, as a range on the key field: `key >= "p" and key < "q"`, q being p with
 * its last character incremented. Milvus compares VarChar bytewise and UTF-8 keeps code-point order, so
 * the range holds every key that starts with p and nothing else; a LIKE pattern would read `%` and `_` in
 * the prefix as wildcards. Literals are escaped per the expression grammar (backslash and double quote);
 * control characters and unpaired surrogates, which no S3 key we write holds, are refused.
 */
export function prefixFilter(prefix: string | undefined): string | undefined {
  if (!prefix) return undefined;
  if (/[\p{Cc}\p{Cs}]/u.test(prefix)) {
    throw new ValidationError('prefix: control characters and unpaired surrogates are not allowed');
  }
  const upper = successorOf(prefix);
  const from = `key >= ${stringLiteral(prefix)}`;
  return upper === undefined ? from : `${from} and key < ${stringLiteral(upper)}`;
}

/** The smallest string above every string that starts with `prefix`; undefined when there is none. */
function successorOf(prefix: string): string | undefined {
  const points = [...prefix].map((char) => char.codePointAt(0) as number);
  while (points.length > 0) {
    const last = (points.pop() as number) + 1;
    if (last > 0x10ffff) continue;
    // Surrogate code points are not characters: the next one after U+D7FF is U+E000.
    points.push(last >= 0xd800 && last <= 0xdfff ? 0xe000 : last);
    return String.fromCodePoint(...points);
  }
  return undefined;
}

function stringLiteral(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function vectorDimension(
  fields: { name: string; dim?: unknown; type_params?: { key: string; value: unknown }[] }[] | undefined,
): number {
  const field = fields?.find((f) => f.name === 'vector');
  const dim = field?.dim ?? field?.type_params?.find((p) => p.key === 'dim')?.value;
  return Number(dim ?? 0);
}
