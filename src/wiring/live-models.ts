import type { Logger } from 'pino';
import type { GenerationalIndex } from '../app/index-generations.ts';
import { sameIdentity } from '../domain/index-identity.ts';
import type { Embedder, IndexGeneration } from '../domain/ports.ts';
import { type LoadedManifest, loadManifest } from '../model/manifest.ts';

/**
 * Searches' embedders for a live index generation another model built (the configured model changed and
 * no re-index has switched yet): the model kept with that generation (src/model/kept-models.ts), opened on
 * first use; undefined when none is kept or it does not open as that identity (searches are then refused
 * with the reason).
 */
export function liveModelEmbedders(options: {
  generations: GenerationalIndex;
  open: (loaded: LoadedManifest) => Promise<Embedder>;
  log?: Pick<Logger, 'warn'>;
}): {
  embedderFor(generation: IndexGeneration): Promise<Embedder | undefined>;
  close(): Promise<void>;
} {
  const opened = new Map<string, Promise<Embedder | undefined>>();
  const open = async (generation: IndexGeneration) => {
    try {
      const manifestPath = await options.generations.keptModelOf(generation);
      if (!manifestPath) return undefined;
      const embedder = await options.open(await loadManifest(manifestPath));
      if (sameIdentity(embedder.info, generation.identity)) return embedder;
      await embedder.close();
    } catch (error) {
      options.log?.warn(
        { err: error, generation: generation.name },
        "the live index's model could not be opened",
      );
    }
    return undefined;
  };
  return {
    embedderFor(generation) {
      let embedder = opened.get(generation.name);
      if (!embedder) {
        embedder = open(generation);
        opened.set(generation.name, embedder);
        // Not kept (yet): asked again next time rather than refused for the life of the process.
        void embedder.then((found) => {
          if (!found) opened.delete(generation.name);
        });
      }
      return embedder;
    },
    async close() {
      const all = await Promise.all(opened.values());
      await Promise.all(all.map((embedder) => embedder?.close()));
    },
  };
}
