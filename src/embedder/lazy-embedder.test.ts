import { describe, expect, it } from 'vitest';
import type { Embedder, EmbedderInfo } from '../domain/ports.ts';
import { LazyEmbedder } from './lazy-embedder.ts';

const info: EmbedderInfo = {
  model: 'm',
  profile: 'quality',
  dimension: 2,
  provider: 'cpu',
  pretrained: false,
};

/** A stand-in for the ONNX embedder that counts what it is asked to do. */
function countingEmbedder(actual: EmbedderInfo = info) {
  const calls = { embed: 0, close: 0 };
  const embedder: Embedder = {
    info: actual,
    embed: async (images) => {
      calls.embed++;
      return images.map(() => ({ ok: true as const, vector: Float32Array.of(1, 0) }));
    },
    embedOne: async () => ({ vector: Float32Array.of(0, 1), timings: { decodeMs: 1, embedMs: 2 } }),
    embedOrientations: async () => ({
      vectors: [Float32Array.of(0, 1)],
      timings: { decodeMs: 1, embedMs: 2 },
    }),
    close: async () => {
      calls.close++;
    },
  };
  return { embedder, calls };
}

describe('LazyEmbedder', () => {
  it('opens nothing until asked to embed, then opens once for all callers', async () => {
    const { embedder, calls } = countingEmbedder();
    let opens = 0;
    const lazy = new LazyEmbedder(info, async () => {
      opens++;
      return embedder;
    });
    expect(lazy.info).toEqual(info);
    expect(lazy.opened).toBe(false);
    const [one, many] = await Promise.all([
      lazy.embedOne(new Uint8Array(1)),
      lazy.embed([new Uint8Array(1)]),
    ]);
    expect(Array.from(one.vector)).toEqual([0, 1]);
    expect(many).toHaveLength(1);
    expect(opens).toBe(1);
    expect(calls.embed).toBe(1);
    await lazy.close();
    expect(calls.close).toBe(1);
  });

  it('closes without opening when the model was never used', async () => {
    let opens = 0;
    const lazy = new LazyEmbedder(info, async () => {
      opens++;
      return countingEmbedder().embedder;
    });
    await lazy.close();
    expect(opens).toBe(0);
  });

  it('tries again after a failed open', async () => {
    let opens = 0;
    const lazy = new LazyEmbedder(info, async () => {
      opens++;
      if (opens === 1) throw new Error('model file missing');
      return countingEmbedder().embedder;
    });
    await expect(lazy.embedOne(new Uint8Array(1))).rejects.toThrow('model file missing');
    await expect(lazy.embedOne(new Uint8Array(1))).resolves.toHaveProperty('vector');
    expect(opens).toBe(2);
  });

  it('refuses a model that is not the one its info stated, and closes it', async () => {
    const { embedder, calls } = countingEmbedder({ ...info, model: 'other' });
    const lazy = new LazyEmbedder(info, async () => embedder);
    await expect(lazy.embed([new Uint8Array(1)])).rejects.toThrow(/opened model is other.*not the stated m/);
    expect(calls.close).toBe(1);
  });
});
