import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRouter } from '../src/http/router.ts';
import { DEFAULT_HTTP_LIMITS } from '../src/http/types.ts';
import { InsecureBindError, type LocalServer, startLocalServer } from './server.ts';

// No route is called here: these cases end before a request reaches the router.
const router = createRouter({} as never, { mode: 'embedded' });
const TIMEOUTS = { headersMs: 300, requestMs: 600, idleMs: 5_000, keepAliveMs: 1_000 };
const OPTIONS = { router, limits: DEFAULT_HTTP_LIMITS, webRoot: '/nonexistent', port: 0, host: '127.0.0.1' };

let server: LocalServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Sends `text` and never more; resolves what the server answered and how long until it closed. */
function stall(port: number, text: string): Promise<{ answer: string; ms: number }> {
  return new Promise((done, fail) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    socket.on('close', () => done({ answer, ms: Date.now() - started }));
    socket.on('error', fail);
    socket.setTimeout(10_000, () => fail(new Error('the server kept a stalled connection open')));
  });
}

describe('the local server', () => {
  it('closes a connection whose headers never finish (slowloris) with 408', async () => {
    server = await startLocalServer({ ...OPTIONS, timeouts: TIMEOUTS });
    const { answer, ms } = await stall(
      server.port,
      'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeLessThan(3_000);
  });

  it('closes a connection whose body stops arriving', async () => {
    server = await startLocalServer({ ...OPTIONS, timeouts: TIMEOUTS });
    const { ms } = await stall(
      server.port,
      'POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pa',
    );
    expect(ms).toBeLessThan(3_000);
  });

  it('answers an oversized body at once and reads the rest, so a client still sending gets no reset', async () => {
    server = await startLocalServer({ ...OPTIONS, limits: { ...DEFAULT_HTTP_LIMITS, maxImageBytes: 1000 } });
    const port = server.port;
    const sleep = (ms: number) => new Promise((resume) => setTimeout(resume, ms));
    const socket = connect(port, '127.0.0.1');
    const events: string[] = [];
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    socket.on('error', (error) => events.push(`error ${error.message}`));
    socket.on('close', () => events.push('closed'));
    socket.write(
      `POST /search HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: image/jpeg\r\nContent-Length: 6000\r\n\r\n`,
    );
    socket.write(Buffer.alloc(2000, 7));
    for (let waited = 0; !answer.includes('payload_too_large') && waited < 5000; waited += 20)
      await sleep(20);
    // The client was not listening: it goes on sending the body it announced.
    for (let part = 0; part < 4; part++) {
      await sleep(100);
      socket.write(Buffer.alloc(1000, 7));
    }
    await sleep(300);

    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(events).toEqual([]);
    socket.destroy();
  });

  it('refuses to listen beyond loopback without a token', async () => {
    await expect(startLocalServer({ ...OPTIONS, host: '0.0.0.0' })).rejects.toThrow(InsecureBindError);
  });
});
