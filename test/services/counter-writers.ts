import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { createCatalogueTable } from '../../src/adapters/aws/catalogue-table.ts';
import { createAwsClients } from '../../src/adapters/aws/clients.ts';
import { DynamoCatalogue } from '../../src/adapters/aws/dynamo-catalogue.ts';
import type { ImageState } from '../../src/domain/ports.ts';
import { uniqueName } from '../cloud/support.ts';
import type { WriterJob, WriterReport } from './catalogue-writer.ts';
import { startConflictingProxy, type TransactionStats } from './transaction-conflicts.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = fileURLToPath(new URL('./catalogue-writer.ts', import.meta.url));

export interface CounterWritersOptions {
  /** moto's endpoint. */
  awsEndpoint: string;
  writers: number;
  counterShards: number;
  batchesPerWriter: number;
  batchSize: number;
  /** Every writer writes the same keys, batches in a different order (as redelivered messages do). */
  sharedKeys: boolean;
  /** SIGKILL the first writer once this many transactions have committed. */
  killFirstAfter?: number;
}

export interface CounterWritersRun {
  ms: number;
  stats: TransactionStats;
  /** Undefined for a writer that was killed. */
  reports: (WriterReport | undefined)[];
  /** What progress reads from the counter shards, and what a count of the records finds. */
  counters: Record<ImageState, number>;
  records: Record<ImageState, number>;
}

/**
 * Writer processes (catalogue-writer.ts) on one fresh table, each through the proxy that cancels
 * transactions at once on one item as DynamoDB does (transaction-conflicts.ts), started together; then the
 * counters against the records. The table is deleted after.
 */
export async function runCounterWriters(options: CounterWritersOptions): Promise<CounterWritersRun> {
  const clients = createAwsClients({ region: 'us-east-1', endpoint: options.awsEndpoint });
  const table = uniqueName('counters');
  await createCatalogueTable(clients.dynamodb, table);
  const proxy = await startConflictingProxy(options.awsEndpoint);
  try {
    const children = Array.from({ length: options.writers }, (_, writer) =>
      startWriter({
        endpoint: proxy.endpoint,
        table,
        counterShards: options.counterShards,
        batches: batchesOf(writer, options),
      }),
    );
    await Promise.all(children.map((child) => child.ready));
    const started = performance.now();
    for (const child of children) child.process.stdin?.end('go\n');
    const killer =
      options.killFirstAfter === undefined ? undefined : killWhen(children[0], proxy, options.killFirstAfter);
    const reports = await Promise.all(children.map((child) => child.report));
    const ms = performance.now() - started;
    clearInterval(killer);
    const catalogue = new DynamoCatalogue(clients.dynamodb, table, { counterShards: options.counterShards });
    const records: Record<ImageState, number> = { pending: 0, indexed: 0, failed: 0 };
    for await (const record of catalogue.list()) records[record.state]++;
    const { pending, indexed, failed } = await catalogue.progress(0);
    return { ms, stats: { ...proxy.stats }, reports, counters: { pending, indexed, failed }, records };
  } finally {
    await proxy.close();
    await clients.dynamodb.send(new DeleteTableCommand({ TableName: table }));
    clients.destroy();
  }
}

function batchesOf(writer: number, options: CounterWritersOptions): string[][] {
  const { batchesPerWriter, batchSize, sharedKeys } = options;
  return Array.from({ length: batchesPerWriter }, (_, b) => {
    const batch = sharedKeys ? `b${(b + writer) % batchesPerWriter}` : `w${writer}/b${b}`;
    return Array.from({ length: batchSize }, (_, i) => `${batch}/k${i}.jpg`);
  });
}

interface Writer {
  process: ChildProcess;
  ready: Promise<void>;
  /** Its report; undefined when it was killed. */
  report: Promise<WriterReport | undefined>;
}

function startWriter(job: WriterJob): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, JSON.stringify(job)], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ready = new Promise<void>((resolve, reject) => {
    lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`writer said ${line}`))));
    child.once('exit', () => reject(new Error('writer exited before it was ready')));
  });
  const report = (async () => {
    let last = '';
    lines.on('line', (line) => {
      last = line;
    });
    const [code, signal] = await once(child, 'exit');
    if (signal === 'SIGKILL') return undefined;
    if (code !== 0) throw new Error(`writer exited with ${code ?? signal}`);
    return JSON.parse(last) as WriterReport;
  })();
  return { process: child, ready, report };
}

function killWhen(writer: Writer | undefined, proxy: { stats: TransactionStats }, committed: number) {
  const timer = setInterval(() => {
    if (proxy.stats.committed < committed) return;
    writer?.process.kill('SIGKILL');
    clearInterval(timer);
  }, 5);
  return timer;
}
