/**
 * `npm run cli -- <command>`: the operations from a terminal, against the running service (--url, the
 * default) or straight on a data directory (--data-dir; ingest then runs a worker in this process).
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { DuplicatesPage, DuplicatesRequest } from '../src/app/duplicates.ts';
import { contentTypeOf, encodeKeyPath } from '../src/app/keys.ts';
import {
  type IngestReport,
  ORIENTATIONS,
  type Orientation,
  type Progress,
  type SearchRequest,
  type SearchResponse,
} from '../src/app/operations.ts';
import { waitUntilSettled } from '../src/app/settle.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { createEmbeddedSystem, type EmbeddedSystem } from '../src/wiring/embedded.ts';

/** What each command needs, over HTTP or in-process. */
interface Backend {
  ingest(dir: string, prefix?: string): Promise<IngestReport>;
  search(image: Uint8Array, contentType: string, request: SearchRequest): Promise<SearchResponse>;
  count(): Promise<number>;
  progress(failures?: number): Promise<Progress>;
  deleteImage(key: string, keepObject: boolean): Promise<void>;
  deleteAll(deleteObjects: boolean): Promise<{ deleted: number }>;
  duplicates(request: DuplicatesRequest): Promise<DuplicatesPage>;
  close(): Promise<void>;
}

class CliError extends Error {}

function httpBackend(baseUrl: string, token: string | undefined): Backend {
  const base = baseUrl.replace(/\/+$/, '');
  async function call<T>(
    method: string,
    path: string,
    body?: Uint8Array | object,
    type?: string,
  ): Promise<T> {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) {
      payload = body as Uint8Array<ArrayBuffer>;
      headers['content-type'] = type ?? 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, { method, headers, ...(payload ? { body: payload } : {}) });
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new CliError(
        `Cannot reach the service at ${base} (${cause}). Is \`npm start\` running? Or work on a data directory with --data-dir.`,
      );
    }
    const text = await response.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) {
      const problem = json as { error?: string; message?: string } | undefined;
      throw new CliError(`${response.status} ${problem?.error ?? ''}: ${problem?.message ?? text}`);
    }
    return json as T;
  }
  return {
    ingest: (dir, prefix) => call('POST', '/ingest', { path: resolve(dir), ...(prefix ? { prefix } : {}) }),
    search(image, contentType, { topK, minScore, prefix, orientation }) {
      const query = new URLSearchParams({ topK: String(topK) });
      if (minScore !== undefined) query.set('minScore', String(minScore));
      if (prefix) query.set('prefix', prefix);
      if (orientation) query.set('orientation', orientation);
      return call('POST', `/search?${query}`, image, contentType);
    },
    count: async () => (await call<{ count: number }>('GET', '/count')).count,
    progress: (failures = 20) => call('GET', `/progress?failures=${failures}`),
    async deleteImage(key, keepObject) {
      await call('DELETE', `/images/${encodeKeyPath(key)}${keepObject ? '?keepObject=true' : ''}`);
    },
    deleteAll: (deleteObjects) =>
      call('DELETE', `/images?confirm=true${deleteObjects ? '&deleteObjects=true' : ''}`),
    duplicates({ limit, threshold, cursor }) {
      const query = new URLSearchParams({ limit: String(limit) });
      if (threshold !== undefined) query.set('threshold', String(threshold));
      if (cursor) query.set('cursor', cursor);
      return call('GET', `/duplicates?${query}`);
    },
    close: async () => undefined,
  };
}

async function directBackend(dataDir: string, logLevel: string): Promise<Backend> {
  const config = loadConfig({
    ...process.env,
    PIC_DATA_DIR: dataDir,
    PIC_WATCH: 'false',
    PIC_LOG_LEVEL: logLevel,
  });
  const system: EmbeddedSystem = await createEmbeddedSystem(config, {
    logger: createLogger({ level: config.logLevel, name: 'pic-search-cli' }),
  });
  const { operations } = system;
  return {
    async ingest(dir, prefix) {
      // Without a worker nothing would ever settle.
      if (system.indexMismatch) throw system.indexMismatch;
      await system.startWorker();
      return system.ingestFolder(dir, prefix);
    },
    search: (image, _type, request) => operations.searchByImage(image, request),
    count: () => operations.count(),
    progress: (failures) => operations.progress(failures),
    deleteImage: (key, keepObject) => operations.deleteImage(key, { keepObject }),
    deleteAll: (deleteObjects) => operations.deleteAll({ deleteObjects }),
    duplicates: (request) => system.duplicates.find(request),
    close: () => system.close(),
  };
}

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`an integer ${min}..${max}`);
    return n;
  };
}

function score(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < -1 || n > 1) throw new InvalidArgumentError('a number in [-1, 1]');
  return n;
}

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function printProgress(progress: Progress): void {
  const { total, indexed, pending, failed, throughput, etaSeconds, queue } = progress;
  print(`images    ${total} (indexed ${indexed}, pending ${pending}, failed ${failed})`);
  print(
    `speed     ${throughput.toFixed(2)} images/s, ETA ${etaSeconds === null ? 'unknown' : `${etaSeconds} s`}`,
  );
  print(`queue     ${queue.visible} waiting, ${queue.inFlight} in progress`);
  if (progress.recentFailures.length > 0) {
    print('latest failures:');
    for (const failure of progress.recentFailures) print(`  ${failure.key}: ${failure.reason}`);
  }
}

/** Shows a bar until nothing is pending or queued. */
async function followIngest(backend: Backend, interactive: boolean): Promise<Progress> {
  const bar = new SingleBar({
    format: 'indexing |{bar}| {value}/{total} images | failed {failed} | {speed}/s | ETA {eta_formatted}',
    hideCursor: true,
  });
  let started = false;
  const settled = await waitUntilSettled(
    { progress: () => backend.progress(20) },
    {
      intervalMs: 500,
      onProgress(progress) {
        if (!interactive) return;
        const payload = { failed: progress.failed, speed: progress.throughput.toFixed(1) };
        const done = progress.indexed + progress.failed;
        if (!started) bar.start(progress.total, done, payload);
        started = true;
        bar.setTotal(progress.total);
        bar.update(done, payload);
      },
    },
  );
  if (started) bar.stop();
  return settled;
}

function buildProgram(): Command {
  const program = new Command('pic-search')
    .description('Search by image: ingest folders, search, count, progress, duplicates and delete.')
    .addOption(
      new Option('--url <url>', 'the running service').env('PIC_URL').default('http://localhost:8080'),
    )
    .addOption(new Option('--token <token>', 'bearer token of a cloud API').env('PIC_API_TOKEN'))
    .option('--data-dir <dir>', 'work on this data directory directly instead of the service')
    .option('--verbose', 'log what the in-process worker does (with --data-dir)')
    .showHelpAfterError();

  const withBackend = async (run: (backend: Backend) => Promise<void>): Promise<void> => {
    const { url, token, dataDir, verbose } = program.opts<{
      url: string;
      token?: string;
      dataDir?: string;
      verbose?: boolean;
    }>();
    const backend = dataDir
      ? await directBackend(dataDir, verbose ? 'info' : 'error')
      : httpBackend(url, token);
    try {
      await run(backend);
    } finally {
      await backend.close();
    }
  };

  program
    .command('ingest <dir>')
    .description('index every image under a folder (recursively); re-ingest picks up changes and removals')
    .option('--prefix <prefix>', 'key prefix in the bucket (default: the folder name)')
    .option('--no-wait', 'return once queued instead of following the progress')
    .option('--json', 'print the final report as JSON')
    .action((dir: string, options: { prefix?: string; wait: boolean; json?: boolean }) =>
      withBackend(async (backend) => {
        const report = await backend.ingest(dir, options.prefix);
        if (!options.json) {
          const files = report.files;
          print(
            `${report.prefix}: ${report.queued} queued, ${report.unchanged} unchanged, ${report.removed} removed` +
              (files
                ? ` (copied ${files.copied}, deleted ${files.deleted}, skipped ${files.skipped} non-images)`
                : ''),
          );
        }
        if (!options.wait) {
          if (options.json) print(JSON.stringify(report, null, 2));
          return;
        }
        const progress = await followIngest(backend, process.stdout.isTTY === true && !options.json);
        if (options.json) print(JSON.stringify({ report, progress }, null, 2));
        else printProgress(progress);
      }),
    );

  interface SearchOptions {
    topK: number;
    minScore?: number;
    prefix?: string;
    orientation: Orientation;
    json?: boolean;
  }

  program
    .command('search <image>')
    .description('the most similar indexed images, best first (score: cosine similarity in [-1, 1])')
    .option('-k, --top-k <n>', 'how many results (1..100)', integer(1, 100), 10)
    .option('--min-score <score>', 'leave out results scoring below this', score)
    .option('--prefix <prefix>', 'only keys starting with this')
    .addOption(
      new Option(
        '--orientation <orientation>',
        'any: also find rotated or mirrored copies (8× the embedding time)',
      )
        .choices(ORIENTATIONS)
        .default('upright'),
    )
    .option('--json', 'print the response as JSON')
    .action((image: string, options: SearchOptions) =>
      withBackend(async (backend) => {
        const bytes = await readFile(image).catch((error: NodeJS.ErrnoException) => {
          throw new CliError(
            `Cannot read ${image}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
          );
        });
        const type = extname(image) ? contentTypeOf(image) : 'application/octet-stream';
        const response = await backend.search(bytes, type, {
          topK: options.topK,
          ...(options.minScore === undefined ? {} : { minScore: options.minScore }),
          ...(options.prefix ? { prefix: options.prefix } : {}),
          orientation: options.orientation,
        });
        if (options.json) return print(JSON.stringify(response, null, 2));
        if (!response.pretrained)
          print(`(model ${response.model} has SEEDED random weights: scores are not meaningful)`);
        for (const result of response.results)
          print(`${result.score.toFixed(4)}  ${result.match.padEnd(9)}  ${result.key}`);
        if (response.results.length === 0) print('no results');
        const t = response.timings;
        print(
          `(${response.results.length} of top ${response.topK}; decode ${t.decodeMs} ms, embed ${t.embedMs} ms, search ${t.searchMs} ms, total ${t.totalMs} ms)`,
        );
      }),
    );

  program
    .command('count')
    .description('vectors in the index')
    .action(() => withBackend(async (backend) => print(String(await backend.count()))));

  program
    .command('progress')
    .description('images pending, indexed and failed, throughput, ETA and the latest failures')
    .option('--failures <n>', 'how many recent failures to list', integer(0, 100), 20)
    .option('--json', 'print as JSON')
    .action((options: { failures: number; json?: boolean }) =>
      withBackend(async (backend) => {
        const progress = await backend.progress(options.failures);
        if (options.json) print(JSON.stringify(progress, null, 2));
        else printProgress(progress);
      }),
    );

  program
    .command('duplicates')
    .description('groups of near-duplicate images, the copy to keep first (most pixels, largest, oldest)')
    .option(
      '--threshold <score>',
      "similarity from which two images are duplicates (default: the service's)",
      score,
    )
    .option('--limit <n>', 'groups per page (1..100)', integer(1, 100), 20)
    .option('--cursor <cursor>', 'the next page, as printed at the end of the previous one')
    .option('--json', 'print the page as JSON')
    .action((options: { threshold?: number; limit: number; cursor?: string; json?: boolean }) =>
      withBackend(async (backend) => {
        const page = await backend.duplicates({
          limit: options.limit,
          ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
          ...(options.cursor ? { cursor: options.cursor } : {}),
        });
        if (options.json) return print(JSON.stringify(page, null, 2));
        for (const group of page.groups) {
          for (const member of group.members) {
            const what = member.key === group.keep ? 'keep'.padEnd(6) : member.score.toFixed(4);
            print(`${what}  ${member.key}  (${member.width}×${member.height}, ${member.bytes} bytes)`);
          }
          print();
        }
        print(
          `${page.totalGroups} group${page.totalGroups === 1 ? '' : 's'} at similarity ${page.threshold} or more`,
        );
        if (page.nextCursor) print(`next page: duplicates --cursor ${page.nextCursor}`);
      }),
    );

  program
    .command('delete [key]')
    .description('delete one image (its vector, thumbnail, entry and file), or everything with --all --yes')
    .option('--all', 'delete every vector and catalogue entry')
    .option('--yes', 'confirm --all')
    .option('--delete-objects', 'with --all: delete the image files too')
    .option('--keep-object', 'with a key: keep the image file (it is indexed again on the next ingest)')
    .action(
      (
        key: string | undefined,
        options: { all?: boolean; yes?: boolean; deleteObjects?: boolean; keepObject?: boolean },
      ) => {
        // Checked before anything is opened: a refused delete-all must not even load the model.
        if (options.all && key) throw new CliError('Give either a key or --all, not both.');
        if (options.all && !options.yes) {
          throw new CliError('delete --all removes every vector and catalogue entry: add --yes to confirm.');
        }
        if (!options.all && !key) throw new CliError('Give the key of the image to delete, or --all --yes.');
        return withBackend(async (backend) => {
          if (!key) {
            const { deleted } = await backend.deleteAll(options.deleteObjects === true);
            return print(`deleted ${deleted} vectors${options.deleteObjects ? ' and the image files' : ''}`);
          }
          await backend.deleteImage(key, options.keepObject === true);
          print(`deleted ${key}`);
        });
      },
    );

  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    // Named errors (CliError, ConfigError, the domain's AppErrors) carry a message meant for people.
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

await main();
