import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface CuttableProxy {
  /** http://127.0.0.1:<port>: what clients use instead of the server's own endpoint. */
  endpoint: string;
  /** Closes every connection and stops listening: clients get ECONNREFUSED, as from a stopped server. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

/**
 * A TCP forwarder to a local server, to stop a server for its clients without losing its state (moto
 * keeps everything in memory, so stopping moto itself would also lose the buckets, queues and tables).
 */
export async function startProxy(targetPort: string | number): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  const serve = (): Server =>
    createServer((client) => {
      const upstream = connect(Number(targetPort), HOST);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
  let server = serve();
  server.listen(0, HOST);
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const { port } = address;
  const stop = async () => {
    for (const socket of sockets) socket.destroy();
    if (!server.listening) return;
    await new Promise((done) => server.close(done));
  };
  return {
    endpoint: `http://${HOST}:${port}`,
    cut: stop,
    async restore() {
      server = serve();
      server.listen(port, HOST);
      await once(server, 'listening');
    },
    close: stop,
  };
}
