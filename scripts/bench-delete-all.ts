/**
 * Delete-all at scale on moto + Milvus Lite, as the cloud runs it: a few real photos uploaded and indexed
 * by the worker, plus `--records` catalogue records and vectors seeded in bulk (keys with no object, one
 * shared vector; seeding is not what is measured). Then DELETE /images through the API function's own entry, timed against
 * its 29 s timeout; count and search must be empty at once; the worker cleans up in the background (timed
 * to the end); a re-ingest must index every photo again.
 *
 *   npm run bench:delete-all -- [--records 100000] [--photos 20] [--batch 2000] [--rest 0]
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { MilvusClient } from '@zilliz/milvus2-sdk-node';
import type { MilvusVectorIndex } from '../src/adapters/milvus/milvus-vector-index.ts';
import { vectorIdOf } from '../src/domain/ids.ts';
import { apiEvent, fixturePhotos, invokedAsLambda, startCloud, waitFor } from '../test/cloud/harness.ts';
import { emulatorClients } from '../test/cloud/support.ts';
import { startEmulators } from '../test/services/emulators.ts';

const API_TIMEOUT_MS = 29_000;
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    photos: { type: 'string', default: '20' },
    batch: { type: 'string', default: '2000' },
    rest: { type: 'string', default: '0' },
  },
});
const records = Number(values.records);
const batch = Number(values.batch);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const savedEnv = { ...process.env };

const emulators = await startEmulators((line) => console.log(line));
const clients = emulatorClients(emulators.awsEndpoint);
const { stack, embedder, system } = await startCloud(clients, emulators);
// Loaded now, with the stack's variables, as a Lambda container loads it before its first request.
const deleteAll = invokedAsLambda(
  (await import('../functions/api/delete-all.ts')).handler,
  'delete-all',
  'bench',
);
try {
  const { catalogue, index, tasks } = system.stores;
  const { model, profile } = embedder.info;
  const photos = fixturePhotos(Number(values.photos));
  for (const photo of photos) {
    const Body = await readFile(photo.path);
    await clients.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: `images/${photo.name}`, Body }));
  }
  await waitFor(
    () => system.operations.count(),
    (n) => n === photos.length,
    300_000,
  );
  console.log(`${photos.length} photos uploaded and indexed by the worker`);
  const query = await readFile(photos[0]?.path as string);
  const vector = (await index.get(vectorIdOf(`images/${photos[0]?.name}`))) as Float32Array;

  // Seeding, not what is measured: records written as the catalogue writes them but with BatchWriteItem
  // and one counters ADD a batch (seedIndexed: a transaction per batch would take hours on moto at 100k),
  // vectors upserted straight into Milvus Lite in large batches.
  const seeding = performance.now();
  const now = new Date();
  for (let start = 0; start < records; start += batch) {
    const entries = Array.from({ length: Math.min(batch, records - start) }, (_, i) => {
      const key = `images/bulk/${start + i}.jpg`;
      return { key, id: vectorIdOf(key) };
    });
    await Promise.all([
      index.upsert(entries.map(({ key, id }) => ({ id, key, vector }))),
      catalogue.seedIndexed(
        entries.map(({ key, id }) => ({
          key,
          id,
          etag: 'e',
          model,
          profile,
          updatedAt: now,
          indexedAt: now,
        })),
      ),
    ]);
    if ((start / batch) % 10 === 0) console.log(`seeded ${start + entries.length} of ${records}`);
  }
  const total = records + photos.length;
  console.log(
    `seeded (BatchWriteItem + bulk upserts, not measured) ${records} records and vectors in ${seconds(performance.now() - seeding)}`,
  );
  // Milvus Lite keeps up to 128 MB of recent writes in memory and writes them out when a collection is
  // dropped: 100k rows seeded a moment ago made the drop take ~48 s under load; flushed, it takes 0.2 s.
  // Flushed here, timed, before the delete-all (a flush is what Milvus Lite does itself when that memory fills).
  const flushing = performance.now();
  const milvus = new MilvusClient({ address: emulators.milvusAddress, timeout: 600_000, logLevel: 'warn' });
  const { index: live } = await index.live();
  await milvus.flushSync({ collection_names: [(live as MilvusVectorIndex).collection] });
  await milvus.closeConnection();
  console.log(`Milvus Lite flushed the seeded vectors in ${seconds(performance.now() - flushing)}`);
  // --rest: seconds to wait before the delete-all, so Milvus Lite finishes its background index builds
  // from the seeding (a library filled over time has none pending).
  await new Promise((resume) => setTimeout(resume, Number(values.rest) * 1000));
  console.log(
    `library before (after ${values.rest} s at rest): count ${await system.operations.count()} (expected ${total})`,
  );

  // A client that gets no 202 tries again, as the page does; each attempt is reported with its answer.
  let response: Awaited<ReturnType<typeof deleteAll>> | undefined;
  for (let attempt = 1; attempt <= 2 && response?.statusCode !== 202; attempt++) {
    const started = performance.now();
    response = await deleteAll(apiEvent({ method: 'DELETE', path: '/images', query: { confirm: 'true' } }));
    const apiMs = performance.now() - started;
    const [count, hits] = await Promise.all([
      system.operations.count(),
      system.operations.searchByImage(query, { topK: 5 }),
    ]);
    console.log(
      `API function (DELETE /images), attempt ${attempt}: ${response.statusCode} in ${seconds(apiMs)} ` +
        `(timeout ${seconds(API_TIMEOUT_MS)}); right after: count ${count}, search hits ${hits.results.length}` +
        (response.statusCode === 202 ? '' : `; answer ${response.body}`),
    );
  }
  if (response?.statusCode !== 202) throw new Error('delete-all was not accepted');
  const { task } = JSON.parse(response.body as string) as { task: { id: string } };

  const cleaning = performance.now();
  let reported = cleaning;
  const done = await waitFor(
    async () => {
      const now = await tasks.get(task.id);
      if (performance.now() - reported > 60_000) {
        reported = performance.now();
        console.log(`${seconds(reported - cleaning)}: ${now?.progress.recordsRemoved} records removed`);
      }
      return now;
    },
    (now) => now?.state !== 'running',
    4 * 3600_000,
  );
  const cleanMs = performance.now() - cleaning;
  const left = await catalogue.progress(0);
  console.log(
    `cleanup on the worker: ${done?.state} after ${seconds(cleanMs)}, ${done?.progress.recordsRemoved} records removed ` +
      `(${Math.round(total / (cleanMs / 1000))} records/s); records left ${left.total}`,
  );

  const reingest = performance.now();
  const report = await system.operations.backfill('');
  const indexed = await waitFor(
    () => system.operations.count(),
    (n) => n === photos.length,
    300_000,
  );
  const first = (await system.operations.searchByImage(query, { topK: 1 })).results[0]?.key;
  console.log(
    `re-ingest: queued ${report.queued} of ${photos.length} photos, ${indexed} indexed in ${seconds(performance.now() - reingest)}; ` +
      `search finds ${first}`,
  );
} finally {
  process.env = savedEnv;
  await system.close();
  await embedder.close();
  clients.destroy();
  await emulators.stop();
}
