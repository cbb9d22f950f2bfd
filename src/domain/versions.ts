/**
 * The version of a key's state that the catalogue keeps and compares (last write wins, by version).
 *
 * A version is the moment a process looked at the object: a worker takes one just before it downloads
 * (or finds gone) the objects it is about to write, a delete just after the object is gone. The stores
 * are linearizable (S3 is strongly consistent; the folder store renames whole files), so a look taken
 * later sees the same state or a newer one: versions are totally ordered per key, and refusing a write
 * older than the one recorded never loses the newer state. The object's own stamps are not ordered that
 * way: S3's lastModified has whole seconds, a file's mtime can be set back (`cp -p`), and S3's event
 * `sequencer` comes only with events, not with the GET the vector is made from nor with re-ingest jobs.
 *
 * Microseconds since the epoch, made strictly increasing in this process (a clock read twice in one
 * millisecond, or stepped back, still gives a larger number); exact integers until the year 2255.
 * Processes on other machines order by their clocks: a write refused through skew leaves the key to the
 * accepted one, whose writer looks at the object again after writing (src/app/worker.ts) and queues the
 * key again if it is not what it wrote.
 */
export type Version = number;

let last = 0;

/** A version for a look at an object taken now. */
export function versionNow(): Version {
  last = Math.max(Date.now() * 1000, last + 1);
  return last;
}

/**
 * How long a deleted key's tombstone is kept: far longer than any write in flight takes from its look to
 * its commit (a batch, bounded by the queue's visibility timeout and its heartbeat), so a late write of a
 * look taken before the delete finds the tombstone and is refused. After it, a tombstone is removed
 * (SQLite: by the next delete; DynamoDB: by TTL).
 */
export const TOMBSTONE_RETENTION_MS = 24 * 60 * 60 * 1000;
