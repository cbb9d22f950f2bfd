/** Scores of `npm run eval`: recall@k and MRR per transform, label precision, threshold calibration. */
import { basename } from 'node:path';
import type { MatchLabel } from '../src/app/operations.ts';
import type { Query } from './eval-corpus.ts';

export interface Answer {
  query: Query;
  hits: { key: string; score: number; match: MatchLabel }[];
  totalMs: number;
}

export interface Recall {
  queries: number;
  recall1: number;
  recall5: number;
  mrr: number;
}

/** Over the answers whose original is indexed. */
export function recall(answers: Answer[]): Recall {
  const scored = answers.filter((a) => a.query.expected !== undefined);
  const ranks = scored.map((a) => a.hits.findIndex((hit) => hit.key === a.query.expected) + 1);
  const mean = (values: number[]) => (values.length ? values.reduce((s, v) => s + v, 0) / values.length : 0);
  return {
    queries: scored.length,
    recall1: mean(ranks.map((r) => (r === 1 ? 1 : 0))),
    recall5: mean(ranks.map((r) => (r >= 1 && r <= 5 ? 1 : 0))),
    mrr: mean(ranks.map((r) => (r >= 1 ? 1 / r : 0))),
  };
}

/** Whether the top hit is the query's original (false too when the original is not indexed). */
function topIsRight(answer: Answer): boolean {
  return answer.query.expected !== undefined && answer.hits[0]?.key === answer.query.expected;
}

/** Of the top hits labelled `label`, the share that are the query's original; undefined when none is. */
export function labelPrecision(answers: Answer[], label: MatchLabel): { precision?: number; count: number } {
  const labelled = answers.filter((a) => a.hits[0]?.match === label);
  if (labelled.length === 0) return { count: 0 };
  return { precision: labelled.filter(topIsRight).length / labelled.length, count: labelled.length };
}

/**
 * The lowest top-1 score from which the top hits reach `precision` (right original at top-1), scanning
 * the scores from the best down; just above the best wrong score when no lower one qualifies.
 */
export function thresholdFor(answers: Answer[], precision: number): number {
  const tops = answers
    .flatMap((a) => (a.hits[0] ? [{ score: a.hits[0].score, right: topIsRight(a) }] : []))
    .sort((a, b) => b.score - a.score);
  let right = 0;
  let best = Number.POSITIVE_INFINITY;
  for (const [i, top] of tops.entries()) {
    if (top.right) right++;
    const next = tops[i + 1];
    // Only cut between distinct scores, so a threshold never splits equal ones.
    if (next && next.score === top.score) continue;
    if (right / (i + 1) >= precision) best = top.score;
  }
  if (Number.isFinite(best)) return best;
  const wrong = tops.filter((t) => !t.right).map((t) => t.score);
  return Math.min(1, Math.max(...wrong) + 1e-4);
}

/** duplicate: ≥ 99 % precision at top-1; similar: more often right than wrong (≥ 50 %). */
export function calibrate(answers: Answer[]): { duplicate: number; similar: number } {
  const duplicate = round4(thresholdFor(answers, 0.99));
  const similar = Math.min(duplicate, round4(thresholdFor(answers, 0.5)));
  return { duplicate, similar };
}

/** Rounded up, so the rounded threshold never admits a score the exact one refused. */
function round4(value: number): number {
  return Math.ceil(value * 1e4) / 1e4;
}

/**
 * The duplicate label's precision on photos its threshold was not calibrated on: the queries are split
 * in two by their original (alternate photos), each half's threshold is applied to the other half.
 */
export function heldOutDuplicatePrecision(answers: Answer[]): { precision?: number; count: number } {
  const originals = [...new Set(answers.map((a) => basename(a.query.file).split('--')[1]))].sort();
  const half = (a: Answer) => originals.indexOf(basename(a.query.file).split('--')[1]) % 2;
  let right = 0;
  let count = 0;
  for (const fold of [0, 1]) {
    const threshold = calibrate(answers.filter((a) => half(a) !== fold)).duplicate;
    for (const a of answers.filter((a) => half(a) === fold)) {
      const top = a.hits[0];
      if (!top || top.score < threshold) continue;
      count++;
      if (topIsRight(a)) right++;
    }
  }
  return count ? { precision: right / count, count } : { count };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
