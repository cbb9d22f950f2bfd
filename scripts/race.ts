/**
 * `npm run race [-- --seed N --operations N --keys N]`: the randomized race of docs/consistency.md at full
 * size against the embedded service; prints the figures and exits 1 when the index diverged from the bucket.
 */
import { Command } from 'commander';
import { runEmbeddedRace } from '../test/e2e/embedded-race.ts';

const options = new Command()
  .option('--seed <n>', 'random seed', (v) => Number.parseInt(v, 10), 20261205)
  .option('--operations <n>', 'random operations', (v) => Number.parseInt(v, 10), 400)
  .option('--keys <n>', 'keys they touch', (v) => Number.parseInt(v, 10), 40)
  .parse()
  .opts<{ seed: number; operations: number; keys: number }>();

const started = Date.now();
const { journal: _journal, ...report } = await runEmbeddedRace(options);
console.log(JSON.stringify({ ...report, seconds: Math.round((Date.now() - started) / 1000) }, null, 2));
process.exit(report.divergences.length === 0 ? 0 : 1);
