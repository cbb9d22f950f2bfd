import type { Operations, Progress } from './operations.ts';

/**
 * Nothing left to do: no image pending and no message waiting or in flight (photos dropped straight into
 * the bucket are queued before they have a record). The web page uses it too, so it stays free of Node APIs.
 */
export function isSettled(progress: Pick<Progress, 'pending' | 'queue'>): boolean {
  return progress.pending === 0 && progress.queue.visible === 0 && progress.queue.inFlight === 0;
}

/**
 * Polls progress until the ingest has settled; `onProgress` sees every reading (the CLI's bar).
 * Throws when `timeoutMs` passes first, with the last reading in the message.
 */
export async function waitUntilSettled(
  operations: Pick<Operations, 'progress'>,
  options: { timeoutMs?: number; intervalMs?: number; onProgress?: (progress: Progress) => void } = {},
): Promise<Progress> {
  const { timeoutMs = Number.POSITIVE_INFINITY, intervalMs = 250, onProgress } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await operations.progress();
    onProgress?.(progress);
    if (isSettled(progress)) return progress;
    if (Date.now() > deadline) {
      throw new Error(`Ingest did not settle within ${timeoutMs} ms: ${JSON.stringify(progress)}`);
    }
    await new Promise((resume) => setTimeout(resume, intervalMs));
  }
}
