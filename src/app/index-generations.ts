/**
 * The library's vector index across generations (docs/models.md, "Changing the model: re-index"). One
 * generation is live and answers every read; while a re-index runs, a second one is built for the
 * configured model. Writes go to the generation built by the writer's identity, so vectors of two models
 * never share an index; removals go to every generation, so a photo deleted during a re-index is gone from
 * whichever ends up live. Which generation is live is read from the TaskStore (at most `ttlMs` old), so
 * every process follows a re-index's switch, which is one write of that record. The writer's model files
 * are kept with each generation it builds (ModelShelf), so searches can embed with the live generation's
 * model until the switch, whatever the configured model has become; they are dropped with the generation.
 */
import { createHash } from 'node:crypto';
import { IndexMismatchError } from '../domain/errors.ts';
import { describeIdentity, sameIdentity } from '../domain/index-identity.ts';
import type {
  IndexGeneration,
  IndexGenerations,
  IndexIdentity,
  IndexShelf,
  ModelShelf,
  PairFinder,
  SearchOptions,
  TaskStore,
  VectorEntry,
  VectorHit,
  VectorIndex,
  VectorPair,
} from '../domain/ports.ts';

export type ShelvedIndex = VectorIndex & Partial<PairFinder>;

export interface GenerationalIndexOptions {
  /** The identity of the vectors this process writes (the configured model); none: it writes nothing. */
  writer?: IndexIdentity;
  /** The writer's model manifest, its files kept (in `models`) with each generation the writer builds. */
  writerManifest?: string;
  /** Where each generation's model files are kept; none: no copies are kept. */
  models?: ModelShelf;
  /** How long a read of the record is trusted. @default 0 (read each time: a local SQLite row) */
  ttlMs?: number;
}

/** What a user does about an index another model built. */
export const REINDEX_HINT =
  'Re-index to rebuild it with this model from the bucket (docs/models.md); the current index answers until the new one is complete.';

/** Where a re-index is started. */
export const REINDEX_HOW =
  'Start it with POST /reindex or "Re-index now" on the page (embedded mode: also `npm run cli -- reindex`).';

/**
 * The generation name of an identity: a hash, since model names hold characters ('+', '-', '.') that
 * neither Milvus collection names nor every file system take.
 */
export function generationName(identity: IndexIdentity): string {
  const digest = createHash('sha256')
    .update(`${identity.model}\n${identity.profile}\n${identity.dimension}`)
    .digest('hex');
  return `g${digest.slice(0, 12)}`;
}

export class GenerationalIndex implements VectorIndex, PairFinder {
  readonly #shelf: IndexShelf<ShelvedIndex>;
  readonly #tasks: TaskStore;
  readonly #writer: IndexIdentity | undefined;
  readonly #writerManifest: string | undefined;
  readonly #models: ModelShelf | undefined;
  readonly ttlMs: number;
  #cached: { at: number; generations: IndexGenerations } | undefined;

  constructor(shelf: IndexShelf<ShelvedIndex>, tasks: TaskStore, options: GenerationalIndexOptions = {}) {
    this.#shelf = shelf;
    this.#tasks = tasks;
    this.#writer = options.writer;
    this.#writerManifest = options.writerManifest;
    this.#models = options.models;
    this.ttlMs = options.ttlMs ?? 0;
  }

  /**
   * Records the first generation when none is (firstGeneration), and keeps the writer's model with the
   * generations it built (a library from before models were kept gets its copy here). The worker's process
   * calls it at start; readers never write the record.
   */
  async init(): Promise<IndexGenerations> {
    let generations = await this.#tasks.indexGenerations();
    if (!generations) {
      generations = await this.#firstGeneration();
      await this.#shelf.open('').ensure(generations.live.identity);
      await this.#tasks.saveIndexGenerations(generations);
    }
    await this.#keepWriterModel(generations);
    this.#cached = { at: Date.now(), generations };
    return generations;
  }

  /** The record, read again when older than ttlMs; before any is recorded, the first generation. */
  async generations(): Promise<IndexGenerations> {
    const cached = this.#cached;
    if (cached && Date.now() - cached.at < this.ttlMs) return cached.generations;
    const generations = (await this.#tasks.indexGenerations()) ?? (await this.#firstGeneration());
    this.#cached = { at: Date.now(), generations };
    return generations;
  }

  /**
   * Records the generations (a re-index's start and switch) and uses them at once in this process; the
   * writer's model is kept with its generation before that generation is recorded.
   */
  async save(generations: IndexGenerations): Promise<void> {
    await this.#keepWriterModel(generations);
    await this.#tasks.saveIndexGenerations(generations);
    this.#cached = { at: Date.now(), generations };
  }

  /** The live generation's identity and index, read together: a search embeds and searches one generation. */
  async live(): Promise<{ generation: IndexGeneration; index: ShelvedIndex }> {
    const { live } = await this.generations();
    return { generation: live, index: this.#shelf.open(live.name) };
  }

  /** The index of a generation (a re-index prepares, checks and drops them). */
  indexOf(generation: IndexGeneration): ShelvedIndex {
    return this.#shelf.open(generation.name);
  }

  /** Removes the generation's index and its kept model. */
  async drop(generation: IndexGeneration): Promise<void> {
    await this.#shelf.drop(generation.name);
    await this.#models?.drop(generation);
  }

  /** A local manifest of the generation's kept model (searches embed with it), when one is kept. */
  async keptModelOf(generation: IndexGeneration): Promise<string | undefined> {
    return this.#models?.manifestOf(generation);
  }

  /** The writer's identity: what the configured model writes, and what a re-index builds. */
  get writer(): IndexIdentity {
    return this.#requireWriter();
  }

  /** A generation for the writer's identity. */
  writerGeneration(): IndexGeneration {
    const identity = this.#requireWriter();
    return { name: generationName(identity), identity };
  }

  async ensure(identity: IndexIdentity): Promise<void> {
    const { live } = await this.generations();
    await this.#shelf.open(live.name).ensure(live.identity);
    if (!sameIdentity(live.identity, identity)) {
      throw new IndexMismatchError(
        `The vector index was built by ${describeIdentity(live.identity)}, but this service embeds with ` +
          `${describeIdentity(identity)}. ${REINDEX_HINT}`,
      );
    }
  }

  async identity(): Promise<IndexIdentity | undefined> {
    return (await this.generations()).live.identity;
  }

  async upsert(items: (VectorEntry & { vector: Float32Array })[]): Promise<void> {
    const { live, building } = await this.generations();
    const target = [live, building].find((generation) => generation && this.#isWriter(generation));
    if (!target) {
      throw new IndexMismatchError(
        `No vector index is built by ${describeIdentity(this.#requireWriter())}: the live one is built by ` +
          `${describeIdentity(live.identity)}. ${REINDEX_HINT}`,
      );
    }
    await this.#shelf.open(target.name).upsert(items);
  }

  async delete(ids: string[]): Promise<void> {
    await Promise.all((await this.#all()).map((index) => index.delete(ids)));
  }

  async clear(): Promise<void> {
    await Promise.all((await this.#all()).map((index) => index.clear()));
  }

  async search(vector: Float32Array, options: SearchOptions): Promise<VectorHit[]> {
    return (await this.live()).index.search(vector, options);
  }

  async searchEach(vectors: Float32Array[], options: SearchOptions): Promise<VectorHit[][]> {
    return (await this.live()).index.searchEach(vectors, options);
  }

  async get(id: string): Promise<Float32Array | undefined> {
    return (await this.live()).index.get(id);
  }

  async getMany(ids: string[]): Promise<Map<string, Float32Array>> {
    return (await this.live()).index.getMany(ids);
  }

  async count(): Promise<number> {
    return (await this.live()).index.count();
  }

  async *entries(): AsyncIterable<VectorEntry> {
    yield* (await this.live()).index.entries();
  }

  async similarPairs(minScore: number, maxPairs: number): Promise<VectorPair[]> {
    return this.#pairFinder(await this.live()).similarPairs(minScore, maxPairs);
  }

  async revision(): Promise<string> {
    const live = await this.live();
    return `${live.generation.name}:${await this.#pairFinder(live).revision()}`;
  }

  close(): Promise<void> {
    return this.#shelf.close();
  }

  /** The index the library had before generations (name ''), with the identity that built it or the writer's. */
  async #firstGeneration(): Promise<IndexGenerations> {
    const identity = (await this.#shelf.open('').identity()) ?? this.#requireWriter();
    return { live: { name: '', identity } };
  }

  #pairFinder({ index }: { index: ShelvedIndex }): PairFinder {
    const { similarPairs, revision } = index;
    if (!similarPairs || !revision) throw new Error('this vector index cannot list similar pairs');
    return { similarPairs: similarPairs.bind(index), revision: revision.bind(index) };
  }

  async #all(): Promise<ShelvedIndex[]> {
    const { live, building } = await this.generations();
    return [live, ...(building ? [building] : [])].map((generation) => this.#shelf.open(generation.name));
  }

  #isWriter(generation: IndexGeneration): boolean {
    return this.#writer !== undefined && sameIdentity(generation.identity, this.#writer);
  }

  async #keepWriterModel({ live, building }: IndexGenerations): Promise<void> {
    const manifest = this.#writerManifest;
    if (!this.#models || !manifest) return;
    for (const generation of [live, building]) {
      if (generation && this.#isWriter(generation)) await this.#models.keep(generation, manifest);
    }
  }

  #requireWriter(): IndexIdentity {
    if (!this.#writer) throw new Error('this process writes no vectors: it has no model identity');
    return this.#writer;
  }
}
