import type { IndexShelf } from '../../domain/ports.ts';
import { MilvusVectorIndex, type MilvusVectorIndexOptions } from './milvus-vector-index.ts';

/**
 * Each vector index generation in its own Milvus collection: the configured collection for the index the
 * library had before generations (name ''), `<collection>_<name>` for the others (generation names are
 * letters and digits, so the result is a valid collection name).
 */
export class MilvusCollections implements IndexShelf<MilvusVectorIndex> {
  readonly #options: MilvusVectorIndexOptions;
  readonly #open = new Map<string, MilvusVectorIndex>();

  constructor(options: MilvusVectorIndexOptions) {
    this.#options = options;
  }

  collectionOf(name: string): string {
    return name === '' ? this.#options.collection : `${this.#options.collection}_${name}`;
  }

  open(name: string): MilvusVectorIndex {
    let index = this.#open.get(name);
    if (!index) {
      index = new MilvusVectorIndex({ ...this.#options, collection: this.collectionOf(name) });
      this.#open.set(name, index);
    }
    return index;
  }

  async drop(name: string): Promise<void> {
    const index = this.open(name);
    if ((await index.identity()) !== undefined) await index.drop();
    await index.close();
    this.#open.delete(name);
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(open.map((index) => index.close()));
  }
}
