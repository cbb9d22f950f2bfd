/**
 * Starts the real service the way a user does (`npm start` runs `tsx local/main.ts`), as a child process
 * with its own data folder and a free port, and talks to it over HTTP. One node process (tsx loaded with
 * --import), so SIGKILL hits the service itself and not a wrapper.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SAMPLE_PHOTOS_DIR } from '../src/sample-photos.ts';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const fixturesDir = SAMPLE_PHOTOS_DIR;

export interface Service {
  url: string;
  dataDir: string;
  process: ChildProcess;
  /** Everything the service printed so far. */
  output(): string;
  /** SIGTERM (or the given signal) and wait for exit; resolves the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function makeDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pic-search-e2e-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * Starts the service on `dataDir` (127.0.0.1, a free port). Tests ingest folders they make under the
 * temporary folder and the repository's sample photos, so those are the ingest roots unless `env` says.
 */
export async function startService(
  dataDir: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts', ...args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PIC_DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      PIC_LOG_LEVEL: 'info',
      PIC_INGEST_ROOTS: [tmpdir(), repoRoot].join(delimiter),
      NO_COLOR: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`service did not start within 120 s:\n${output}`)),
      120_000,
    );
    const poll = setInterval(() => {
      const found = /listening on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (found?.[1]) {
        clearInterval(poll);
        clearTimeout(timer);
        done(found[1]);
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      fail(new Error(`service exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    dataDir,
    process: child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

export interface ProgressBody {
  total: number;
  pending: number;
  indexed: number;
  failed: number;
  recentFailures: { key: string; reason: string; at: string }[];
  queue: { visible: number; inFlight: number };
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Polls /progress until nothing is pending or queued and `done` holds (or the time is up). */
export async function waitForSettled(
  service: Service,
  done: (progress: ProgressBody) => boolean = () => true,
  timeoutMs = 180_000,
): Promise<ProgressBody> {
  const deadline = Date.now() + timeoutMs;
  let last: ProgressBody | undefined;
  while (Date.now() < deadline) {
    last = await getJson<ProgressBody>(`${service.url}/progress?failures=100`);
    const idle = last.pending === 0 && last.queue.visible === 0 && last.queue.inFlight === 0;
    if (idle && done(last)) return last;
    await new Promise((wait) => setTimeout(wait, 250));
  }
  throw new Error(`progress did not settle: ${JSON.stringify(last)}`);
}

/** A key as a URL path: each segment percent-encoded, the slashes kept. */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
