import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TaskProtection } from './task-protection.ts';

// The ECS agent's endpoint has no emulator: a small HTTP server on 127.0.0.1 stands in for it, answering
// as the agent documents (200 with `protection`, or 200 with `failure`).
let server: Server;
let agentUri: string;
let requests: { method: string; url: string; body: unknown }[];
let answer: (body: { ProtectionEnabled: boolean }) => object;

beforeEach(async () => {
  requests = [];
  answer = (body) => ({ protection: { ProtectionEnabled: body.ProtectionEnabled, TaskArn: 'arn:task' } });
  server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      const body = JSON.parse(text);
      requests.push({ method: request.method ?? '', url: request.url ?? '', body });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(body)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  agentUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v3/task-id`;
});

afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('TaskProtection on a stand-in ECS agent endpoint', () => {
  it('protects the task once while it holds messages and releases it when idle', async () => {
    const protection = new TaskProtection(agentUri, { expiresInMinutes: 30 });

    await protection.set(true);
    await protection.set(true);
    await protection.set(false);
    await protection.set(false);

    expect(requests).toEqual([
      {
        method: 'PUT',
        url: '/v3/task-id/task-protection/v1/state',
        body: { ProtectionEnabled: true, ExpiresInMinutes: 30 },
      },
      { method: 'PUT', url: '/v3/task-id/task-protection/v1/state', body: { ProtectionEnabled: false } },
    ]);
  });

  it('renews the protection of a task that keeps holding messages before it expires', async () => {
    let now = 0;
    const protection = new TaskProtection(agentUri, { expiresInMinutes: 30, now: () => now });

    await protection.set(true);
    now += 9 * 60_000;
    await protection.set(true);
    now += 2 * 60_000;
    await protection.set(true);

    expect(requests.map((r) => r.body)).toEqual([
      { ProtectionEnabled: true, ExpiresInMinutes: 30 },
      { ProtectionEnabled: true, ExpiresInMinutes: 30 },
    ]);
  });

  it('reports a change ECS refused, and tries again on the next call', async () => {
    answer = () => ({ failure: { Reason: 'TASK_NOT_VALID', Arn: 'arn:task' } });
    const protection = new TaskProtection(agentUri, { expiresInMinutes: 30 });

    await expect(protection.set(true)).rejects.toThrow(/refused: 200 .*TASK_NOT_VALID/);
    expect(protection.protected).toBe(false);
    answer = (body) => ({ protection: body });
    await protection.set(true);

    expect(protection.protected).toBe(true);
    expect(requests).toHaveLength(2);
  });
});
