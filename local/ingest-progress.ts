/**
 * The CLI's ingest: start it, follow this job (not the whole library) on a bar, and report the job's
 * failures once everything has settled.
 */
import { SingleBar } from 'cli-progress';
import type { IngestReport, Progress } from '../src/app/operations.ts';
import { waitUntilSettled } from '../src/app/settle.ts';

/** A failure as the service reports it (`at` is a Date in-process and an ISO string over HTTP). */
interface ReportedFailure {
  key: string;
  reason: string;
  at: Date | string;
}

export interface IngestBackend {
  ingest(dir: string, prefix?: string): Promise<IngestReport>;
  progress(failures?: number): Promise<Progress>;
}

export interface IngestOutcome {
  report: IngestReport;
  /** This ingest once settled; absent with --no-wait. */
  job?: { queued: number; indexed: number; failures: ReportedFailure[] };
  /** The whole library once settled. */
  library?: Pick<Progress, 'total' | 'indexed' | 'pending' | 'failed'>;
}

/** Failures read at each poll, and at the end (the most the API lists). */
const FAILURES_POLLED = 100;
const FAILURES_AT_END = 1000;
/** Speed is measured over this much recent time, so it follows the current pace. */
const RATE_WINDOW_MS = 10_000;

/**
 * This job's share of the outstanding work: the queue's view (dropped files) or the pending records,
 * whichever is more, never more than the job queued. Work queued by someone else at the same time
 * counts as not yet done until it is.
 */
export function jobDone(queued: number, progress: Pick<Progress, 'pending' | 'queue'>): number {
  const outstanding = Math.max(progress.pending, progress.queue.visible + progress.queue.inFlight);
  return queued - Math.min(queued, outstanding);
}

/** Images per second over the recent window, and the time left; undefined until it can be measured. */
export class JobMeter {
  readonly #samples: { at: number; done: number }[] = [];

  constructor(readonly queued: number) {}

  record(at: number, done: number): void {
    this.#samples.push({ at, done });
    while (this.#samples.length > 2 && at - (this.#samples[1]?.at ?? at) >= RATE_WINDOW_MS)
      this.#samples.shift();
  }

  /** undefined until a second has passed with at least one image done in the window. */
  rate(): number | undefined {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last.at - first.at < 1000 || last.done === first.done) return undefined;
    return ((last.done - first.done) * 1000) / (last.at - first.at);
  }

  speedText(): string {
    const rate = this.rate();
    return rate === undefined ? 'measuring' : `${rate.toFixed(rate < 10 ? 1 : 0)} images/s`;
  }

  etaText(): string {
    const rate = this.rate();
    const last = this.#samples.at(-1);
    if (rate === undefined || !last) return '…';
    return duration((this.queued - last.done) / rate);
  }
}

/** "45 s", "3 min 20 s", "1 h 05 min". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The bar's line: cli-progress fills {bar}, {value} and {total}; barPayload the rest. */
export const BAR_FORMAT =
  'indexing |{bar}| {value}/{total} images | failed {failed} | {speed} | ETA {timeLeft}';

/**
 * Our tokens. Their names must not be cli-progress's own ({eta}, {duration}, {percentage} …), which it
 * fills itself over ours: an {eta} here once printed "ETA INF".
 */
export function barPayload(meter: JobMeter, failed: number) {
  return { failed, speed: meter.speedText(), timeLeft: meter.etaText() };
}

const failureId = (failure: ReportedFailure) => `${failure.key}@${new Date(failure.at).toISOString()}`;

/** Ingests `dir`, then (with `wait`) follows it until settled, with a bar on stderr when `bar`. */
export async function followIngest(
  backend: IngestBackend,
  dir: string,
  prefix: string | undefined,
  options: { wait: boolean; bar: boolean; intervalMs?: number },
): Promise<IngestOutcome> {
  if (!options.wait) return { report: await backend.ingest(dir, prefix) };
  // Failures already listed before this job are not this job's.
  const before = new Set((await backend.progress(FAILURES_AT_END)).recentFailures.map(failureId));
  const report = await backend.ingest(dir, prefix);
  const ours = (failures: ReportedFailure[]) =>
    failures.filter((f) => f.key.startsWith(report.prefix) && !before.has(failureId(f)));

  const meter = new JobMeter(report.queued);
  const bar =
    options.bar && report.queued > 0
      ? new SingleBar({
          format: BAR_FORMAT,
          hideCursor: true,
          stream: process.stderr,
        })
      : undefined;
  bar?.start(report.queued, 0, barPayload(meter, 0));
  try {
    await waitUntilSettled(
      { progress: () => backend.progress(FAILURES_POLLED) },
      {
        intervalMs: options.intervalMs ?? 500,
        onProgress(progress) {
          const done = jobDone(report.queued, progress);
          meter.record(Date.now(), done);
          bar?.update(done, barPayload(meter, ours(progress.recentFailures).length));
        },
      },
    );
  } finally {
    bar?.stop();
  }
  const settled = await backend.progress(FAILURES_AT_END);
  const failures = ours(settled.recentFailures);
  const { total, indexed, pending, failed } = settled;
  return {
    report,
    job: { queued: report.queued, indexed: report.queued - failures.length, failures },
    library: { total, indexed, pending, failed },
  };
}
