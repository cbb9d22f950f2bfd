/**
 * Delete-all at scale on moto + Milvus Lite: seeds `--records` catalogue records and vectors through the
 * real adapters (keys with no object, one shared vector), then times the API's part of DELETE /images
 * (the 29 s Lambda must answer within it whatever the size), checks that count and search are empty at
 * once, and times the worker's background cleanup to the end.
 *
 *   npm run bench:delete-all -- [--records 100000] [--batch 100] [--parallel 8]
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadCloudConfig } from '../src/adapters/aws/config.ts';
import { runTaskSlice } from '../src/app/tasks.ts';
import { vectorIdOf } from '../src/domain/ids.ts';
import { createCloudSystem } from '../src/wiring/cloud.ts';
import { fixturePhotos, seededEmbedder } from '../test/cloud/harness.ts';
import { createCloudStack, emulatorClients } from '../test/cloud/support.ts';
import { startEmulators } from '../test/services/emulators.ts';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '100' },
    parallel: { type: 'string', default: '8' },
  },
});
const records = Number(values.records);
const batch = Number(values.batch);
const parallel = Number(values.parallel);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const emulators = await startEmulators((line) => console.log(line));
const clients = emulatorClients(emulators.awsEndpoint);
const embedder = await seededEmbedder();
try {
  const stack = await createCloudStack(clients, emulators);
  const system = await createCloudSystem(loadCloudConfig(stack.env), { embedder, waitMs: 1000 });
  const { catalogue, index } = system.stores;
  const { model, profile } = embedder.info;
  const photo = fixturePhotos(1)[0]?.path as string;
  const vector = (await embedder.embedOne(await readFile(photo))).vector;

  const seeding = performance.now();
  const batches = Array.from({ length: Math.ceil(records / batch) }, (_, b) =>
    Array.from({ length: Math.min(batch, records - b * batch) }, (_, i) => `images/bulk/${b}/${i}.jpg`),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let b = next++; b < batches.length; b = next++) {
        const keys = batches[b] as string[];
        await index.upsert(keys.map((key) => ({ id: vectorIdOf(key), key, vector })));
        await catalogue.markIndexed(
          keys.map((key) => ({ key, id: vectorIdOf(key), etag: 'e', model, profile })),
        );
        if (b % 50 === 0) console.log(`seeded ${Math.min(records, (b + 1) * batch)} of ${records}`);
      }
    }),
  );
  console.log(`seeded ${records} records and vectors in ${seconds(performance.now() - seeding)}`);

  const started = performance.now();
  const { task } = await system.operations.deleteAll({ deleteObjects: false });
  const apiMs = performance.now() - started;
  const [count, hits] = await Promise.all([
    system.operations.count(),
    system.operations.searchByImage(await readFile(photo), { topK: 5 }),
  ]);
  console.log(
    `API part of delete-all: ${seconds(apiMs)}; count ${count}, search hits ${hits.results.length}`,
  );

  const cleaning = performance.now();
  const deps = {
    ...system.stores,
    idOf: vectorIdOf,
    imagePrefix: stack.env.IMAGE_PREFIX as string,
    model: embedder.info,
  };
  let slices = 0;
  while ((await system.stores.tasks.get(task.id))?.state === 'running') {
    await runTaskSlice(deps, task.id);
    slices++;
    const progress = (await system.stores.tasks.get(task.id))?.progress;
    console.log(`slice ${slices}: ${progress?.recordsRemoved} of ${records} records removed`);
  }
  const cleanMs = performance.now() - cleaning;
  const left = await catalogue.progress(0);
  console.log(
    `cleanup: ${seconds(cleanMs)} in ${slices} slices (${Math.round(records / (cleanMs / 1000))} records/s); records left ${left.total}`,
  );
  await system.close();
} finally {
  await embedder.close();
  clients.destroy();
  await emulators.stop();
}
