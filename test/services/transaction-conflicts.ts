import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';

export interface TransactionStats {
  /** TransactWriteItems requests received. */
  received: number;
  /** Cancelled here: an item of theirs was in a transaction still running (TransactionConflict). */
  conflicts: number;
  /** Cancelled by moto: a condition failed (ConditionalCheckFailed). */
  conditionFailures: number;
  committed: number;
}

export interface ConflictingProxy {
  /** http://127.0.0.1:<port>: the DynamoDB endpoint the writers use instead of moto's. */
  endpoint: string;
  stats: TransactionStats;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const TRANSACT = 'DynamoDB_20120810.TransactWriteItems';
/** Headers that describe the connection, not the request: node sets its own. */
const HOP_BY_HOP = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive']);

interface TransactItem {
  [kind: string]: { TableName: string; Key?: { pk?: { S?: string } }; Item?: { pk?: { S?: string } } };
}

/**
 * An HTTP proxy to moto that holds DynamoDB's rule for transactions at once: a TransactWriteItems that
 * touches an item of a transaction still running is cancelled with `TransactionConflict`
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling).
 * moto has no such rule: it runs requests in threads without a lock, and a cancelled transaction puts back a
 * copy of the whole table, losing what other requests wrote meanwhile. So the proxy also hands moto one
 * request at a time, and a transaction counts as running from its arrival here to moto's answer (its wait
 * in that line included): a model of the conflict window, not DynamoDB's own timing.
 * Items are named by `pk`, the catalogue table's only key.
 */
export async function startConflictingProxy(target: string): Promise<ConflictingProxy> {
  const upstream = new URL(target);
  const stats: TransactionStats = { received: 0, conflicts: 0, conditionFailures: 0, committed: 0 };
  const running = new Set<string>();
  let line: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(send: () => Promise<T>): Promise<T> => {
    const turn = line.catch(() => undefined).then(send);
    line = turn;
    return turn;
  };

  const server = createServer((incoming, answer) => {
    handle(incoming, answer).catch((error: Error) => {
      if (!answer.headersSent) answer.writeHead(502).end(error.message);
    });
  });
  const handle = async (incoming: IncomingMessage, answer: ServerResponse) => {
    const body = Buffer.concat(await incoming.toArray());
    const forward = () => inTurn(() => relay(upstream, incoming, body));
    if (incoming.headers['x-amz-target'] !== TRANSACT) {
      const reply = await forward();
      answer.writeHead(reply.status, reply.headers).end(reply.body);
      return;
    }
    stats.received++;
    const items: string[] = (JSON.parse(body.toString()).TransactItems as TransactItem[]).map((item) => {
      const op = Object.values(item)[0];
      return `${op?.TableName}\u0000${op?.Key?.pk?.S ?? op?.Item?.pk?.S}`;
    });
    if (items.some((item) => running.has(item))) {
      stats.conflicts++;
      const reasons = items.map((item) =>
        running.has(item)
          ? { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' }
          : { Code: 'None' },
      );
      answer.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' }).end(
        JSON.stringify({
          __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
          CancellationReasons: reasons,
        }),
      );
      return;
    }
    for (const item of items) running.add(item);
    try {
      const reply = await forward();
      if (reply.status === 200) stats.committed++;
      else if (reply.body.toString().includes('ConditionalCheckFailed')) stats.conditionFailures++;
      answer.writeHead(reply.status, reply.headers).end(reply.body);
    } finally {
      for (const item of items) running.delete(item);
    }
  };
  server.listen(0, HOST);
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://${HOST}:${address.port}`,
    stats,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

/** Sends the request to moto as it came, and reads the whole answer. */
function relay(
  upstream: URL,
  incoming: IncomingMessage,
  body: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...withoutHopByHop(incoming.headers), 'content-length': body.length },
      },
      async (reply) => {
        try {
          resolve({
            status: reply.statusCode ?? 502,
            headers: withoutHopByHop(reply.headers),
            body: Buffer.concat(await reply.toArray()),
          });
        } catch (error) {
          reject(error);
        }
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

function withoutHopByHop(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}
