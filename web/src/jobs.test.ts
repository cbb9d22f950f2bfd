import { describe, expect, it } from 'vitest';
import type { ProgressView } from './api.ts';
import { advanceJob, secondsLeft, startJob } from './jobs.ts';

/** The library's progress with `finished` images indexed and the rest of `total` pending. */
function progress(finished: number, total: number): ProgressView {
  return {
    total,
    indexed: finished,
    failed: 0,
    pending: total - finished,
    throughput: 0,
    etaSeconds: null,
    queue: { visible: total - finished, inFlight: 0 },
    recentFailures: [],
    tasks: { deleteAll: null, verify: null, reindex: null },
  };
}

describe('a job’s progress on the page', () => {
  it('counts from its own start and measures speed over the last 10 s, not since the start', () => {
    // Prepare: 100 images queued on a library that had 50; slow for a minute, then fast.
    let job = startJob(1, 'Loading photos', 100, 50, 0);
    for (let s = 1; s <= 60; s++) job = advanceJob(job, progress(50 + Math.floor(s / 6), 150), s * 1000);
    expect(job.done).toBe(10);
    expect(job.rate).toBeCloseTo(1 / 6, 1);

    // Act: ten seconds at 5 images a second.
    for (let s = 61; s <= 70; s++) job = advanceJob(job, progress(60 + (s - 60) * 5, 150), s * 1000);

    // Assess: the rate is the recent one (a 70-second average would say about 0.9/s).
    expect(job.done).toBe(60);
    expect(job.rate).toBeGreaterThan(4);
    expect(secondsLeft(job)).toBeLessThan(10);
  });

  it('ends when its images are done, or when the library has settled', () => {
    const queued = startJob(1, 'Uploading 3 photos', 3, 10, 0);
    const done = advanceJob(queued, progress(13, 13), 2000);
    expect([done.done, done.finishedAt, secondsLeft(done)]).toEqual([3, 2000, 0]);

    // Indexed before the job's base was read: the count never reaches 3, the settled library ends it.
    const early = advanceJob(startJob(2, 'Uploading 3 photos', 3, 12, 0), progress(13, 13), 1000);
    expect([early.done, early.finishedAt]).toEqual([3, 1000]);
    expect(startJob(3, 'Loading nothing new', 0, 13, 5).finishedAt).toBe(5);
  });
});
