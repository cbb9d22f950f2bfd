/**
 * Worker-thread side of ThreadedEmbedder: onnxruntime-node runs `session.run` on the calling JS thread,
 * so the ingest embedder lives here, keeping the HTTP server's event loop free while a batch is embedded.
 */
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ImageError } from '../domain/errors.ts';
import { createLogger } from '../logger.ts';
import { OnnxEmbedder } from './onnx-embedder.ts';
import type { ThreadReply, ThreadRequest, ThreadStart } from './threaded-embedder.ts';

const start = workerData as ThreadStart;
const port = parentPort;
if (!port) throw new Error('embedder-thread.ts runs as a worker thread only');

// Linux applies setpriority(PRIO_PROCESS, 0) to the calling thread alone; threads it starts inherit it.
const nicer = start.options.niceIncrement ?? 0;
if (nicer > 0 && process.platform === 'linux') setPriority(Math.min(19, getPriority() + nicer));

const logger = start.log ? createLogger(start.log) : undefined;
const embedder = await OnnxEmbedder.create(start.loaded, { ...start.options, ...(logger ? { logger } : {}) });
port.postMessage({ type: 'ready', info: embedder.info } satisfies ThreadReply);

port.on('message', async (request: ThreadRequest) => {
  try {
    if (request.op === 'embed') {
      const outcomes = await embedder.embed(request.images, request.options);
      // Vectors are moved; thumbnails (libvips' own memory, a few KB) are copied.
      const buffers = outcomes.flatMap((outcome) =>
        outcome.ok ? [outcome.vector.buffer as ArrayBuffer] : [],
      );
      port.postMessage({ type: 'result', id: request.id, value: outcomes } satisfies ThreadReply, buffers);
    } else if (request.op === 'embedOne') {
      const value = await embedder.embedOne(request.image);
      port.postMessage({ type: 'result', id: request.id, value } satisfies ThreadReply, [
        value.vector.buffer as ArrayBuffer,
      ]);
    } else if (request.op === 'embedOrientations') {
      const value = await embedder.embedOrientations(request.image);
      port.postMessage(
        { type: 'result', id: request.id, value } satisfies ThreadReply,
        value.vectors.map((vector) => vector.buffer as ArrayBuffer),
      );
    } else if (request.op === 'crash') {
      // ThreadedEmbedder.crashSessionForTest: an error nothing catches ends the thread as a real fault would.
      setImmediate(() => {
        throw new Error('simulated embedder thread crash');
      });
    } else {
      await embedder.close();
      port.postMessage({ type: 'result', id: request.id, value: undefined } satisfies ThreadReply);
      port.close();
    }
  } catch (error) {
    const { message } = error as Error;
    const kind = error instanceof ImageError ? error.kind : undefined;
    port.postMessage({
      type: 'error',
      id: request.id,
      message,
      ...(kind ? { kind } : {}),
    } satisfies ThreadReply);
  }
});
