import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { ImageError, IndexMismatchError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import { describeIdentity, sameIdentity } from '../domain/index-identity.ts';
import type {
  Embedder,
  EmbedTimings,
  ImageInspector,
  ImageRecord,
  IndexGeneration,
  IndexIdentity,
  Outage,
  StoredObject,
  VectorIndex,
} from '../domain/ports.ts';
import { isImageKey } from '../imaging/formats.ts';
import { type GenerationalIndex, REINDEX_HINT, REINDEX_HOW } from './index-generations.ts';
import { forgetImages, type IdOf, queueObjects, type Stores } from './indexing.ts';
import { contentTypeOf, keyUnder, normalisePrefix, THUMBNAIL_CONTENT_TYPE, thumbnailKeyOf } from './keys.ts';
import { matchLabel, mergeVariantHits } from './matching.ts';
import {
  type IngestReport,
  type Operations,
  ORIENTATIONS,
  type OutageReport,
  type Progress,
  type SearchRequest,
  type SearchResponse,
  type UploadReport,
  type UploadTarget,
} from './operations.ts';
import type { ReindexProgress } from './reindex.ts';
import { startDeleteAll, startReindex, startVerify, type TaskDeps, viewOf } from './tasks.ts';

/** Links for search results and browser uploads: API routes locally, presigned S3 URLs in the cloud. */
export interface LinkBuilders {
  image(key: string): Promise<string>;
  thumbnail(key: string): Promise<string>;
  /** Absent: uploadTargets is refused. */
  upload?(key: string, contentType: string): Promise<UploadTarget>;
}

export interface OperationsDeps extends Stores {
  embedder: Embedder;
  mode: 'embedded' | 'cloud';
  /**
   * Keys the service creates and lists live under this prefix ('images/' in the cloud bucket, '' in the
   * bucket folder). A prefix given by a caller is taken relative to it unless it already starts with it.
   */
  imagePrefix?: string;
  /** @default the stores' downloadUrl (the thumbnail's under thumbnailKeyOf) and no upload links */
  links?: LinkBuilders;
  /**
   * Queue uploaded images at once. Embedded: yes (also when no watcher runs); cloud: no, the bucket's
   * event notification does it.
   */
  queueUploads: boolean;
  /** Upload check: what cannot be decoded (format, pixel limit) is refused (415) before it reaches the queue. */
  imageInspector: ImageInspector;
  /** Test seam for hash collisions. @default vectorIdOf */
  idOf?: IdOf;
  /**
   * The worker's outage: its breaker when it runs in this process (embedded mode), or what the workers
   * reported (cloud: OutageReports).
   */
  outage?: () => Outage | undefined | Promise<Outage | undefined>;
  /** The index generations (the same object as `index`), where a re-index can build the next one. */
  generations?: GenerationalIndex;
  /**
   * The model of a live generation that the configured model did not build (searches embed with it while
   * a re-index builds the configured model's generation); undefined when it is not at hand.
   */
  embedderFor?: (generation: IndexGeneration) => Promise<Embedder | undefined>;
}

const searchRequest = z.object({
  topK: z.number().int().min(1).max(100),
  minScore: z.number().min(-1).max(1).optional(),
  prefix: z.string().optional(),
  orientation: z.enum(ORIENTATIONS).optional(),
});

const MAX_RECENT_FAILURES = 100;
/** How long a verified index identity is trusted before it is read again (a Milvus round trip). */
const IDENTITY_TTL_MS = 30_000;

export function createOperations(deps: OperationsDeps): Operations {
  const { images, thumbnails, queue, catalogue, index, embedder } = deps;
  const idOf = deps.idOf ?? vectorIdOf;
  const imagePrefix = deps.imagePrefix ?? '';
  const links: LinkBuilders = deps.links ?? {
    image: (key) => images.downloadUrl(key),
    thumbnail: (key) => thumbnails.downloadUrl(thumbnailKeyOf(key)),
  };
  const taskDeps: TaskDeps = {
    ...deps,
    ...(deps.generations ? { generations: deps.generations } : {}),
    idOf,
    imagePrefix,
    // Read when a task uses it: the Lambda functions that only start tasks have no model to ask.
    get model() {
      return embedder.info;
    },
  };
  let identityCheckedAt = Number.NEGATIVE_INFINITY;

  const outageReport = async (): Promise<OutageReport | undefined> => {
    const outage = await deps.outage?.();
    return (
      outage && { ...outage, message: `${outage.store} unavailable since ${outage.since.toISOString()}` }
    );
  };

  const scoped = (prefix: string | undefined): string =>
    !prefix ? imagePrefix : prefix.startsWith(imagePrefix) ? prefix : imagePrefix + prefix;

  /**
   * The index searches read and the model that built it, taken together: the configured model, or while a
   * re-index builds its generation, the live generation's model when it is at hand. Refuses to search
   * vectors another model made: their similarities would be meaningless.
   */
  async function searchable(): Promise<{ embedder: Embedder; index: VectorIndex }> {
    if (!deps.generations) {
      await assertIndexMatches();
      return { embedder, index };
    }
    const live = await deps.generations.live();
    if (sameIdentity(live.generation.identity, embedder.info)) return { embedder, index: live.index };
    const previous = await deps.embedderFor?.(live.generation);
    if (previous) return { embedder: previous, index: live.index };
    throw await mismatch(live.generation.identity);
  }

  async function assertIndexMatches(): Promise<void> {
    if (performance.now() - identityCheckedAt < IDENTITY_TTL_MS) return;
    const found = await index.identity();
    if (found && !sameIdentity(found, embedder.info)) throw await mismatch(found);
    identityCheckedAt = performance.now();
  }

  async function mismatch(live: IndexIdentity): Promise<IndexMismatchError> {
    const configured = describeIdentity(embedder.info);
    const reindex = deps.generations && (await deps.tasks.latest('reindex'));
    if (reindex?.state === 'running') {
      const { indexed, failed, total } = reindex.progress as ReindexProgress;
      return new IndexMismatchError(
        `A re-index for ${configured} is running (${indexed + failed} of ${total} images done). Until it ` +
          `switches, searches need the live index's ${describeIdentity(live)}, which this service has not ` +
          'got (docs/models.md); they answer again once the new index is live.',
      );
    }
    return new IndexMismatchError(
      `The vector index was built by ${describeIdentity(live)}, but this service embeds with ${configured}. ` +
        (deps.generations ? `${REINDEX_HINT} ` : '') +
        (deps.generations ? `${REINDEX_HOW} ` : '') +
        'Or configure the model that built the index.',
    );
  }

  /** `vectors`: the query, or its orientation variants with the upright one first. */
  async function search(
    { embedder, index }: { embedder: Embedder; index: VectorIndex },
    vectors: Float32Array[],
    request: SearchRequest,
    embedTimings: EmbedTimings,
    startedAt: number,
  ): Promise<SearchResponse> {
    const { topK, minScore, prefix } = request;
    let mark = performance.now();
    const lap = () => {
      const now = performance.now();
      const ms = now - mark;
      mark = now;
      return round(ms);
    };
    const options = {
      topK,
      ...(prefix || imagePrefix ? { prefix: scoped(prefix) } : {}),
      ...(minScore === undefined ? {} : { minScore }),
    };
    const hitLists = await Promise.all(vectors.map((vector) => index.search(vector, options)));
    const hits = hitLists.length === 1 ? (hitLists[0] ?? []) : mergeVariantHits(hitLists, topK);
    const searchMs = lap();
    const records = await catalogue.getByIds(hits.map((hit) => hit.id));
    const lookupMs = lap();
    // The catalogue is the source of truth for keys; the index's copy stands in while a record is written.
    const keyed = hits.map((hit) => ({ ...hit, key: records.get(hit.id)?.key ?? hit.key }));
    const { matchThresholds } = embedder.info;
    const results = await Promise.all(
      keyed.map(async (hit) => ({
        key: hit.key,
        id: hit.id,
        score: hit.score,
        match: matchLabel(hit.score, matchThresholds),
        imageUrl: await links.image(hit.key),
        thumbnailUrl: await links.thumbnail(hit.key),
      })),
    );
    const signMs = lap();
    const { model, profile, pretrained } = embedder.info;
    return {
      results,
      topK,
      model,
      profile,
      pretrained,
      timings: { ...embedTimings, searchMs, lookupMs, signMs, totalMs: round(performance.now() - startedAt) },
    };
  }

  async function upload(
    files: { name: string; body: Uint8Array; contentType?: string }[],
    prefix?: string,
  ): Promise<UploadReport> {
    const stored: StoredObject[] = [];
    const refused: { name: string; error: ImageError }[] = [];
    for (const file of files) {
      const key = keyFor(file.name, prefix);
      // Refused here with the reason rather than accepted and failed later in /progress.
      const problem = await deps.imageInspector.inspect(file.body).then(
        () => undefined,
        (error: unknown) => {
          if (error instanceof ImageError)
            return new ImageError(`'${file.name}': ${error.message}`, error.kind);
          throw error;
        },
      );
      if (problem) refused.push({ name: file.name, error: problem });
      else stored.push(await images.put(key, file.body, file.contentType ?? contentTypeOf(key)));
    }
    const first = refused[0]?.error;
    if (stored.length === 0 && first) {
      throw new ImageError(refused.map(({ error }) => error.message).join('; '), first.kind);
    }
    if (deps.queueUploads) await queueObjects(deps, idOf, embedder.info, stored);
    return {
      keys: stored.map((object) => object.key),
      rejected: refused.map(({ name, error }) => ({ name, error: error.kind, message: error.message })),
    };
  }

  /** The key rule (keys.ts) under the caller's prefix; ImageError (415) when the name is not an image's. */
  function keyFor(name: string, prefix: string | undefined): string {
    if (!isImageKey(name)) {
      throw new ImageError(
        `'${name}' does not have an image file extension (.jpg, .jpeg, .png, .webp, .gif, .tif, .avif).`,
        'unsupported_format',
      );
    }
    return keyUnder(scoped(normalisePrefix(prefix)), name);
  }

  return {
    async searchByImage(image, request) {
      const startedAt = performance.now();
      const valid = parseSearchRequest(request);
      const target = await searchable();
      if (valid.orientation === 'any') {
        const { vectors, timings } = await target.embedder.embedOrientations(image);
        return search(target, vectors, valid, roundTimings(timings), startedAt);
      }
      const { vector, timings } = await target.embedder.embedOne(image);
      return search(target, [vector], valid, roundTimings(timings), startedAt);
    },

    async searchByKey(key, request) {
      const startedAt = performance.now();
      const valid = parseSearchRequest(request);
      const target = await searchable();
      // Through the catalogue: a key that lost a hash collision must not borrow the owner's vector.
      const record = await catalogue.get(key);
      const vector = record?.state === 'indexed' ? await target.index.get(record.id) : undefined;
      if (!vector) throw new NotFoundError(`No indexed image has the key '${key}'.`);
      return search(target, [vector], valid, { decodeMs: 0, embedMs: 0 }, startedAt);
    },

    count: () => index.count(),

    async progress(recentFailures = 20): Promise<Progress> {
      const wanted = Math.min(Math.max(0, Math.trunc(recentFailures)), MAX_RECENT_FAILURES);
      const [counts, depth, deleteAll, verify, outage, reindex] = await Promise.all([
        catalogue.progress(wanted),
        queue.depth(),
        deps.tasks.latest('delete-all'),
        deps.tasks.latest('verify'),
        outageReport(),
        deps.tasks.latest('reindex'),
      ]);
      const { recentlyIndexed, windowSeconds, ...rest } = counts;
      const throughput = windowSeconds > 0 ? recentlyIndexed / windowSeconds : 0;
      const outstanding = Math.max(counts.pending, depth.visible + depth.inFlight);
      const etaSeconds = outstanding === 0 ? 0 : throughput > 0 ? Math.ceil(outstanding / throughput) : null;
      return {
        ...rest,
        throughput: round(throughput),
        etaSeconds,
        queue: depth,
        ...(outage ? { outage } : {}),
        tasks: {
          deleteAll: deleteAll ? viewOf(deleteAll) : null,
          verify: verify ? viewOf(verify) : null,
          reindex: reindex ? viewOf(reindex) : null,
        },
      };
    },

    async backfill(prefix, options = {}) {
      const scope = scoped(normalisePrefix(prefix));
      const known = new Map<string, ImageRecord>();
      for await (const record of catalogue.list(scope)) known.set(record.key, record);
      const present: StoredObject[] = [];
      for await (const object of images.list(scope)) {
        if (isImageKey(object.key)) present.push(object);
      }
      const presentKeys = new Set(present.map((object) => object.key));
      const gone = [...known.keys()].filter((key) => !presentKeys.has(key));
      await forgetImages(deps, idOf, gone);
      // Look again, as the worker does (docs/consistency.md): a key put back since the listing may have been
      // indexed before this forget removed it, and no job of its own would come after. Listed, not HEADed:
      // the cloud ingest function may list the bucket but not read its objects (infra/bindings.ts).
      const back = (
        await Promise.all(gone.map(async (key) => ((await isListed(images, key)) ? [key] : [])))
      ).flat();
      if (back.length > 0) await queue.send(back.map((key) => ({ kind: 'upsert', key, force: true })));
      const { queued, unchanged, keptOut } = await queueObjects(
        deps,
        idOf,
        embedder.info,
        present,
        known,
        options,
      );
      return { queued, unchanged, removed: gone.length, keptOut, prefix: scope } satisfies IngestReport;
    },

    upload,

    async uploadTargets(files, prefix) {
      const upload = links.upload;
      if (!upload) throw new ValidationError('This deployment takes uploads through POST /images only.');
      return Promise.all(
        files.map((file) => {
          if (!file.contentType.startsWith('image/')) {
            throw new ImageError(`'${file.name}' is ${file.contentType}, not an image.`, 'not_an_image');
          }
          return upload(keyFor(file.name, prefix), file.contentType);
        }),
      );
    },

    async deleteImage(key, options = {}) {
      const [record, object] = await Promise.all([catalogue.get(key), images.head(key)]);
      if (!record && !object) throw new NotFoundError(`No image has the key '${key}'.`);
      // Object first: a worker writing this key meanwhile then finds it gone when it looks again (Worker).
      if (!options.keepObject) await images.delete(key);
      await forgetImages(deps, idOf, [key]);
    },

    async deleteAll({ deleteObjects }) {
      const task = await startDeleteAll(taskDeps, deleteObjects);
      return { deleted: task.progress.vectors ?? 0, task: viewOf(task) };
    },

    async verify({ repair }) {
      return viewOf(await startVerify(taskDeps, repair));
    },

    async reindex() {
      return viewOf(await startReindex(taskDeps));
    },

    async getImage(key) {
      return { body: (await images.get(key)).body, contentType: contentTypeOf(key) };
    },

    async getThumbnail(key) {
      try {
        return {
          body: (await thumbnails.get(thumbnailKeyOf(key))).body,
          contentType: THUMBNAIL_CONTENT_TYPE,
        };
      } catch (error) {
        if (error instanceof NotFoundError) throw new NotFoundError(`No thumbnail for '${key}' (yet).`);
        throw error;
      }
    },

    async health() {
      const outage = await outageReport();
      // While the worker waits out an outage the index may not answer: health says so instead of failing.
      const found: IndexIdentity | undefined = await index.identity().catch((error: unknown) => {
        if (outage) return undefined;
        throw error;
      });
      if (outage) return { status: 'degraded', mode: deps.mode, model: embedder.info, index: found, outage };
      return { status: 'ok', mode: deps.mode, model: embedder.info, index: found };
    },
  };
}

function parseSearchRequest(request: SearchRequest): SearchRequest {
  const parsed = searchRequest.safeParse(request);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ValidationError(`${issue?.path.join('.') || 'request'}: ${issue?.message ?? 'invalid'}`);
}

async function isListed(store: Stores['images'], key: string): Promise<boolean> {
  for await (const object of store.list(key)) if (object.key === key) return true;
  return false;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function roundTimings(timings: EmbedTimings): EmbedTimings {
  return { decodeMs: round(timings.decodeMs), embedMs: round(timings.embedMs) };
}
