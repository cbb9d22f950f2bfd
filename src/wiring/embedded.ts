import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ExactVectorIndex } from '../adapters/embedded/exact-vector-index.ts';
import { FolderObjectStore } from '../adapters/embedded/folder-object-store.ts';
import { IndexFiles } from '../adapters/embedded/index-files.ts';
import { SqliteCatalogue } from '../adapters/embedded/sqlite-catalogue.ts';
import { SqliteDismissedPairs } from '../adapters/embedded/sqlite-dismissed-pairs.ts';
import { SqliteIngestLedger } from '../adapters/embedded/sqlite-ingest-ledger.ts';
import { SqliteJobQueue } from '../adapters/embedded/sqlite-job-queue.ts';
import { SqliteTaskStore } from '../adapters/embedded/sqlite-task-store.ts';
import { BucketWatcher } from '../app/bucket-watcher.ts';
import { createDuplicates, type Duplicates } from '../app/duplicates.ts';
import { type FolderIngestOptions, ingestFolder } from '../app/folder-sync.ts';
import { GenerationalIndex, REINDEX_HOW } from '../app/index-generations.ts';
import { type IdOf, queueChangedKeys, type Stores } from '../app/indexing.ts';
import { encodeKeyPath } from '../app/keys.ts';
import type { IngestReport, Operations } from '../app/operations.ts';
import { createOperations } from '../app/pic-search.ts';
import { runTaskSlice, type TaskDeps, type TaskOptions } from '../app/tasks.ts';
import { Worker } from '../app/worker.ts';
import { type Config, DEFAULT_DUPLICATE_THRESHOLD } from '../config.ts';
import { IndexMismatchError } from '../domain/errors.ts';
import { vectorIdOf } from '../domain/ids.ts';
import { sameIdentity } from '../domain/index-identity.ts';
import { AdmittingEmbedder } from '../embedder/admission.ts';
import { ingestSessions, restartOrExit, ThreadedEmbedder } from '../embedder/threaded-embedder.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import { FolderModels } from '../model/kept-models.ts';
import { manifestPathFor } from '../model/model-files.ts';
import { type ChosenModel, chooseModel, type PrecisionLog } from '../model/precision.ts';
import { type ModelLog, type ResolvedModel, resolveModel as resolveModelFiles } from '../model/resolve.ts';
import { liveModelEmbedders } from './live-models.ts';

/** The queue's visibility timeout; the worker's heartbeat keeps a long batch hidden beyond it. */
const VISIBILITY_SECONDS = 60;
const MODEL_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

/** Where everything lives under the data directory. */
export function dataLayout(dataDir: string) {
  return {
    bucket: join(dataDir, 'bucket'),
    thumbnails: join(dataDir, 'thumbnails'),
    queue: join(dataDir, 'queue.db'),
    tasks: join(dataDir, 'tasks.db'),
    catalogue: join(dataDir, 'catalogue.db'),
    index: join(dataDir, 'index.db'),
    duplicates: join(dataDir, 'duplicates.db'),
    ingests: join(dataDir, 'ingests.db'),
    /** The model files of each index generation (src/model/kept-models.ts). */
    models: join(dataDir, 'models'),
  };
}

export interface EmbeddedSystem {
  config: Config;
  operations: Operations;
  /** GET /duplicates and "not duplicates". */
  duplicates: Duplicates;
  /** POST /ingest {path}: mirror a folder into the bucket under a prefix, then backfill it. */
  ingestFolder(path: string, prefix?: string, options?: FolderIngestOptions): Promise<IngestReport>;
  worker: Worker;
  /**
   * Searches' embedder: one session on its own thread behind a bounded queue (429 when full). Like the
   * worker's, it is off the main thread: onnxruntime-node runs inference synchronously on the calling
   * thread, which would stall the HTTP server (and /health) for each query.
   */
  embedder: AdmittingEmbedder;
  /** The worker's embedder, its sessions on worker threads. */
  ingestEmbedder: ThreadedEmbedder;
  /** `index`: the live index generation for reads, the configured model's for writes (src/app/index-generations.ts). */
  stores: Stores & { queue: SqliteJobQueue; index: GenerationalIndex };
  /** The model file the embedders opened (fp32 or int8) and why. */
  modelChoice: ChosenModel;
  /**
   * Runs a background task to its end in this process (the CLI on a data directory, where no worker may
   * be running); slices it also queued are no-ops when a worker receives them later.
   */
  runTask(taskId: string): Promise<void>;
  /**
   * Set when the live index was built by another model and no re-index builds the configured model's:
   * searching is refused with a message naming the re-index, the worker stays off until one starts.
   */
  indexMismatch: IndexMismatchError | undefined;
  /**
   * Starts the background work: the worker and, with PIC_WATCH on, the bucket folder watcher, followed
   * by one reconcile of the whole bucket so files dropped or deleted while stopped are not missed.
   * Nothing starts while the index belongs to another model and no re-index runs (a re-index starts it).
   * Resolves once started; never rejects.
   */
  startWorker(): Promise<void>;
  /** Stops the worker (finishing its batches), then closes the model and the databases. */
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  logger?: Logger;
  /** Test seam for hash collisions. @default vectorIdOf */
  idOf?: IdOf;
  /** Tests shorten it to see redelivery quickly. @default 60 */
  visibilitySeconds?: number;
  /** Tests shorten a re-index's pauses. @default the tasks' defaults (src/app/tasks.ts) */
  taskOptions?: TaskOptions;
}

const SILENT: ModelLog & PrecisionLog = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** The model: PIC_MODEL_MANIFEST, else the installed pretrained one, else a download (PIC_MODEL_FETCH), else the seeded one. */
export function resolveModel(config: Config, log: ModelLog = SILENT): Promise<ResolvedModel> {
  return resolveModelFiles({
    ...(config.modelManifest ? { manifestPath: config.modelManifest } : {}),
    modelDir: MODEL_DIR,
    allowFetch: config.modelFetch,
    log,
  });
}

/** The whole system on one machine: folder bucket, SQLite queue and catalogue, exact vector index. */
export async function createEmbeddedSystem(
  config: Config,
  options: EmbeddedOptions = {},
): Promise<EmbeddedSystem> {
  const log = options.logger;
  const idOf = options.idOf ?? vectorIdOf;
  const visibilitySeconds = options.visibilitySeconds ?? VISIBILITY_SECONDS;
  const paths = dataLayout(config.dataDir);
  const limits = { ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels };
  const chosen = await chooseModel(await resolveModel(config, log), {
    precision: config.modelPrecision,
    provider: 'cpu',
    log: log ?? SILENT,
  });
  // Models run nicer than the thread that answers HTTP, so /health and the page stay quick under load.
  const embedderOptions = {
    batchSize: config.batchSize,
    intraOpNumThreads: config.threads,
    limits,
    niceIncrement: 10,
    ...(chosen.fallback ? { fallback: chosen.fallback } : {}),
  };
  const logAs = (name: string) =>
    log ? { log: { level: log.level, name, pretty: process.stderr.isTTY === true } } : {};
  const [searchEmbedder, ingestEmbedder] = await Promise.all([
    ThreadedEmbedder.create(chosen.loaded, {
      ...embedderOptions,
      // Every core by default: its threads run nicer than the HTTP thread, which still gets a core at once
      // when a request comes (/health while searching: docs/performance.md, Service).
      intraOpNumThreads: config.searchThreads,
      limits: { ...limits, maxPixels: config.maxQueryPixels },
      ...restartOrExit(log),
      ...logAs('search-embedder'),
    }),
    ThreadedEmbedder.create(chosen.loaded, {
      ...embedderOptions,
      ...ingestSessions(config.threads, ['cpu'], config.ingestSessions),
      ...restartOrExit(log),
      ...logAs('ingest-embedder'),
    }),
  ]);
  const admission = { running: config.threads, queued: config.searchQueue };
  const embedder = new AdmittingEmbedder(searchEmbedder, admission);
  const tasksStore = new SqliteTaskStore(paths.tasks);
  const storesWithoutIndex = {
    images: new FolderObjectStore(paths.bucket, { urlBase: '/images' }),
    thumbnails: new FolderObjectStore(paths.thumbnails, { urlBase: '/thumbnails' }),
    queue: new SqliteJobQueue(paths.queue, {
      visibilityTimeoutSeconds: visibilitySeconds,
      maxReceiveCount: config.maxReceiveCount,
    }),
    catalogue: new SqliteCatalogue(paths.catalogue),
    tasks: tasksStore,
  };
  const { model, profile, dimension } = embedder.info;
  const index = new GenerationalIndex(
    new IndexFiles(paths.index, (path) => new ExactVectorIndex(path, { int8From: config.indexInt8From })),
    tasksStore,
    {
      writer: { model, profile, dimension },
      writerManifest: config.modelManifest ?? manifestPathFor(chosen.loaded.modelPath),
      models: new FolderModels(paths.models),
    },
  );
  const stores = { ...storesWithoutIndex, index };
  const ledger = new SqliteIngestLedger(paths.ingests);
  const generations = await index.init();
  let indexMismatch: IndexMismatchError | undefined;
  const building = generations.building && sameIdentity(generations.building.identity, index.writer);
  try {
    await index.ensure(index.writer);
  } catch (error) {
    if (!(error instanceof IndexMismatchError)) throw error;
    if (!building) {
      indexMismatch = new IndexMismatchError(`${error.message} ${REINDEX_HOW}`);
      log?.error(indexMismatch.message);
    }
  }
  const liveModels = liveModelEmbedders({
    generations: index,
    // Behind the same bound as the configured model's searches (429 when full).
    open: async (loaded) =>
      new AdmittingEmbedder(
        await ThreadedEmbedder.create(loaded, {
          intraOpNumThreads: config.searchThreads,
          limits: { ...limits, maxPixels: config.maxQueryPixels },
          niceIncrement: 10,
        }),
        admission,
      ),
    ...(log ? { log } : {}),
  });
  const links = {
    image: async (key: string) => `/images/${encodeKeyPath(key)}`,
    thumbnail: async (key: string) => `/thumbnails/${encodeKeyPath(key)}`,
  };
  const dismissed = new SqliteDismissedPairs(paths.duplicates);
  const duplicates = createDuplicates({
    pairs: stores.index,
    dismissed,
    index: stores.index,
    catalogue: stores.catalogue,
    images: stores.images,
    links,
    defaultThreshold:
      config.duplicateThreshold ?? embedder.info.matchThresholds?.duplicate ?? DEFAULT_DUPLICATE_THRESHOLD,
  });
  const operations = createOperations({
    ...stores,
    embedder,
    mode: 'embedded',
    queueUploads: true,
    imageInspector: imageInspector(limits),
    idOf,
    outage: () => worker.outage,
    generations: index,
    embedderFor: liveModels.embedderFor,
    links: {
      ...links,
      // The local route does not expire; the figure only tells clients the link is good for an hour at least.
      upload: async (key, contentType) => ({
        key,
        url: `/images/${encodeKeyPath(key)}`,
        method: 'PUT',
        headers: { 'content-type': contentType },
        expiresInSeconds: 3600,
      }),
    },
  });
  const taskDeps: TaskDeps = {
    ...stores,
    idOf,
    imagePrefix: '',
    model: embedder.info,
    generations: index,
    ...(log ? { logger: log } : {}),
  };
  const worker = new Worker(stores, ingestEmbedder, {
    batchSize: config.batchSize,
    maxReceiveCount: config.maxReceiveCount,
    outageBackoff: config.outageBackoff,
    visibilitySeconds,
    idOf,
    runTask: (taskId) => runTaskSlice(taskDeps, taskId, options.taskOptions),
    ...(log ? { logger: log } : {}),
  });
  const watcher = config.watch
    ? new BucketWatcher({
        root: paths.bucket,
        onKeys: (keys) => queueChangedKeys(stores, idOf, embedder.info, keys),
        onPrefixes: async (prefixes) => {
          for (const prefix of prefixes) await operations.backfill(prefix, { skipKept: true });
        },
        ...(log ? { logger: log } : {}),
      })
    : undefined;
  let started = false;
  async function startWorker(): Promise<void> {
    if (indexMismatch) {
      log?.error('the worker is not started: the vector index belongs to another model and no re-index runs');
      return;
    }
    if (started) return;
    started = true;
    worker.start();
    if (!watcher) return;
    try {
      await watcher.start();
      // Photos a delete-all kept stay out: they come back only when the user ingests them again.
      const report = await operations.backfill('', { skipKept: true });
      log?.info({ ...report }, 'bucket folder reconciled with the catalogue');
    } catch (error) {
      log?.error(
        { err: error },
        'the bucket folder watcher could not start; drops are picked up by ingest only',
      );
    }
  }
  return {
    config,
    operations: {
      ...operations,
      // A re-index is the worker's work: it starts the worker that a mismatched index kept off (and the
      // CLI's, which runs none otherwise).
      async reindex() {
        const task = await operations.reindex();
        indexMismatch = undefined;
        await startWorker();
        return task;
      },
    },
    duplicates,
    ingestFolder: (path, prefix, options) =>
      ingestFolder(
        { operations, images: stores.images, catalogue: stores.catalogue, ledger, idOf },
        path,
        prefix,
        options,
      ),
    worker,
    embedder,
    ingestEmbedder,
    stores,
    get indexMismatch() {
      return indexMismatch;
    },
    modelChoice: chosen,
    async runTask(taskId) {
      while ((await stores.tasks.get(taskId))?.state === 'running') {
        await runTaskSlice(taskDeps, taskId, options.taskOptions);
      }
    },
    startWorker,
    async close() {
      await watcher?.close();
      await worker.stop();
      await Promise.all([embedder.close(), ingestEmbedder.close(), liveModels.close()]);
      stores.queue.close();
      stores.catalogue.close();
      stores.tasks.close();
      dismissed.close();
      ledger.close();
      await stores.index.close();
    },
  };
}
