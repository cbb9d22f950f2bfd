import type { EmbedderInfo, VectorHit } from '../domain/ports.ts';
import type { MatchLabel } from './operations.ts';

/**
 * How much a rotated or mirrored variant of the query must beat the upright one before it decides a
 * hit's rank: edits that keep the orientation (crops above all) match their original upright, and a
 * turned variant that scores a shade higher against some other photo must not push it down.
 * Chosen with `npm run eval` (docs/search-quality.md).
 */
export const ORIENTATION_MARGIN = 0.02;

/**
 * Merges the hits of the query's variants (upright first) into one list, best first: each key keeps its
 * best score, a turned variant's counting ORIENTATION_MARGIN less when ranking. The score reported is the
 * variant's own cosine similarity.
 */
export function mergeVariantHits(
  hitLists: VectorHit[][],
  topK: number,
  margin = ORIENTATION_MARGIN,
): VectorHit[] {
  const best = new Map<string, { hit: VectorHit; rank: number }>();
  hitLists.forEach((hits, variant) => {
    const penalty = variant === 0 ? 0 : margin;
    for (const hit of hits) {
      const rank = hit.score - penalty;
      const seen = best.get(hit.id);
      if (!seen || rank > seen.rank) best.set(hit.id, { hit, rank });
    }
  });
  return [...best.values()]
    .sort((a, b) => b.rank - a.rank)
    .slice(0, topK)
    .map(({ hit }) => hit);
}

/**
 * The label of a score under the model's calibrated thresholds. A model nobody calibrated (a converted
 * one before `npm run eval -- --calibrate`) claims nothing: every hit is `weak`.
 */
export function matchLabel(score: number, thresholds: EmbedderInfo['matchThresholds']): MatchLabel {
  if (!thresholds) return 'weak';
  if (score >= thresholds.duplicate) return 'duplicate';
  if (score >= thresholds.similar) return 'similar';
  return 'weak';
}
