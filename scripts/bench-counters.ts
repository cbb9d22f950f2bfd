/**
 * How often concurrent catalogue writers conflict on the counters, on moto. N writer processes (each its
 * own DynamoCatalogue, as ECS worker tasks are) write disjoint keys through a proxy that cancels a
 * transaction touching an item of one still running, as DynamoDB does (test/services/transaction-conflicts.ts);
 * with disjoint keys the only items they share are the counter shards and rate buckets. Each batch is four
 * transactions: pending, indexed, one failed, one removed. Prints, per shard count and writer count, the
 * median over the rounds of the conflicts per committed transaction, the batches given up and the
 * transactions a second (moto's, one at a time: not DynamoDB's), and checks the counters against the records.
 *
 *   npm run bench:counters -- [--writers 1,2,4] [--shards 1,16] [--batches 6] [--batch 8] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import { runCounterWriters } from '../test/services/counter-writers.ts';
import { startMoto } from '../test/services/emulators.ts';
import { ensureVenv } from '../test/services/venv.ts';
import { median, round } from './bench-support.ts';

const { values } = parseArgs({
  options: {
    writers: { type: 'string', default: '1,2,4' },
    shards: { type: 'string', default: '1,16' },
    batches: { type: 'string', default: '6' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const list = (value: string) => value.split(',').map(Number);

await ensureVenv((line) => console.log(line));
const moto = await startMoto();
let drifted = false;
try {
  console.log('shards  writers  conflicts/commit  gave up  transactions/s (moto)  counters = records');
  for (const counterShards of list(values.shards)) {
    for (const writers of list(values.writers)) {
      const runs = [];
      for (let round = 0; round < Number(values.rounds); round++) {
        runs.push(
          await runCounterWriters({
            awsEndpoint: moto.endpoint,
            writers,
            counterShards,
            batchesPerWriter: Number(values.batches),
            batchSize: Number(values.batch),
            sharedKeys: false,
          }),
        );
      }
      const exact = runs.every((run) => JSON.stringify(run.counters) === JSON.stringify(run.records));
      drifted ||= !exact;
      const conflicts = median(runs.map((run) => run.stats.conflicts / run.stats.committed));
      const gaveUp = median(runs.map((run) => run.reports.reduce((sum, r) => sum + (r?.gaveUp ?? 0), 0)));
      const rate = median(runs.map((run) => run.stats.committed / (run.ms / 1000)));
      console.log(
        [
          String(counterShards).padStart(6),
          String(writers).padStart(7),
          String(round(conflicts)).padStart(16),
          String(gaveUp).padStart(7),
          String(round(rate, 1)).padStart(22),
          exact ? 'yes' : `NO: ${runs.map((run) => JSON.stringify(run)).join(' ')}`,
        ].join('  '),
      );
    }
  }
} finally {
  await moto.stop();
}
if (drifted) process.exitCode = 1;
