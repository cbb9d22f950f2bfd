import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeS3Key, ownMessageBody, parseQueueMessage } from './queue-messages.ts';

/** Sample bodies as S3 (and our backfill) put them on the queue. */
const event = (name: string) =>
  readFileSync(resolve(import.meta.dirname, '../../../test/cloud/events', `${name}.json`), 'utf8');

describe('parseQueueMessage', () => {
  it('turns every record of an S3 event into a job, decoding keys with + as space', () => {
    const parsed = parseQueueMessage(event('s3-put-two-records'));

    expect(parsed).toEqual({
      jobs: [
        {
          kind: 'upsert',
          key: 'images/summer holiday/beach & seaé.jpg',
          etag: 'd41d8cd98f00b204e9800998ecf8427e',
          size: 1024,
        },
        {
          kind: 'upsert',
          key: 'images/big+plus.png',
          etag: '9b2cf535f27731c974343645a3985328-14',
          size: 73400320,
        },
      ],
    });
  });

  it('turns ObjectRemoved events (delete and delete marker) into removals', () => {
    const parsed = parseQueueMessage(event('s3-removed'));

    expect(parsed.jobs).toEqual([
      { kind: 'remove', key: 'images/old photo.jpg' },
      { kind: 'remove', key: 'images/versioned.jpg' },
    ]);
    expect(parsed.malformed).toBeUndefined();
  });

  it('skips s3:TestEvent', () => {
    expect(parseQueueMessage(event('s3-test-event'))).toEqual({ jobs: [] });
  });

  it('ignores event kinds the index does not act on', () => {
    expect(parseQueueMessage(event('s3-restore-completed'))).toEqual({ jobs: [] });
  });

  it("reads the project's own backfill messages", () => {
    const parsed = parseQueueMessage(event('pic-search-backfill'));

    expect(parsed.jobs).toEqual([
      { kind: 'upsert', key: 'images/a b+c.jpg', etag: 'abc123', size: 4096 },
      { kind: 'remove', key: 'images/gone.jpg' },
    ]);
  });

  it('round-trips jobs through ownMessageBody', () => {
    const jobs = [{ kind: 'upsert' as const, key: 'x/ü +%.jpg' }];

    expect(parseQueueMessage(ownMessageBody(jobs))).toEqual({ jobs });
  });

  it('marks a body that is not JSON as malformed, with the body in the reason', () => {
    const parsed = parseQueueMessage('hello, queue');

    expect(parsed.jobs).toEqual([]);
    expect(parsed.malformed).toMatch(/not JSON: hello, queue/);
  });

  it('marks JSON of an unknown shape as malformed', () => {
    expect(parseQueueMessage('{"Records": []}').malformed).toMatch(/not an S3 event or a pic-search message/);
    expect(
      parseQueueMessage('{"source": "pic-search", "jobs": [{"kind": "explode"}]}').malformed,
    ).toBeDefined();
  });

  it('marks an S3 key with broken percent-encoding as malformed', () => {
    const body = event('s3-removed').replace('images/old+photo.jpg', 'images/100%.jpg');

    expect(parseQueueMessage(body).malformed).toMatch(/not valid URL encoding: images\/100%\.jpg/);
  });
});

describe('decodeS3Key', () => {
  it('decodes + before percent escapes, so an encoded plus stays a plus', () => {
    expect(decodeS3Key('a+b%2Bc%2Fd')).toBe('a b+c/d');
  });
});
