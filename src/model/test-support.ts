import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { PretrainedSource } from './fetch.ts';
import { sha256Of } from './model-files.ts';
import { encodeModel } from './onnx-proto.ts';
import { buildVgg16 } from './vgg16.ts';

/** Test factories for the model tooling: a small-headed classifier and real local servers. */

/** A Model Zoo–style seeded classifier with a tiny FC head, standing in for the 553 MB vgg16-7.onnx. */
export function smallClassifier(): Uint8Array {
  return encodeModel(
    buildVgg16({
      seed: 5,
      head: { kind: 'classifier', style: 'zoo', hidden: 8, classes: 4 },
      opset: 7,
      inputName: 'data',
      batch: 1,
    }),
  );
}

/** A PretrainedSource whose published checksum is that of `bytes`. */
export function publishedAs(bytes: Uint8Array, urls: string[]): PretrainedSource {
  return {
    name: 'vgg16-test-imagenet',
    description: 'the test classifier',
    fileName: 'vgg16-7.onnx',
    sha256: sha256Of(bytes),
    size: bytes.length,
    urls,
  };
}

export interface TestServer {
  url: string;
  /** Requests received so far. */
  requests: () => number;
  close: () => Promise<void>;
}

/** An HTTP server that answers every request with `body`. */
export async function serveBytes(body: Uint8Array): Promise<TestServer> {
  let requests = 0;
  const server = createHttpServer((_, response) => {
    requests++;
    response.writeHead(200, { 'content-length': body.length });
    response.end(body);
  });
  return listening(server, () => requests);
}

/** Accepts connections and never answers: what a firewall that swallows packets looks like. */
export async function silentServer(): Promise<TestServer> {
  return listening(
    createTcpServer(() => {}),
    () => 0,
  );
}

/** A URL on which nothing listens (the port was just freed). */
export async function refusedUrl(): Promise<string> {
  const server = await silentServer();
  await server.close();
  return server.url;
}

async function listening(
  server: Server | ReturnType<typeof createHttpServer>,
  requests: () => number,
): Promise<TestServer> {
  // Track sockets so close() can end connections a client left open (the silent server never answers).
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/vgg16-7.onnx`,
    requests,
    close: () =>
      new Promise((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
