/**
 * Cloud-mode benchmark on the emulators (moto + Milvus Lite, started here from the test venv):
 *   1. worker throughput over the real S3 → SQS → worker → Milvus + DynamoDB path, with the CPU provider
 *      and the model on a worker thread as in the container, draining a queued backlog, as a ratio to
 *      pure inference (embedder.embed on in-memory bytes) measured in the same run;
 *   2. the search handler's latency split (decode, embed, Milvus search, DynamoDB lookup, URL signing)
 *      p50/p99 with 10 000 vectors in the collection.
 * Prints a table and writes bench-results/cloud.json.
 *
 *   npm run bench:cloud                  # ≈ 4–6 min on 2 cores
 *   npm run bench:cloud -- --quick       # fewer images and queries
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { loadCloudConfig } from '../src/adapters/aws/config.ts';
import type { SearchResponse } from '../src/app/operations.ts';
import { Worker } from '../src/app/worker.ts';
import { makeSearchHandler } from '../src/http/handlers/search.ts';
import { CLOUD_HTTP_LIMITS } from '../src/http/types.ts';
import { createCloudSystem } from '../src/wiring/cloud.ts';
import { apiEvent, fixturePhotos, seededEmbedder, transformedCopy, waitFor } from '../test/cloud/harness.ts';
import { createCloudStack, emulatorClients } from '../test/cloud/support.ts';
import { startEmulators } from '../test/services/emulators.ts';
import { cpuMsOfProcess, cpuMsOfThisProcess, median, percentile, unitVector } from './bench-support.ts';

const repoRoot = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    /** Images per round: the fixture photos cycled under distinct keys, so a round is long enough for a steady rate. */
    images: { type: 'string' },
    vectors: { type: 'string', default: '10000' },
    out: { type: 'string', default: resolve(repoRoot, 'bench-results/cloud.json') },
  },
});
const quick = args.quick === true;
const rounds = quick ? 1 : 5;
const queries = quick ? 20 : 60;
const totalVectors = Number(args.vectors);
const imagesPerRound = Number(args.images ?? (quick ? 25 : 100));

const r1 = (x: number) => Math.round(x * 10) / 10;

const emulators = await startEmulators((line) => console.log(line));
const clients = emulatorClients(emulators.awsEndpoint);
const embedder = await seededEmbedder();
try {
  const stack = await createCloudStack(clients, emulators);
  const config = loadCloudConfig({ ...stack.env, PIC_BATCH_SIZE: '8' });
  // The worker as the container runs it (the model on a worker thread); search as Lambda runs it.
  const system = await createCloudSystem(config, { embedderThread: true, waitMs: 1000 });
  const lambda = await createCloudSystem(config, { embedder, ensureIndex: false });
  const fixtures = fixturePhotos(imagesPerRound);
  const photos = Array.from({ length: imagesPerRound }, (_, i) => {
    const photo = fixtures[i % fixtures.length] as (typeof fixtures)[number];
    return { ...photo, key: `copy${Math.floor(i / fixtures.length)}/${photo.name}` };
  });
  const bytes = await Promise.all(photos.map((photo) => readFile(photo.path)));

  // Throughput, in rounds that alternate the two measurements so a change in machine load hits both
  // alike: (1) pure inference, the worker's embedder alone on in-memory bytes in batches of 8 as the
  // worker sends them; (2) the worker draining a backlog on the full cloud path: the round's objects are
  // put into the bucket first (S3 notifies SQS; uploads are the users' work, not the worker's), then a
  // fresh worker is started and timed until it has indexed them all into Milvus and DynamoDB. Its own
  // counters tell when it is done, so no polling loads the emulators while it runs.
  //
  // CPU time is read alongside, per image: this process (all its threads, the model's included) during
  // each measurement, and the emulators during the worker's. On AWS the services run elsewhere, so
  // "pure ÷ worker process CPU" is the share of the worker's own CPU that goes to inference.
  await system.embedder.embed(bytes.slice(0, 8));
  const perRound: {
    inference: number;
    worker: number;
    ratio: number;
    cpuMsPerImage: { inference: number; worker: number; moto?: number; milvusLite?: number };
  }[] = [];
  const emulatorCpu = () => ({
    moto: cpuMsOfProcess(emulators.pids.moto),
    milvusLite: cpuMsOfProcess(emulators.pids.milvusLite),
  });
  const perImage = (ms: number) => r1(ms / photos.length);
  const emulatorPerImage = (before: number | undefined, after: number | undefined) =>
    before === undefined || after === undefined ? undefined : perImage(after - before);
  let failed = 0;
  for (let round = 0; round < rounds; round++) {
    let cpuBefore = cpuMsOfThisProcess();
    let started = performance.now();
    for (let i = 0; i < bytes.length; i += 8) await system.embedder.embed(bytes.slice(i, i + 8));
    const inference = bytes.length / ((performance.now() - started) / 1000);
    const inferenceCpu = perImage(cpuMsOfThisProcess() - cpuBefore);
    for (const [i, photo] of photos.entries()) {
      await clients.s3.send(
        new PutObjectCommand({ Bucket: stack.bucket, Key: `images/r${round}/${photo.key}`, Body: bytes[i] }),
      );
    }
    await waitFor(
      () => system.stores.queue.depth(),
      (depth) => depth.visible >= photos.length,
    );
    const worker = new Worker(system.stores, system.embedder, {
      batchSize: config.batchSize,
      maxReceiveCount: config.maxReceiveCount,
      visibilitySeconds: config.visibilitySeconds,
      waitMs: 1000,
    });
    const emulatorsBefore = emulatorCpu();
    cpuBefore = cpuMsOfThisProcess();
    started = performance.now();
    worker.start();
    const done = () => worker.stats.indexed + worker.stats.failed >= photos.length;
    while (!done()) await new Promise((resume) => setTimeout(resume, 20));
    const seconds = (performance.now() - started) / 1000;
    const workerCpu = perImage(cpuMsOfThisProcess() - cpuBefore);
    const emulatorsAfter = emulatorCpu();
    await worker.stop();
    failed += worker.stats.failed;
    const workerPerSecond = photos.length / seconds;
    perRound.push({
      inference: r1(inference),
      worker: r1(workerPerSecond),
      ratio: Math.round((workerPerSecond / inference) * 100) / 100,
      cpuMsPerImage: {
        inference: inferenceCpu,
        worker: workerCpu,
        moto: emulatorPerImage(emulatorsBefore.moto, emulatorsAfter.moto),
        milvusLite: emulatorPerImage(emulatorsBefore.milvusLite, emulatorsAfter.milvusLite),
      },
    });
  }
  const indexed = await system.operations.progress(0);
  const expected = rounds * photos.length;
  const inferencePerSecond = median(perRound.map((r) => r.inference));
  const workerPerSecond = median(perRound.map((r) => r.worker));
  const ratio = median(perRound.map((r) => r.ratio));
  // An emulator's CPU is unknown where there is no /proc.
  const emulatorMedian = (pick: (cpu: (typeof perRound)[number]['cpuMsPerImage']) => number | undefined) => {
    const values = perRound.flatMap((r) => pick(r.cpuMsPerImage) ?? []);
    return values.length > 0 ? median(values) : undefined;
  };
  const cpuMsPerImage = {
    inference: median(perRound.map((r) => r.cpuMsPerImage.inference)),
    worker: median(perRound.map((r) => r.cpuMsPerImage.worker)),
    moto: emulatorMedian((cpu) => cpu.moto),
    milvusLite: emulatorMedian((cpu) => cpu.milvusLite),
  };
  const cpuShare = Math.round((cpuMsPerImage.inference / cpuMsPerImage.worker) * 100) / 100;

  // Search latency with `totalVectors` in Milvus: random unit vectors fill the collection up (the
  // photos' own vectors score far above them, so the top hits and their DynamoDB lookups are real).
  const filler = totalVectors - indexed.indexed;
  for (let i = 0; i < filler; i += 500) {
    const items = Array.from({ length: Math.min(500, filler - i) }, (_, j) => ({
      id: String(1_000_000 + i + j),
      key: `images/filler/${i + j}.jpg`,
      vector: unitVector(i + j, 12345, embedder.info.dimension),
    }));
    await system.stores.index.upsert(items);
  }
  const vectorCount = await system.stores.index.count();
  const search = makeSearchHandler(lambda.operations, CLOUD_HTTP_LIMITS);
  const queryImages = await Promise.all(fixtures.slice(0, 10).map((photo) => transformedCopy(photo.path)));
  const split = { decodeMs: [], embedMs: [], searchMs: [], lookupMs: [], signMs: [], totalMs: [] } as Record<
    string,
    number[]
  >;
  let top1 = 0;
  for (let q = -3; q < queries; q++) {
    const index = (q + queries) % queryImages.length;
    const response = await search(
      apiEvent({
        method: 'POST',
        path: '/search',
        query: { topK: '10' },
        headers: { 'content-type': 'image/jpeg' },
        body: queryImages[index] as Buffer,
      }),
    );
    if (q < 0) continue; // warm-up
    const body = JSON.parse(response.body as string) as SearchResponse;
    const t = body.timings;
    if (body.results[0]?.key.endsWith(`/${fixtures[index]?.name}`)) top1++;
    split.decodeMs?.push(t.decodeMs);
    split.embedMs?.push(t.embedMs);
    split.searchMs?.push(t.searchMs);
    split.lookupMs?.push(t.lookupMs);
    split.signMs?.push(Math.max(0, t.totalMs - t.decodeMs - t.embedMs - t.searchMs - t.lookupMs));
    split.totalMs?.push(t.totalMs);
  }
  await Promise.all([system.close(), lambda.close()]);

  const latency = Object.fromEntries(
    Object.entries(split).map(([name, values]) => [
      name,
      { p50: r1(percentile(values, 50)), p99: r1(percentile(values, 99)) },
    ]),
  );
  const result = {
    when: new Date().toISOString(),
    machine: {
      cpus: cpus()[0]?.model,
      cores: availableParallelism(),
      loadAverage1m: r1(loadavg()[0] ?? 0),
      node: process.version,
    },
    emulators: { aws: 'moto 5.2.5 (server mode)', milvus: 'milvus-lite 3.2.2 (gRPC server), HNSW + COSINE' },
    model: {
      name: embedder.info.model,
      provider: embedder.info.provider,
      batchSize: config.batchSize,
      worker: 'model on a worker thread (ThreadedEmbedder), as in the container',
    },
    throughput: {
      images: expected,
      indexed: indexed.indexed,
      failed,
      inferenceImagesPerSecond: r1(inferencePerSecond),
      workerImagesPerSecond: r1(workerPerSecond),
      ratio,
      target: 0.85,
      cpuMsPerImage,
      inferenceShareOfWorkerCpu: cpuShare,
      rounds: perRound,
    },
    search: { vectors: vectorCount, queries, topK: 10, top1Matches: top1, latencyMs: latency },
  };
  await mkdir(dirname(args.out as string), { recursive: true });
  await writeFile(args.out as string, `${JSON.stringify(result, null, 2)}\n`);

  const rows: [string, string][] = [
    [
      'pure inference (embed, batch 8)',
      `${result.throughput.inferenceImagesPerSecond} images/s (median of ${rounds} rounds)`,
    ],
    [
      'worker on S3 → SQS → Milvus + DynamoDB',
      `${result.throughput.workerImagesPerSecond} images/s (${expected} images)`,
    ],
    [
      'ratio worker / inference',
      `${ratio} (target ≥ 0.85; rounds: ${perRound.map((r) => r.ratio).join(', ')})`,
    ],
    [
      'CPU ms per image (median)',
      `pure inference ${cpuMsPerImage.inference} · worker process ${cpuMsPerImage.worker} · moto ${cpuMsPerImage.moto ?? 'n/a'} · Milvus Lite ${cpuMsPerImage.milvusLite ?? 'n/a'}`,
    ],
    [
      'inference share of the worker process CPU',
      `${cpuShare} (what the worker keeps when the services run elsewhere)`,
    ],
    ...Object.entries(latency).map(
      ([name, { p50, p99 }]) =>
        [`search ${name} at ${vectorCount} vectors`, `p50 ${p50} ms, p99 ${p99} ms`] as [string, string],
    ),
    ['search top-1 = original', `${top1}/${queries}`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n'));
  console.log(`Wrote ${args.out}`);
} finally {
  await embedder.close();
  clients.destroy();
  await emulators.stop();
}
