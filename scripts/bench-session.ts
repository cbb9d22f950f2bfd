/**
 * One ingest session's pure inference, in a process of its own: onnxruntime-node runs a session on the
 * calling JS thread, so sessions sharing one thread would take turns, where the service gives each its own
 * thread. Loads the model, runs one warm-up batch, prints `ready`, waits for a line on stdin, runs `runs`
 * batches and prints the milliseconds they took. Started by bench.ts (pureInferenceAsIngest).
 *
 *   tsx scripts/bench-session.ts <manifest> <batch> <runs> <intra-op threads>
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { OnnxEmbedder } from '../src/embedder/onnx-embedder.ts';
import { loadManifest } from '../src/model/manifest.ts';
import { syntheticInput } from './bench-support.ts';

const [manifestPath, batch, runs, threads] = process.argv.slice(2);
if (!manifestPath) throw new Error('usage: bench-session.ts <manifest> <batch> <runs> <intra-op threads>');
const loaded = await loadManifest(manifestPath);
const embedder = await OnnxEmbedder.create(loaded, { intraOpNumThreads: Number(threads) });
const size = loaded.manifest.input.size;
const tensor = syntheticInput(size, Number(batch));
await embedder.infer(tensor, Number(batch));
process.stdout.write('ready\n');
await once(process.stdin, 'data');
const started = performance.now();
for (let r = 0; r < Number(runs); r++) await embedder.infer(tensor, Number(batch));
process.stdout.write(`${performance.now() - started}\n`);
await embedder.close();
process.stdin.destroy();
