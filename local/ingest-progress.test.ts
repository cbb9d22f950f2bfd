import { describe, expect, it } from 'vitest';
import { BAR_FORMAT, barPayload, duration, JobMeter, jobDone } from './ingest-progress.ts';

const idle = { visible: 0, inFlight: 0 };

describe("the ingest bar's counts for this job", () => {
  it('counts the job, not the library: outstanding work capped at what the job queued', () => {
    expect(jobDone(10, { pending: 10, queue: idle })).toBe(0);
    expect(jobDone(10, { pending: 4, queue: idle })).toBe(6);
    // Dropped files are queued before they have a record: the queue's view wins when larger.
    expect(jobDone(10, { pending: 2, queue: { visible: 3, inFlight: 2 } })).toBe(5);
    // Another job's 500 pending images do not make this one negative.
    expect(jobDone(10, { pending: 510, queue: idle })).toBe(0);
    expect(jobDone(10, { pending: 0, queue: idle })).toBe(10);
  });

  it('says "measuring" until a second has passed with an image done, never 0.0/s or an infinite ETA', () => {
    const meter = new JobMeter(20);
    expect([meter.speedText(), meter.etaText()]).toEqual(['measuring', '…']);
    meter.record(0, 0);
    meter.record(500, 1);
    expect([meter.speedText(), meter.etaText()]).toEqual(['measuring', '…']);
    meter.record(2000, 0 + 4);
    expect([meter.speedText(), meter.etaText()]).toEqual(['2.0 images/s', '8 s']);
  });

  it('follows the recent pace over a 10 s window', () => {
    const meter = new JobMeter(1000);
    for (let second = 0; second <= 20; second++)
      meter.record(second * 1000, second < 10 ? second : 10 + (second - 10) * 5);
    // The last 10 s ran at 5 images/s, though the average since the start is 3.
    expect(meter.rate()).toBeCloseTo(5, 5);
    expect(meter.etaText()).toBe('3 min 8 s'); // (1000 - 60) / 5
  });

  it('writes durations people read', () => {
    expect([duration(0.4), duration(45), duration(200), duration(3_900)]).toEqual([
      '0 s',
      '45 s',
      '3 min 20 s',
      '1 h 05 min',
    ]);
  });

  it("fills every token of the bar's line, none of them one cli-progress fills itself", () => {
    const ours = Object.keys(barPayload(new JobMeter(1), 0));
    const tokens = [...BAR_FORMAT.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    expect(tokens.filter((token) => !['bar', 'value', 'total'].includes(token ?? '')).sort()).toEqual(
      ours.sort(),
    );
    const builtIn = [
      'eta',
      'eta_formatted',
      'duration',
      'duration_formatted',
      'percentage',
      'value',
      'total',
      'bar',
    ];
    expect(ours.filter((key) => builtIn.includes(key))).toEqual([]);
  });
});
