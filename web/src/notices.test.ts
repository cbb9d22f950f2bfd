import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from './api.ts';
import { adviceFor, NOTICE_MS, Notices } from './notices.ts';

describe('notices', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('show a repeated message once, counting the repeats, and expire it after the last one', () => {
    const notices = new Notices(() => undefined);

    notices.add('error', 'Search failed: no answer');
    vi.advanceTimersByTime(NOTICE_MS.error - 1000);
    notices.add('error', 'Search failed: no answer');

    expect(notices.list).toHaveLength(1);
    expect(notices.list[0]?.repeats).toBe(1);
    vi.advanceTimersByTime(NOTICE_MS.error - 1);
    expect(notices.list).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(notices.list).toHaveLength(0);
  });

  it('advise by cause: a server that does not answer is not a bad photo', () => {
    const down = new ApiError('Cannot reach the API', 0, 'network');
    const notAnImage = new ApiError('The data is not an image', 415, 'not_an_image');
    const failed = new ApiError('Unexpected error', 500, 'internal');

    expect(adviceFor(down, 'search')).toMatch(/server is running/);
    expect(adviceFor(notAnImage, 'search')).toMatch(/Try another photo/);
    expect(adviceFor(failed, 'search')).toMatch(/log/);
    expect(adviceFor(new ApiError('topK must be…', 400, 'bad_request'), 'search')).toBeUndefined();
  });
});
