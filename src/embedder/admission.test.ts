import { describe, expect, it } from 'vitest';
import { TooBusyError } from '../domain/errors.ts';
import type { Embedder, EmbedTimings } from '../domain/ports.ts';
import { AdmittingEmbedder } from './admission.ts';

/** An embedder whose calls finish when the test says, recording how many run at once. */
function heldEmbedder() {
  const releases: (() => void)[] = [];
  let running = 0;
  let most = 0;
  const embedder: Embedder = {
    info: { model: 'held', profile: 'quality', dimension: 1, provider: 'cpu', pretrained: false },
    embed: async () => [],
    async embedOne() {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((release) => releases.push(release));
      running--;
      return { vector: new Float32Array(1), timings: { decodeMs: 0, embedMs: 0 } satisfies EmbedTimings };
    },
    embedOrientations: async () => ({ vectors: [], timings: { decodeMs: 0, embedMs: 0 } }),
    close: async () => undefined,
  };
  return { embedder, releases, most: () => most };
}

const tick = () => new Promise((resume) => setImmediate(resume));

describe('AdmittingEmbedder', () => {
  it('runs `running` at once, queues `queued`, and refuses the next with TooBusyError at once', async () => {
    const held = heldEmbedder();
    const gate = new AdmittingEmbedder(held.embedder, { running: 2, queued: 3, retryAfterSeconds: 2 });
    const admitted = Array.from({ length: 5 }, () => gate.embedOne(new Uint8Array(1)));
    const refused = gate.embedOne(new Uint8Array(1));

    await expect(refused).rejects.toThrow(TooBusyError);
    await expect(refused).rejects.toMatchObject({ status: 429, retryAfterSeconds: 2 });
    for (let done = 0; done < 5; done++) {
      await tick();
      held.releases.shift()?.();
    }
    await Promise.all(admitted);
    expect(held.most()).toBe(2);
  });

  it('admits again once the queue has room', async () => {
    const held = heldEmbedder();
    const gate = new AdmittingEmbedder(held.embedder, { running: 1, queued: 0 });
    const first = gate.embedOne(new Uint8Array(1));
    await expect(gate.embedOne(new Uint8Array(1))).rejects.toThrow(TooBusyError);
    await tick();
    held.releases.shift()?.();
    await first;
    const second = gate.embedOne(new Uint8Array(1));
    await tick();
    held.releases.shift()?.();
    await expect(second).resolves.toMatchObject({ vector: expect.any(Float32Array) });
  });
});
