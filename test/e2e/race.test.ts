import { expect, it } from 'vitest';
import { runEmbeddedRace } from './embedded-race.ts';

// The randomized race of docs/consistency.md at a size npm test affords; `npm run race` runs it at full
// size. A failure names its seed: `npm run race -- --seed <seed>` repeats it.
it('leaves the index in agreement with the bucket after 80 random operations on 16 keys', async () => {
  const report = await runEmbeddedRace({ seed: 1305, operations: 80, keys: 16 });

  expect(report.divergences, `seed ${report.seed}`).toEqual([]);
  expect(report.valid + report.corrupt).toBeGreaterThan(0);
  expect(Object.keys(report.byKind).sort()).toEqual(
    ['delete', 'overwrite corrupt', 'overwrite valid', 'put', 'put corrupt', 'rename'].sort(),
  );
}, 180_000);
