import { describe, expect, it } from 'vitest';
import type { Transform } from './eval-corpus.ts';
import { type Answer, calibrate, labelPrecision, recall, thresholdFor } from './eval-metrics.ts';

function answer(
  expected: string | undefined,
  ranked: [string, number][],
  transform: Transform = 'crop70',
): Answer {
  return {
    query: { file: 'q.jpg', transform, expected },
    hits: ranked.map(([key, score]) => ({ key, score, match: score >= 0.9 ? 'duplicate' : 'weak' })),
    totalMs: 1,
  };
}

describe('eval metrics', () => {
  it('computes recall@1, recall@5 and MRR over queries whose original is indexed', () => {
    const answers = [
      answer('a', [['a', 0.95]]),
      answer('b', [
        ['x', 0.9],
        ['b', 0.8],
      ]),
      answer('c', [['x', 0.5]]),
      answer(undefined, [['x', 0.7]]),
    ];
    expect(recall(answers)).toEqual({ queries: 3, recall1: 1 / 3, recall5: 2 / 3, mrr: (1 + 0.5 + 0) / 3 });
  });

  it('counts a duplicate label wrong when the top hit is another photo or the original is absent', () => {
    const answers = [
      answer('a', [['a', 0.95]]),
      answer('b', [['x', 0.91]]),
      answer(undefined, [['y', 0.92]]),
    ];
    expect(labelPrecision(answers, 'duplicate')).toEqual({ precision: 1 / 3, count: 3 });
  });

  it('puts the duplicate threshold above every wrong top hit when 99 % precision demands it', () => {
    const answers = [
      answer('a', [['a', 0.99]]),
      answer('b', [['b', 0.97]]),
      answer(undefined, [['x', 0.95]]),
      answer('c', [['c', 0.93]]),
    ];
    expect(thresholdFor(answers, 0.99)).toBe(0.97);
    expect(thresholdFor(answers, 0.5)).toBe(0.93);
    expect(calibrate(answers)).toEqual({ duplicate: 0.97, similar: 0.93 });
  });

  it('falls just above the best wrong score when even the top hit is wrong', () => {
    const answers = [answer(undefined, [['x', 0.98]]), answer('a', [['a', 0.9]])];
    expect(thresholdFor(answers, 0.99)).toBeCloseTo(0.9801, 6);
  });
});
