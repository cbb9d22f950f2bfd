import type { Health, ProgressView } from './api.ts';

/** What the page says of the index's model: nothing, a re-index to offer, or one running. */
export type ReindexState =
  | { kind: 'running'; model: string; done: number; failed: number; total: number }
  | { kind: 'needed'; index: NonNullable<Health['index']>; model: Health['model'] }
  | undefined;

export function reindexState(health: Health | undefined, progress: ProgressView | undefined): ReindexState {
  const running = progress?.tasks.reindex;
  if (running?.state === 'running') {
    const { indexed = 0, failed = 0, total = 0 } = running.progress;
    return {
      kind: 'running',
      model: running.options.target?.model ?? '',
      done: indexed + failed,
      failed,
      total,
    };
  }
  const index = health?.index;
  const model = health?.model;
  if (!index || !model) return undefined;
  const same =
    index.model === model.model && index.profile === model.profile && index.dimension === model.dimension;
  return same ? undefined : { kind: 'needed', index, model };
}
