import { rm } from 'node:fs/promises';
import type { IndexShelf, VectorIndex } from '../../domain/ports.ts';

type ClosableIndex = VectorIndex & { close(): Promise<void> };

/**
 * Each vector index generation in its own local file beside the first one: `index.db` for the index the
 * library had before generations (name ''), `index-<name>.db` for the others. Opened once, kept open.
 */
export class IndexFiles<I extends ClosableIndex> implements IndexShelf<I> {
  readonly #firstPath: string;
  readonly #openIndex: (path: string) => I;
  readonly #open = new Map<string, I>();

  /** `firstPath`: the first generation's file, e.g. <data>/index.db. */
  constructor(firstPath: string, openIndex: (path: string) => I) {
    this.#firstPath = firstPath;
    this.#openIndex = openIndex;
  }

  pathOf(name: string): string {
    return name === '' ? this.#firstPath : this.#firstPath.replace(/(\.db)?$/, `-${name}.db`);
  }

  open(name: string): I {
    let index = this.#open.get(name);
    if (!index) {
      index = this.#openIndex(this.pathOf(name));
      this.#open.set(name, index);
    }
    return index;
  }

  async drop(name: string): Promise<void> {
    await this.#open.get(name)?.close();
    this.#open.delete(name);
    const path = this.pathOf(name);
    // SQLite in WAL mode keeps two companion files beside the database.
    await Promise.all(['', '-wal', '-shm'].map((suffix) => rm(path + suffix, { force: true })));
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(open.map((index) => index.close()));
  }
}
