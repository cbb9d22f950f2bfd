/**
 * The ingest worker process: the GPU container's entry point (ECS), and a stand-alone worker for the
 * embedded data folder.
 *
 *   main.ts --mode cloud      SQS → S3 → model → Milvus + DynamoDB (environment: src/adapters/aws/config.ts)
 *   main.ts --mode embedded   the same loop on the local data folder (environment: src/config.ts)
 *   main.ts --self-test       embeds one generated image, prints the execution provider and the latency
 *
 * The session asks for CUDA first; with PIC_REQUIRE_GPU=1 (the GPU image sets it) a missing CUDA
 * provider stops the process instead of silently running on the CPU. SIGTERM (ECS scale-in, deploys)
 * stops receiving, lets the batches in hand finish or hands their messages back, then exits 0.
 */
import { performance } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { loadCloudConfig } from '../../src/adapters/aws/config.ts';
import { TaskProtection } from '../../src/adapters/aws/task-protection.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { OnnxEmbedder } from '../../src/embedder/onnx-embedder.ts';
import { encodeJpeg } from '../../src/imaging/decode.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { loadManifest } from '../../src/model/manifest.ts';
import { publishWorkerMetrics, verifyDriftPublisher } from '../../src/observability/metrics.ts';
import { createCloudSystem } from '../../src/wiring/cloud.ts';
import { createEmbeddedSystem, resolveModel } from '../../src/wiring/embedded.ts';

interface Options {
  mode: 'cloud' | 'embedded';
  selfTest?: boolean;
}

const program = new Command('worker')
  .description('pic-search ingest worker')
  .addOption(
    new Option('--mode <mode>', 'where the queue and the stores are')
      .choices(['cloud', 'embedded'])
      .default('cloud'),
  )
  .option('--self-test', 'embed one generated image, print the provider and the latency, exit')
  .parse();
const options = program.opts<Options>();
const requireGpu = ['1', 'true'].includes(process.env.PIC_REQUIRE_GPU ?? '');
const log = createLogger({ level: process.env.PIC_LOG_LEVEL ?? 'info', name: 'worker' });

try {
  if (options.selfTest) await selfTest(log);
  else await runWorker(options.mode, log);
} catch (error) {
  if (error instanceof ConfigError) console.error(error.message);
  else log.fatal({ err: error }, 'the worker stopped');
  process.exit(error instanceof ConfigError ? 2 : 1);
}

async function runWorker(mode: Options['mode'], log: Logger): Promise<void> {
  const system =
    mode === 'cloud'
      ? await createCloudWorker(log)
      : await createEmbeddedSystem(loadConfig(), { logger: log });
  // The one guarded start: the cloud system's ensure() refused a foreign index already; the embedded
  // one reports it, and a worker must not mix two models' vectors in one index.
  if ('indexMismatch' in system && system.indexMismatch) throw system.indexMismatch;
  const { info } = system.embedder;
  log.info(
    { mode, provider: info.provider, model: info.model, profile: info.profile, pretrained: info.pretrained },
    `worker started on the ${info.provider.toUpperCase()} execution provider`,
  );
  // In ECS the awslogs driver ships stdout to CloudWatch Logs, which extracts these EMF lines as metrics.
  const stopMetrics = mode === 'cloud' ? publishWorkerMetrics(system.worker.stats) : undefined;
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new messages; finishing or handing back the batches in hand');
    await system.close();
    stopMetrics?.();
    log.info({ ...system.worker.stats }, 'worker stopped');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  system.worker.start();
}

/**
 * The GPU container's system. In an ECS task (the agent sets ECS_AGENT_URI) the task is protected from
 * scale-in while the worker holds messages, for up to twice the queue's visibility at a time.
 */
function createCloudWorker(log: Logger) {
  const config = loadCloudConfig();
  const agentUri = process.env.ECS_AGENT_URI;
  const protection = agentUri
    ? new TaskProtection(agentUri, { expiresInMinutes: (2 * config.visibilitySeconds) / 60, logger: log })
    : undefined;
  return createCloudSystem(config, {
    logger: log,
    executionProviders: ['cuda'],
    embedderThread: true,
    // Verifications run here (the scheduled rule's, POST /verify's): their drift becomes a metric.
    onVerified: verifyDriftPublisher(),
    ...(protection ? { onHolding: (holding: boolean) => protection.set(holding) } : {}),
  });
}

/** One generated photo-like image (gradients + noise), embedded cold then warm; prints JSON. */
async function selfTest(log: Logger): Promise<void> {
  const loaded = process.env.PIC_MODEL_MANIFEST
    ? await loadManifest(process.env.PIC_MODEL_MANIFEST)
    : await resolveModel(loadConfig());
  const started = performance.now();
  const embedder = await OnnxEmbedder.create(loaded, {
    executionProviders: ['cuda'],
    requireGpu,
    logger: log,
  });
  const loadMs = performance.now() - started;
  const image = await testImage();
  const first = performance.now();
  await embedder.embedOne(image);
  const firstMs = performance.now() - first;
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await embedder.embedOne(image);
    runs.push(performance.now() - t);
  }
  runs.sort((a, b) => a - b);
  const { provider, model, dimension, pretrained } = embedder.info;
  await embedder.close();
  const round = (ms: number) => Math.round(ms * 10) / 10;
  console.log(
    JSON.stringify({
      ok: true,
      provider,
      model,
      pretrained,
      dimension,
      loadMs: round(loadMs),
      firstMs: round(firstMs),
      medianMs: round(runs[Math.floor(runs.length / 2)] as number),
    }),
  );
}

async function testImage(): Promise<Buffer> {
  const width = 640;
  const height = 480;
  const pixels = Buffer.alloc(width * height * 3);
  let seed = 42;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      const i = (y * width + x) * 3;
      pixels[i] = (x * 255) / width;
      pixels[i + 1] = (y * 255) / height;
      pixels[i + 2] = seed >>> 24;
    }
  }
  return encodeJpeg({ data: pixels, width, height, orientation: 1 });
}
