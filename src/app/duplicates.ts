/**
 * The duplicates finder: groups of near-duplicate images across the library, a suggestion of which copy
 * to keep, and "not duplicates" answers that hide a group for good.
 *
 * Groups are the connected components of the pairs at least `threshold` alike (single linkage: A~B and
 * B~C put A, B and C in one group even when A and C score lower). Pairs a person dismissed are left out
 * before grouping, so a dismissed group stays apart until a new image links to it.
 *
 * Embedded mode self-joins its exact index on request. Cloud mode's Milvus cannot: there a scan (a
 * worker task, src/app/tasks.ts) stores the pairs, and the pages group the last finished scan's pairs.
 */
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import { pairKey } from '../domain/ids.ts';
import type {
  Catalogue,
  DismissedPairs,
  ObjectStore,
  PairFinder,
  ScannedPairs,
  Task,
  VectorIndex,
  VectorPair,
} from '../domain/ports.ts';
import { DEFAULT_DECODE_LIMITS, inspectImage } from '../imaging/decode.ts';
import type { LinkBuilders } from './pic-search.ts';

export interface DuplicatesRequest {
  /** Cosine similarity from which two images count as duplicates. @default the configured threshold */
  threshold?: number;
  /** Groups per page. */
  limit: number;
  /** From the previous page's nextCursor. */
  cursor?: string;
}

export interface DuplicateMember {
  key: string;
  id: string;
  /** Cosine similarity to the copy suggested for keeping (1 for that copy itself). */
  score: number;
  width: number;
  height: number;
  bytes: number;
  modifiedAt: Date;
  imageUrl: string;
  thumbnailUrl: string;
}

export interface DuplicateGroup {
  /** The copy to keep: most pixels, then the largest file, then the oldest. */
  keep: string;
  /** The suggested keeper first. */
  members: DuplicateMember[];
  /** The highest similarity between two members. */
  bestScore: number;
}

export interface DuplicatesPage {
  groups: DuplicateGroup[];
  /** Groups in the whole library at this threshold. */
  totalGroups: number;
  threshold: number;
  /** null on the last page. */
  nextCursor: string | null;
  /** Cloud mode: the scan the groups come from. */
  scan?: ScanStatus;
}

export interface ScanStatus {
  /** A scan is running; its groups replace these when it finishes. */
  running: boolean;
  /** When the last scan finished (ISO 8601); null before the first. */
  finishedAt: string | null;
  /** The threshold of the last finished scan; null before the first. */
  threshold: number | null;
}

/** Cloud mode's scans: started here, run by the worker (src/app/tasks.ts). */
export interface DuplicateScanner {
  start(threshold: number): Promise<Task>;
  status(): Promise<ScanStatus>;
}

export interface Duplicates {
  find(request: DuplicatesRequest): Promise<DuplicatesPage>;
  /** "Not duplicates": the images (two or more keys) are never grouped with each other again. */
  dismiss(keys: string[]): Promise<void>;
  /** Cloud mode: starts a scan in the background at `threshold` (default: the configured one). */
  scan(threshold?: number): Promise<Task>;
}

export interface DuplicatesDeps {
  pairs: PairFinder;
  dismissed: DismissedPairs;
  index: VectorIndex;
  catalogue: Catalogue;
  images: ObjectStore;
  links: Pick<LinkBuilders, 'image' | 'thumbnail'>;
  defaultThreshold: number;
  /** A threshold that yields more pairs than this is refused. @default 500_000 */
  maxPairs?: number;
  /** Cloud mode: the pairs come from scans (see scannedPairFinder). */
  scanner?: DuplicateScanner;
}

export const MAX_DUPLICATE_GROUPS_PER_PAGE = 100;
const MAX_PAIRS = 500_000;

export function createDuplicates(deps: DuplicatesDeps): Duplicates {
  const maxPairs = deps.maxPairs ?? MAX_PAIRS;
  // The last self-join, reused while the index is unchanged: paging through thousands of groups must not
  // repeat the O(n²) join for each page.
  let cached: { revision: string; threshold: number; pairs: VectorPair[] } | undefined;

  async function pairsAt(threshold: number): Promise<VectorPair[]> {
    const revision = await deps.pairs.revision();
    if (cached?.revision !== revision || cached.threshold !== threshold) {
      cached = { revision, threshold, pairs: await deps.pairs.similarPairs(threshold, maxPairs) };
    }
    return cached.pairs;
  }

  async function describeGroup(members: { id: string; key: string }[], bestScore: number) {
    const described = await Promise.all(members.map(describeMember));
    described.sort(
      (x, y) =>
        y.width * y.height - x.width * x.height ||
        y.bytes - x.bytes ||
        x.modifiedAt.getTime() - y.modifiedAt.getTime() ||
        (x.key < y.key ? -1 : 1),
    );
    const keeper = described[0] as DuplicateMember;
    const keeperVector = await deps.index.get(keeper.id);
    for (const member of described) {
      const vector = await deps.index.get(member.id);
      member.score = keeperVector && vector ? round(cosine(keeperVector, vector)) : member.score;
    }
    return { keep: keeper.key, members: described, bestScore: round(bestScore) } satisfies DuplicateGroup;
  }

  async function describeMember({ id, key }: { id: string; key: string }): Promise<DuplicateMember> {
    // A vector can outlive its file for a moment (deleted while the page was open): it then ranks last.
    const object = await deps.images.get(key).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    const header = object && (await inspectImage(object.body, DEFAULT_DECODE_LIMITS).catch(() => undefined));
    return {
      key,
      id,
      score: 1,
      width: header?.width ?? 0,
      height: header?.height ?? 0,
      bytes: object?.size ?? 0,
      modifiedAt: object?.lastModified ?? new Date(0),
      imageUrl: await deps.links.image(key),
      thumbnailUrl: await deps.links.thumbnail(key),
    };
  }

  return {
    async find(request) {
      const threshold = request.threshold ?? deps.defaultThreshold;
      const offset = parseCursor(request.cursor);
      const [pairs, dismissed, scan] = await Promise.all([
        pairsAt(threshold),
        deps.dismissed.all(),
        deps.scanner?.status(),
      ]);
      const groups = groupPairs(pairs.filter((pair) => !dismissed.has(pairKey(pair.a.id, pair.b.id))));
      const page = groups.slice(offset, offset + request.limit);
      const next = offset + page.length;
      return {
        groups: await Promise.all(page.map((group) => describeGroup(group.members, group.bestScore))),
        totalGroups: groups.length,
        threshold,
        nextCursor: next < groups.length ? String(next) : null,
        ...(scan ? { scan } : {}),
      };
    },

    async scan(threshold) {
      if (!deps.scanner)
        throw new ValidationError('Embedded mode finds duplicates on each request: there is no scan.');
      return deps.scanner.start(threshold ?? deps.defaultThreshold);
    },

    async dismiss(keys) {
      const unique = [...new Set(keys)];
      if (unique.length < 2) throw new ValidationError('Name two or more images that are not duplicates.');
      const records = await deps.catalogue.getMany(unique);
      const missing = unique.filter((key) => records.get(key)?.state !== 'indexed');
      if (missing.length > 0) throw new ValidationError(`Not indexed: ${missing.join(', ')}.`);
      const ids = unique.map((key) => records.get(key)?.id as string);
      const pairs: [string, string][] = [];
      for (let i = 0; i < ids.length; i++) {
        for (let j = i + 1; j < ids.length; j++) pairs.push([ids[i] as string, ids[j] as string]);
      }
      await deps.dismissed.add(pairs);
    },
  };
}

/**
 * Cloud mode's pairs: those the last finished scan stored. A threshold below the scan's cannot be
 * answered from them (pairs under it were never kept): start a scan at that threshold first.
 */
export function scannedPairFinder(scans: ScannedPairs): PairFinder {
  return {
    async revision() {
      return (await scans.latest())?.id ?? 'no scan';
    },
    async similarPairs(minScore, maxPairs) {
      const scan = await scans.latest();
      if (scan === undefined) return [];
      if (minScore < scan.threshold) {
        throw new ValidationError(
          `The last scan kept pairs from ${scan.threshold}: scan again at ${minScore} (POST /duplicates/scan).`,
        );
      }
      const pairs = (await scans.pairs(scan)).filter((pair) => pair.score >= minScore);
      if (pairs.length > maxPairs) {
        throw new ValidationError(
          `more than ${maxPairs} pairs of images score ${minScore} or more: raise the threshold`,
        );
      }
      return pairs;
    },
  };
}

interface PairGroup {
  members: { id: string; key: string }[];
  bestScore: number;
}

/**
 * Connected components of the pairs (union–find), the most alike groups first; members in key order, so
 * pages are stable while the pairs are.
 */
export function groupPairs(pairs: VectorPair[]): PairGroup[] {
  const parent = new Map<string, string>();
  const find = (id: string): string => {
    let root = id;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    for (let at = id; at !== root; ) {
      const next = parent.get(at) as string;
      parent.set(at, root);
      at = next;
    }
    return root;
  };
  const keys = new Map<string, string>();
  for (const { a, b } of pairs) {
    for (const entry of [a, b]) {
      if (!parent.has(entry.id)) parent.set(entry.id, entry.id);
      keys.set(entry.id, entry.key);
    }
    const [ra, rb] = [find(a.id), find(b.id)];
    if (ra !== rb) parent.set(ra, rb);
  }
  const groups = new Map<string, PairGroup>();
  for (const id of parent.keys()) {
    const root = find(id);
    const group = groups.get(root) ?? { members: [], bestScore: -1 };
    groups.set(root, group);
    group.members.push({ id, key: keys.get(id) as string });
  }
  for (const pair of pairs) {
    const group = groups.get(find(pair.a.id)) as PairGroup;
    group.bestScore = Math.max(group.bestScore, pair.score);
  }
  const ordered = [...groups.values()];
  for (const group of ordered) group.members.sort((x, y) => (x.key < y.key ? -1 : 1));
  return ordered.sort(
    (x, y) =>
      y.bestScore - x.bestScore ||
      ((x.members[0] as { key: string }).key < (y.members[0] as { key: string }).key ? -1 : 1),
  );
}

function parseCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  if (!/^\d{1,9}$/.test(cursor)) throw new ValidationError(`cursor '${cursor}' is not one this API gave out`);
  return Number(cursor);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

function round(score: number): number {
  return Math.round(Math.min(1, score) * 10_000) / 10_000;
}
