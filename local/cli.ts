/**
 * `npm run cli -- <command>` or `npx pic-search <command>`: the operations from a terminal, against the
 * running service (--url, the default) or straight on a data directory (--data-dir; ingest then runs a
 * worker in this process).
 *
 * Every command returns an Outcome: `--json` prints its JSON, otherwise its lines. Exit codes: 0 done,
 * 1 failed (including an ingest with failed files), 2 wrong usage (one line on stderr, not the help).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
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
import type { ReindexReport } from '../src/app/reindex.ts';
import type { TaskView } from '../src/app/tasks.ts';
import { type VerifyReport, verifyReportLines } from '../src/app/verify.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { SAMPLE_PHOTOS_DIR } from '../src/sample-photos.ts';
import { createEmbeddedSystem, type EmbeddedSystem } from '../src/wiring/embedded.ts';
import { followIngest, type IngestOutcome } from './ingest-progress.ts';

/** What each command needs, over HTTP or in-process. */
interface Backend {
  ingest(dir: string, prefix?: string): Promise<IngestReport>;
  search(image: Uint8Array, contentType: string, request: SearchRequest): Promise<SearchResponse>;
  count(): Promise<number>;
  progress(failures?: number): Promise<Progress>;
  deleteImage(key: string, keepObject: boolean): Promise<void>;
  deleteAll(deleteObjects: boolean): Promise<{ deleted: number; task: TaskView }>;
  verify(repair: boolean): Promise<TaskView>;
  reindex(): Promise<TaskView>;
  /** Waits until the task is no longer running (over HTTP the service's worker runs it; on a data directory, this process). */
  finish(task: TaskView): Promise<TaskView>;
  duplicates(request: DuplicatesRequest): Promise<DuplicatesPage>;
  close(): Promise<void>;
}

/** What a command prints: `json` with --json, `lines` otherwise. `failed` makes the exit code 1. */
interface Outcome {
  json: unknown;
  lines: string[];
  failed?: boolean;
}

/** A failure the user can act on (service down, file missing): printed as one line, exit code 1. */
class CliError extends Error {}

/** Wrong usage: printed as one line, exit code 2. */
const USAGE_EXIT_CODE = 2;

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * Paths on the command line are the user's: npm runs scripts from the package folder and says where the
 * user was in INIT_CWD (`npm run cli`, `npx`); a plain `node local/cli.ts` has only its own cwd.
 */
function userPath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.INIT_CWD ?? process.cwd(), path);
}

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
    ingest: (dir, prefix) => call('POST', '/ingest', { path: dir, ...(prefix ? { prefix } : {}) }),
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
    verify: (repair) => call('POST', `/verify${repair ? '?repair=true' : ''}`),
    reindex: () => call('POST', '/reindex'),
    finish: (task) => followTask(() => call<Progress>('GET', '/progress?failures=0'), task),
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
    verify: (repair) => operations.verify({ repair }),
    reindex: () => operations.reindex(),
    async finish(task) {
      // The worker that the re-index started runs it: it embeds the images as the slices wait for them.
      if (task.kind === 'reindex') return followTask(() => operations.progress(0), task);
      await system.runTask(task.id);
      return (await operations.progress(0)).tasks[taskSlot(task)] ?? task;
    },
    duplicates: (request) => system.duplicates.find(request),
    close: () => system.close(),
  };
}

const TASK_POLL_MS = 500;

const taskSlot = (task: TaskView) =>
  task.kind === 'delete-all' ? 'deleteAll' : task.kind === 'reindex' ? 'reindex' : 'verify';

/** Polls the progress until the task is no longer running (or a newer one of its kind replaced it). */
async function followTask(progress: () => Promise<Progress>, task: TaskView): Promise<TaskView> {
  for (;;) {
    const latest = (await progress()).tasks[taskSlot(task)];
    if (latest && (latest.id !== task.id || latest.state !== 'running')) return latest;
    await sleep(TASK_POLL_MS);
  }
}

function reindexLines(task: TaskView): string[] {
  if (task.state !== 'done') return [`re-index ${task.state}: ${task.error ?? ''}`];
  const { indexed = 0, failed = 0, switchedAt = 0 } = task.progress;
  const to = (task.report as ReindexReport | undefined)?.to.identity.model ?? 'the configured model';
  const started = Date.parse(task.startedAt);
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return [
    `re-indexed ${indexed} images with ${to}${failed > 0 ? `; ${failed} failed (see progress)` : ''}`,
    `switched to the new index after ${seconds(switchedAt - started)}; the old one was dropped ${seconds(Date.parse(task.finishedAt ?? task.updatedAt) - switchedAt)} later`,
  ];
}

function taskLines({ deleteAll, verify, reindex }: Progress['tasks']): string[] {
  const lines: string[] = [];
  if (reindex?.state === 'running') {
    const { indexed = 0, failed = 0, total = 0 } = reindex.progress;
    lines.push(`re-index  ${indexed + failed} of ${total} images done (${failed} failed)`);
  }
  if (deleteAll?.state === 'running') {
    const { records = 0, recordsRemoved = 0 } = deleteAll.progress;
    lines.push(`delete-all cleaning up: ${recordsRemoved} of ${records} records removed`);
  }
  if (verify) {
    const drift = (verify.report as VerifyReport | undefined)?.driftCount;
    lines.push(
      `verified  ${verify.state === 'running' ? 'now running' : `${verify.finishedAt}: ${drift} drift`}`,
    );
  }
  return lines;
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

function progressLines(progress: Progress): string[] {
  const { total, indexed, pending, failed, throughput, etaSeconds, queue } = progress;
  return [
    `images    ${total} (indexed ${indexed}, pending ${pending}, failed ${failed})`,
    `speed     ${throughput.toFixed(2)} images/s, ETA ${etaSeconds === null ? 'unknown' : `${etaSeconds} s`}`,
    `queue     ${queue.visible} waiting, ${queue.inFlight} in progress`,
    ...taskLines(progress.tasks),
    ...(progress.recentFailures.length > 0
      ? ['latest failures:', ...progress.recentFailures.map((f) => `  ${f.key}: ${f.reason}`)]
      : []),
  ];
}

function ingestLines({ report, job, library }: IngestOutcome): string[] {
  const { files } = report;
  const lines = [
    `${report.prefix}: ${report.queued} queued, ${report.unchanged} unchanged, ${report.removed} removed` +
      (files
        ? ` (copied ${files.copied}, deleted ${files.deleted}, skipped ${files.skipped} non-images)`
        : ''),
  ];
  if (!job) return lines;
  lines.push(`this job  ${job.indexed} indexed, ${job.failures.length} failed`);
  for (const failure of job.failures) lines.push(`  ${failure.key}: ${failure.reason}`);
  if (library)
    lines.push(`library   ${library.total} images, ${library.indexed} indexed, ${library.failed} failed`);
  return lines;
}

function searchLines(response: SearchResponse): string[] {
  const t = response.timings;
  return [
    ...(response.pretrained
      ? []
      : [`(model ${response.model} has SEEDED random weights: scores are not meaningful)`]),
    ...response.results.map(
      (result) => `${result.score.toFixed(4)}  ${result.match.padEnd(9)}  ${result.key}`,
    ),
    ...(response.results.length === 0 ? ['no results'] : []),
    `(${response.results.length} of top ${response.topK}; decode ${t.decodeMs} ms, embed ${t.embedMs} ms, search ${t.searchMs} ms, total ${t.totalMs} ms)`,
  ];
}

function duplicatesLines(page: DuplicatesPage): string[] {
  const lines: string[] = [];
  for (const group of page.groups) {
    for (const member of group.members) {
      const what = member.key === group.keep ? 'keep'.padEnd(6) : member.score.toFixed(4);
      lines.push(`${what}  ${member.key}  (${member.width}×${member.height}, ${member.bytes} bytes)`);
    }
    lines.push('');
  }
  lines.push(
    `${page.totalGroups} group${page.totalGroups === 1 ? '' : 's'} at similarity ${page.threshold} or more`,
  );
  if (page.nextCursor) lines.push(`next page: duplicates --cursor ${page.nextCursor}`);
  return lines;
}

interface GlobalOptions {
  url: string;
  token?: string;
  dataDir?: string;
  verbose?: boolean;
  json?: boolean;
}

interface SearchOptions {
  topK: number;
  minScore?: number;
  prefix?: string;
  orientation: Orientation;
}

function buildProgram(): Command {
  const program = new Command('pic-search')
    .description('Search by image: ingest folders, search, count, progress, duplicates and delete.')
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(
      new Option('--url <url>', 'the running service').env('PIC_URL').default('http://localhost:8080'),
    )
    .addOption(new Option('--token <token>', 'bearer token of a cloud API').env('PIC_API_TOKEN'))
    .option('--data-dir <dir>', 'work on this data directory directly instead of the service')
    .option('--verbose', 'log what the in-process worker does (with --data-dir)')
    .option('--json', 'print the result as JSON (every command)')
    .exitOverride()
    .configureOutput({ outputError: (message, write) => write(message) });

  const options = () => program.opts<GlobalOptions>();

  /** Opens the backend, runs the command and prints its outcome; closes the backend in every case. */
  const act =
    <A extends unknown[]>(run: (backend: Backend, ...args: A) => Promise<Outcome>) =>
    async (...args: A): Promise<void> => {
      const { url, token, dataDir, verbose, json } = options();
      const backend = dataDir
        ? await directBackend(userPath(dataDir), verbose ? 'info' : 'error')
        : httpBackend(url, token);
      try {
        const outcome = await run(backend, ...args);
        const text = json ? JSON.stringify(outcome.json, null, 2) : outcome.lines.join('\n');
        process.stdout.write(`${text}\n`);
        if (outcome.failed) process.exitCode = 1;
      } finally {
        await backend.close();
      }
    };

  /** Wrong usage found by the command itself: one line and exit code 2, before anything is opened. */
  const usage = (message: string): never =>
    program.error(`error: ${message}`, { exitCode: USAGE_EXIT_CODE, code: 'pic-search.usage' });

  const ingest = async (backend: Backend, dir: string, prefix: string | undefined, wait: boolean) => {
    const outcome = await followIngest(backend, dir, prefix, {
      wait,
      bar: process.stderr.isTTY === true,
    });
    return { json: outcome, lines: ingestLines(outcome), failed: (outcome.job?.failures.length ?? 0) > 0 };
  };

  program
    .command('ingest <dir>')
    .description('index every image under a folder (recursively); re-ingest picks up changes and removals')
    .option('--prefix <prefix>', 'key prefix in the bucket (default: the folder name)')
    .option('--no-wait', 'return once queued instead of following the progress')
    .action(
      act((backend, dir: string, opts: { prefix?: string; wait: boolean }) =>
        ingest(backend, userPath(dir), opts.prefix, opts.wait),
      ),
    );

  program
    .command('demo')
    .description(`load the sample library (${SAMPLE_PHOTOS_DIR}) into the service, as ingest does`)
    .option('--no-wait', 'return once queued instead of following the progress')
    .action(
      act((backend, opts: { wait: boolean }) => ingest(backend, SAMPLE_PHOTOS_DIR, undefined, opts.wait)),
    );

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
    .action(async (image: string, opts: SearchOptions) => {
      // Read first: a missing file should not wait for the model to load.
      const path = userPath(image);
      const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
        throw new CliError(
          `Cannot read ${path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
        );
      });
      const type = extname(path) ? contentTypeOf(path) : 'application/octet-stream';
      return act(async (backend) => {
        const response = await backend.search(bytes, type, {
          topK: opts.topK,
          ...(opts.minScore === undefined ? {} : { minScore: opts.minScore }),
          ...(opts.prefix ? { prefix: opts.prefix } : {}),
          orientation: opts.orientation,
        });
        return { json: response, lines: searchLines(response) };
      })();
    });

  program
    .command('count')
    .description('vectors in the index')
    .action(
      act(async (backend) => {
        const count = await backend.count();
        return { json: { count }, lines: [String(count)] };
      }),
    );

  program
    .command('progress')
    .description('images pending, indexed and failed, throughput, ETA and the latest failures')
    .option('--failures <n>', 'how many recent failures to list', integer(0, 100), 20)
    .action(
      act(async (backend, opts: { failures: number }) => {
        const progress = await backend.progress(opts.failures);
        return { json: progress, lines: progressLines(progress) };
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
    .action(
      act(async (backend, opts: { threshold?: number; limit: number; cursor?: string }) => {
        const page = await backend.duplicates({
          limit: opts.limit,
          ...(opts.threshold === undefined ? {} : { threshold: opts.threshold }),
          ...(opts.cursor ? { cursor: opts.cursor } : {}),
        });
        return { json: page, lines: duplicatesLines(page) };
      }),
    );

  interface DeleteOptions {
    all?: boolean;
    yes?: boolean;
    deleteObjects?: boolean;
    keepObject?: boolean;
    wait: boolean;
  }

  const deleteImages = act(async (backend, key: string | undefined, opts: DeleteOptions) => {
    if (!key) {
      const started = await backend.deleteAll(opts.deleteObjects === true);
      const lines = [
        `the library is empty (${started.deleted} vectors); records and files are cleaned up in the background`,
      ];
      if (!opts.deleteObjects) lines.push('kept photos stay out of the index until you ingest them again');
      if (!opts.wait) return { json: started, lines };
      const task = await backend.finish(started.task);
      const { recordsRemoved = 0, thumbnailsRemoved = 0, objectsRemoved = 0 } = task.progress;
      lines.push(
        `cleanup ${task.state}: ${recordsRemoved} records, ${thumbnailsRemoved} thumbnails, ${objectsRemoved} image files removed`,
      );
      return { json: { deleted: started.deleted, task }, lines, failed: task.state !== 'done' };
    }
    await backend.deleteImage(key, opts.keepObject === true);
    return { json: { deleted: key }, lines: [`deleted ${key}`] };
  });

  program
    .command('delete [key]')
    .description('delete one image (its vector, thumbnail, entry and file), or everything with --all --yes')
    .option('--all', 'delete every vector and catalogue entry')
    .option('--yes', 'confirm --all')
    .option('--delete-objects', 'with --all: delete the image files too')
    .option('--keep-object', 'with a key: keep the image file (it is indexed again on the next ingest)')
    .option('--no-wait', 'with --all: return once the library is empty, leaving the cleanup to run')
    .action((key: string | undefined, opts: DeleteOptions) => {
      // Checked before anything is opened: a refused delete-all must not even load the model.
      if (opts.all && key) usage('give either a key or --all, not both');
      if (opts.all && !opts.yes)
        usage('delete --all removes every vector and catalogue entry: add --yes to confirm');
      if (!opts.all && !key) usage('give the key of the image to delete, or --all --yes');
      return deleteImages(key, opts);
    });

  program
    .command('reindex')
    .description(
      'rebuild the index with the configured model from the bucket; the old index answers until the new one is complete',
    )
    .action(
      act(async (backend) => {
        const task = await backend.finish(await backend.reindex());
        return {
          json: task,
          lines: reindexLines(task),
          failed: task.state !== 'done',
        };
      }),
    );

  program
    .command('verify')
    .description('compare bucket, catalogue and index and report every drift; --repair fixes it')
    .option('--repair', 'fix what is found: re-queue, forget, delete ghost vectors, recount')
    .action(
      act(async (backend, opts: { repair?: boolean }) => {
        const task = await backend.finish(await backend.verify(opts.repair === true));
        if (task.state !== 'done') {
          return { json: task, lines: [`verification ${task.state}: ${task.error ?? ''}`], failed: true };
        }
        const report = task.report as VerifyReport;
        return { json: report, lines: verifyReportLines(report) };
      }),
    );

  return program;
}

/** Commander's codes for wrong usage (its own exit code for them is 1; the convention is 2). */
const USAGE_CODES = new Set([
  'commander.unknownOption',
  'commander.unknownCommand',
  'commander.missingArgument',
  'commander.optionMissingArgument',
  'commander.missingMandatoryOptionValue',
  'commander.invalidArgument',
  'commander.excessArguments',
  'commander.conflictingOption',
  'pic-search.usage',
]);

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  if (argv.length <= 2) {
    process.stderr.write('error: give a command (ingest, search, count, …); see pic-search --help\n');
    process.exitCode = USAGE_EXIT_CODE;
    return;
  }
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed its one line already; help and --version end here with 0.
      process.exitCode = USAGE_CODES.has(error.code) ? USAGE_EXIT_CODE : error.exitCode;
      return;
    }
    // Named errors (CliError, ConfigError, the domain's AppErrors) carry a message meant for people.
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

await main(process.argv);
