import { describe, expect, it } from 'vitest';
import type { Orientation } from '../src/app/operations.ts';
import { listOf, planRuns } from './eval.ts';
import { TRANSFORMS, type Transform } from './eval-corpus.ts';
import type { Answer } from './eval-metrics.ts';
import { type ConfigResult, type EvalPrecision, report, targetChecks, targetLines } from './eval-report.ts';

/** Ten queries per transform; the first `right[t] × 10` find their original at top-1 with score 0.9. */
function answers(right: Partial<Record<Transform, number>>, fallback = 1): Answer[] {
  return TRANSFORMS.flatMap((transform) =>
    Array.from({ length: 10 }, (_, i) => {
      const hit = i < Math.round((right[transform] ?? fallback) * 10);
      return {
        query: { file: `q/${transform}--photo${i}.jpg`, transform, expected: `photo${i}` },
        hits: [
          { key: hit ? `photo${i}` : 'other', score: hit ? 0.9 : 0.5, match: hit ? 'duplicate' : 'weak' },
        ],
        totalMs: 100 + i,
      } satisfies Answer;
    }),
  );
}

const run = (
  label: string,
  precision: EvalPrecision,
  byOrientation: Partial<Record<Orientation, Answer[]>>,
): ConfigResult => ({ config: { label }, precision, model: label, answers: byOrientation });

describe('eval targets', () => {
  it('passes the default configuration that meets every target', () => {
    const checks = targetChecks(
      [
        run('mac', 'fp32', { upright: answers({ rotate90: 0.5 }) }),
        run('gem-w256', 'fp32', { upright: answers({ rotate90: 0.6 }), any: answers({}) }),
        run('gem-w256', 'int8', { upright: answers({ rotate90: 0.6 }), any: answers({}) }),
      ],
      'gem-w256',
    );
    expect(checks.map((c) => c.target)).toEqual([
      'gem-w256 upright recall@1 ≥ 0.85',
      'gem-w256 upright: no edit more than 0.05 below mac',
      'gem-w256 any recall@1 ≥ 0.95',
      'gem-w256 any rotate90 ≥ 0.95',
      'gem-w256 any mirror ≥ 0.95',
      'gem-w256 upright duplicate precision (held out) ≥ 0.99',
      'gem-w256 any duplicate precision (held out) ≥ 0.99',
      'gem-w256 upright recall@1 int8 vs fp32: drop ≤ 0.01',
      'gem-w256 any recall@1 int8 vs fp32: drop ≤ 0.01',
    ]);
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  it('fails an edit more than 0.05 below mac, a weak mirror with any, and an int8 drop over 0.01', () => {
    const checks = targetChecks(
      [
        run('mac', 'fp32', { upright: answers({ bright: 0.9 }) }),
        run('gem-w256', 'fp32', { upright: answers({ bright: 0.8 }), any: answers({ mirror: 0.9 }) }),
        run('gem-w256', 'int8', { any: answers({ mirror: 0.9, crop70: 0.8 }) }),
      ],
      'gem-w256',
    );
    expect(
      targetLines(
        checks.filter((c) => !c.ok),
        'gem-w256',
      ),
    ).toEqual([
      'FAIL  gem-w256 upright: no edit more than 0.05 below mac: worst bright -0.10',
      'FAIL  gem-w256 any mirror ≥ 0.95: 0.900',
      'FAIL  gem-w256 any recall@1 int8 vs fp32: drop ≤ 0.01: 0.957 vs 0.986 (drop 0.029)',
    ]);
  });

  it('says when no target could be checked', () => {
    const checks = targetChecks([run('mac', 'fp32', { any: answers({}) })], 'gem-w256');
    expect(targetLines(checks, 'gem-w256')).toEqual([
      'No targets checked: they need the gem-w256 (fp32) rows.',
    ]);
  });

  it('reports search latency per row', () => {
    const table = report([run('mac', 'int8', { any: answers({}) })]);
    expect(table).toContain('| mac int8 | any | 1.000 |');
    expect(table).toMatch(/\| 105 \/ 109 \|$/m);
  });
});

describe('eval flags', () => {
  it('expands all and refuses unknown values, naming the allowed ones', () => {
    expect(planRuns({ descriptors: 'all', orientations: 'all', precisions: 'fp32,int8' })).toMatchObject({
      configs: [{ label: 'gem-w256' }, { label: 'mac' }, { label: 'gem' }, { label: 'rmac' }],
      orientations: ['upright', 'any'],
      precisions: ['fp32', 'int8'],
    });
    expect(() => listOf('precisions', 'fp16', ['fp32', 'int8'])).toThrow(
      "--precisions: unknown 'fp16'; use fp32, int8 or all",
    );
    expect(() => planRuns({ descriptors: 'spoc', orientations: 'any', precisions: 'fp32' })).toThrow(
      /Unknown configuration 'spoc'/,
    );
  });
});
