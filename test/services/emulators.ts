import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureVenv, venvBin } from './venv.ts';

const HOST = '127.0.0.1';

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject()));
    });
  });
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((answer) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      answer(ok);
    };
    socket.setTimeout(500);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
    socket.connect(port, HOST);
  });
}

/** A child process that serves on `port`; `stop()` ends it (SIGTERM, then SIGKILL) and waits for exit. */
export interface ServiceProcess {
  port: number;
  /** The OS process, for benchmarks that read its CPU time. */
  pid: number | undefined;
  stop(): Promise<void>;
}

async function startService(
  name: string,
  command: string,
  args: string[],
  port: number,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const child: ChildProcess = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const deadline = Date.now() + 60_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not start on ${HOST}:${port} (${command} ${args.join(' ')}):\n${output}`);
    }
    await sleep(100);
  }
  return {
    port,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * moto in server mode: S3, SQS, DynamoDB and Secrets Manager behind one endpoint. `recordingFile` is where
 * its request recorder (`/moto-api/recorder/…`) writes, instead of a file in the working directory.
 */
export async function startMoto(
  options: { port?: number; recordingFile?: string } = {},
): Promise<ServiceProcess & { endpoint: string }> {
  const chosen = options.port ?? (await freePort());
  const service = await startService(
    'moto_server',
    venvBin('moto_server'),
    ['-H', HOST, '-p', String(chosen)],
    chosen,
    options.recordingFile ? { MOTO_RECORDER_FILEPATH: options.recordingFile } : {},
  );
  return { ...service, endpoint: `http://${HOST}:${chosen}` };
}

/** Milvus Lite's gRPC server over `dataDir`; start it again on the same dir and port to model a restart. */
export async function startMilvusLite(
  dataDir: string,
  port?: number,
): Promise<ServiceProcess & { address: string; dataDir: string }> {
  const chosen = port ?? (await freePort());
  const args = ['server', '--data-dir', dataDir, '--host', HOST, '--port', String(chosen)];
  const service = await startService('milvus-lite', venvBin('milvus-lite'), args, chosen);
  return { ...service, address: `${HOST}:${chosen}`, dataDir };
}

export interface Emulators {
  /** AWS_ENDPOINT_URL for every AWS client. */
  awsEndpoint: string;
  /** MILVUS_ADDRESS (host:port, plaintext gRPC). */
  milvusAddress: string;
  pids: { moto: number | undefined; milvusLite: number | undefined };
  stop(): Promise<void>;
}

/** Creates the venv when needed, then starts moto and Milvus Lite on free loopback ports. */
export async function startEmulators(log?: (line: string) => void): Promise<Emulators> {
  await ensureVenv(log);
  const dataDir = await mkdtemp(join(tmpdir(), 'pic-emulators-'));
  await mkdir(join(dataDir, 'milvus'));
  const [moto, milvus] = await Promise.all([
    startMoto({ recordingFile: join(dataDir, 'moto-recording.jsonl') }),
    startMilvusLite(join(dataDir, 'milvus')),
  ]);
  return {
    awsEndpoint: moto.endpoint,
    milvusAddress: milvus.address,
    pids: { moto: moto.pid, milvusLite: milvus.pid },
    async stop() {
      await Promise.all([moto.stop(), milvus.stop()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
