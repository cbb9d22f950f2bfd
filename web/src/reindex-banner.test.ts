import { describe, expect, it } from 'vitest';
import type { Health, ProgressView } from './api.ts';
import { reindexState } from './reindex-banner.ts';

const MODEL = { model: 'new', profile: 'quality', dimension: 256, provider: 'cpu', pretrained: false };
const health = (index: Health['index']): Health => ({ status: 'ok', mode: 'embedded', model: MODEL, index });

function progress(reindex: ProgressView['tasks']['reindex']): ProgressView {
  return {
    total: 0,
    indexed: 0,
    failed: 0,
    pending: 0,
    throughput: 0,
    etaSeconds: null,
    queue: { visible: 0, inFlight: 0 },
    recentFailures: [],
    tasks: { deleteAll: null, verify: null, reindex },
  };
}

describe('the re-index banner', () => {
  it('offers a re-index when the index was built by another model, and says nothing when it matches', () => {
    const old = { model: 'old', profile: 'quality', dimension: 512 };
    expect(reindexState(health(old), progress(null))).toMatchObject({ kind: 'needed', index: old });
    expect(reindexState(health({ model: 'new', profile: 'quality', dimension: 256 }), progress(null))).toBe(
      undefined,
    );
  });

  it('follows a running re-index: images done (indexed or failed) of the total', () => {
    const running = progress({
      id: 't',
      kind: 'reindex',
      state: 'running',
      options: { target: { model: 'new', profile: 'quality', dimension: 256 } },
      progress: { queued: 10, indexed: 6, failed: 1, total: 10 },
      startedAt: '2026-12-06T00:00:00.000Z',
      updatedAt: '2026-12-06T00:00:01.000Z',
    });
    expect(reindexState(health({ model: 'old', profile: 'quality', dimension: 512 }), running)).toEqual({
      kind: 'running',
      model: 'new',
      done: 7,
      failed: 1,
      total: 10,
    });
  });
});
