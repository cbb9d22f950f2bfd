/**
 * `npm start`: the whole system on one machine. Prepares the model (pretrained when fetched, otherwise the
 * seeded stand-in, generated if missing), opens the data folder, and serves the API, the worker and the web
 * page on one port. Ctrl-C or SIGTERM stops cleanly: no new requests, the worker finishes or releases its
 * batch, the databases close.
 */

import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createRouter } from '../src/http/router.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../src/http/types.ts';
import { createLogger } from '../src/logger.ts';
import { createEmbeddedSystem } from '../src/wiring/embedded.ts';
import { ensureWebBuilt, webDistDir } from '../web/ensure-built.ts';
import { DataDirLockedError, lockDataDir } from './data-lock.ts';
import { prepareInt8InBackground } from './prepare-int8.ts';
import { InsecureBindError, isLoopback, startLocalServer } from './server.ts';

/** Flags override the variables they name; a usage error is one line and exit code 2. */
const program = new Command('npm start --')
  .description('Serves the pic-search API, worker and web page on one port.')
  .option('--port <port>', 'port to listen on (PORT)')
  .option('--host <host>', 'address to listen on (HOST); beyond loopback PIC_API_TOKEN is required')
  .option('--data-dir <dir>', 'data folder (PIC_DATA_DIR), relative to where the command was run')
  .exitOverride()
  .configureOutput({
    outputError: (text, write) => write(`${text.split('\n')[0]} (npm start -- --help lists the options)\n`),
  });
try {
  program.parse();
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  process.exit(error.exitCode === 0 ? 0 : 2);
}
const flags = program.opts<{ port?: string; host?: string; dataDir?: string }>();

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig({
    ...process.env,
    ...(flags.port === undefined ? {} : { PORT: flags.port }),
    ...(flags.host === undefined ? {} : { HOST: flags.host }),
    // npm runs scripts from the repository root; INIT_CWD is where the user typed the command.
    ...(flags.dataDir === undefined
      ? {}
      : { PIC_DATA_DIR: resolve(process.env.INIT_CWD ?? process.cwd(), flags.dataDir) }),
  });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(2);
}
// Checked again where the server starts; here so the refusal comes before the model loads.
if (!isLoopback(config.host) && !config.apiToken) {
  console.error(
    `Refusing to listen on ${config.host} without PIC_API_TOKEN: anyone who can reach it could read and delete the library.`,
  );
  process.exit(2);
}
let lock: ReturnType<typeof lockDataDir>;
try {
  lock = lockDataDir(config.dataDir);
} catch (error) {
  if (!(error instanceof DataDirLockedError)) throw error;
  console.error(error.message);
  process.exit(1);
}
const log = createLogger({ level: config.logLevel, name: 'pic-search' });

const system = await createEmbeddedSystem(config, { logger: log });
const { model } = await system.operations.health();
const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, maxImageBytes: config.maxUploadBytes };
const router = createRouter(system.operations, {
  mode: 'embedded',
  limits,
  ingestFolder: (path, prefix) => system.ingestFolder(path, prefix, { roots: config.ingestRoots }),
  duplicates: system.duplicates,
});
const webRoot = await ensureWebBuilt().catch((error: unknown) => {
  log.warn({ err: error }, 'the web page could not be built; the API works, / says how to build the page');
  return webDistDir;
});
const server = await startLocalServer({
  router,
  limits,
  webRoot,
  port: config.port,
  host: config.host,
  apiToken: config.apiToken,
}).catch(async (error: NodeJS.ErrnoException) => {
  const hint =
    error.code === 'EADDRINUSE'
      ? `: port ${config.port} is in use; start with --port <another port>`
      : error instanceof InsecureBindError
        ? `: ${error.message}`
        : '';
  log.fatal({ err: error }, `cannot listen on ${config.host}:${config.port}${hint}`);
  await system.close();
  lock.release();
  process.exit(1);
});
// Logs its own outcome and never rejects; a large bucket's reconcile must not hold back the URL.
void system.startWorker();
const { modelChoice } = system;
if (config.int8Prepare && (modelChoice.int8Missing || modelChoice.int8Outdated)) {
  const fp32 = modelChoice.fallback ?? modelChoice.loaded;
  void prepareInt8InBackground(fp32, log, modelChoice.int8Missing ? 'missing' : 'outdated');
}

const seeded = !model.pretrained;
const banner = [
  `pic-search listening on ${server.url}`,
  `  web page   ${server.url}/   API ${server.url}/openapi.json`,
  `  model      ${model.model} (${model.pretrained ? 'pretrained' : 'SEEDED RANDOM WEIGHTS'}, profile ${model.profile}, ${model.dimension} dims)`,
  `  provider   ${model.provider}`,
  `  data       ${config.dataDir}`,
  `  ingest     folders under ${config.ingestRoots.join(', ')} (PIC_INGEST_ROOTS)`,
];
const warning = [
  '!!! WARNING: no pretrained model was found, so SEEDED RANDOM WEIGHTS stand in for VGG16. !!!',
  '!!! Everything works, but similarity only reflects low-level colour and texture, not content. !!!',
  '!!! Run `npm run model:fetch` (or set PIC_MODEL_MANIFEST), then restart and re-ingest.        !!!',
];
console.log([...(seeded ? warning : []), ...banner, ...(seeded ? warning : [])].join('\n'));
log.info(
  { url: server.url, model: model.model, pretrained: model.pretrained, provider: model.provider },
  seeded
    ? 'started with SEEDED RANDOM WEIGHTS (not pretrained): search results are not meaningful'
    : 'started',
);

let stoppingSince: number | undefined;
async function shutdown(signal: string): Promise<void> {
  if (stoppingSince !== undefined) {
    // Ctrl-C reaches both tsx and this process, and tsx relays it: one keypress can arrive twice.
    if (Date.now() - stoppingSince < 1000) return;
    log.warn(`${signal} again: exiting at once`);
    process.exit(1);
  }
  stoppingSince = Date.now();
  log.info(`${signal}: stopping (the worker finishes its batch; Ctrl-C again to force)`);
  try {
    await server.close();
    await system.close();
    lock.release();
    log.info('stopped cleanly');
    process.exit(0);
  } catch (error) {
    log.error({ err: error }, 'error while stopping');
    process.exit(1);
  }
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
