/**
 * One catalogue writer process, as a cloud worker is one: its own DynamoDB client and DynamoCatalogue (so
 * its own in-process transaction line). Started by counter-writers.ts with a JSON job as its argument; says
 * `ready`, waits for a line on stdin (so all writers start together), then for each batch of its keys marks
 * them pending, indexed, the first failed and the second removed, and prints what it did as JSON.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createAwsClients } from '../../src/adapters/aws/clients.ts';
import { DynamoCatalogue } from '../../src/adapters/aws/dynamo-catalogue.ts';
import { vectorIdOf } from '../../src/domain/ids.ts';
import { versionNow } from '../../src/domain/versions.ts';

export interface WriterJob {
  endpoint: string;
  table: string;
  counterShards: number;
  batches: string[][];
}

export interface WriterReport {
  batches: number;
  /** Batches whose transactions kept conflicting past the catalogue's attempts. */
  gaveUp: number;
  ms: number;
}

const job = JSON.parse(process.argv[2] ?? '') as WriterJob;
const clients = createAwsClients({ region: 'us-east-1', endpoint: job.endpoint });
const catalogue = new DynamoCatalogue(clients.dynamodb, job.table, { counterShards: job.counterShards });

console.log('ready');
const go = createInterface({ input: process.stdin });
await once(go, 'line');
go.close();
const started = performance.now();
let gaveUp = 0;
for (const keys of job.batches) {
  const entries = keys.map((key) => ({ key, id: vectorIdOf(key) }));
  try {
    await catalogue.markPending(entries);
    await catalogue.markIndexed(
      entries.map((entry) => ({ ...entry, model: 'm', profile: 'p', version: versionNow() })),
    );
    const [first, second] = entries;
    if (first) await catalogue.markFailed({ ...first, reason: 'corrupt', version: versionNow() });
    if (second) await catalogue.remove([second.key], versionNow());
  } catch (error) {
    if (!(error as Error).message.includes('kept conflicting')) throw error;
    gaveUp++;
  }
}
const report: WriterReport = { batches: job.batches.length, gaveUp, ms: performance.now() - started };
console.log(JSON.stringify(report));
clients.destroy();
