/**
 * Progress of each load or upload the person started on this page, beside the library's totals. The
 * speed is measured over the last few seconds of this page's own samples, not the server's 60-second
 * average, so it neither lags at the start nor lingers at the end.
 */
import { isSettled } from '../../src/app/settle.ts';
import type { ProgressView } from './api.ts';

export interface Job {
  id: number;
  label: string;
  /** Images this job queued. */
  queued: number;
  /** The library's indexed + failed when the job started. */
  base: number;
  done: number;
  startedAt: number;
  finishedAt?: number;
  /** Images per second over the recent window; undefined until two samples apart. */
  rate?: number;
  /** Samples of `done` over time, the last RATE_WINDOW_MS only. */
  samples: { at: number; done: number }[];
}

const RATE_WINDOW_MS = 10_000;

export function finishedOf(progress: ProgressView): number {
  return progress.indexed + progress.failed;
}

export function startJob(id: number, label: string, queued: number, base: number, now: number): Job {
  const job: Job = { id, label, queued, base, done: 0, startedAt: now, samples: [{ at: now, done: 0 }] };
  if (queued === 0) job.finishedAt = now;
  return job;
}

/** The job after a progress sample taken at `now`. */
export function advanceJob(job: Job, progress: ProgressView, now: number): Job {
  if (job.finishedAt !== undefined) return job;
  const done = Math.min(job.queued, Math.max(0, finishedOf(progress) - job.base));
  const samples = [...job.samples, { at: now, done }].filter((s) => now - s.at <= RATE_WINDOW_MS);
  const first = samples[0] as { at: number; done: number };
  const seconds = (now - first.at) / 1000;
  const rate = seconds >= 1 ? (done - first.done) / seconds : job.rate;
  // The library settling ends the job too: images indexed before the job's base was read would
  // otherwise keep it open forever.
  const finished = done >= job.queued || isSettled(progress);
  return {
    ...job,
    done: finished ? job.queued : done,
    samples,
    ...(rate === undefined ? {} : { rate }),
    ...(finished ? { finishedAt: now } : {}),
  };
}

/** Seconds left at the recent rate; undefined while unknown. */
export function secondsLeft(job: Job): number | undefined {
  if (job.finishedAt !== undefined) return 0;
  if (!job.rate || job.rate <= 0) return undefined;
  return (job.queued - job.done) / job.rate;
}
