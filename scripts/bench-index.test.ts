import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchIndex, CANDIDATES } from './bench-index.ts';

describe('benchIndex', () => {
  it('measures every candidate, finds each exact, measures the recall of the int8 scan, and writes the figures as JSON', async () => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), 'bench-index-'));
    const outFile = join(dir, 'index.json');
    try {
      // Act
      const rows = await benchIndex({ sizes: [300], dimensions: [256], queries: 3, outFile, log: () => {} });

      // Assess
      expect(rows.map((r) => r.candidate)).toEqual([...CANDIDATES]);
      for (const row of rows) {
        expect(row).toMatchObject({ vectors: 300, dimension: 256, queries: 3, exact: true });
        expect(row.recall).toBe(row.candidate === 'int8-onnx' ? 1 : null);
        expect(row.p50Ms).toBeGreaterThan(0);
        expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
        expect(row.rssMiB).toBeGreaterThan(10);
      }
      const written = JSON.parse(await readFile(outFile, 'utf8')) as { rows: unknown[] };
      expect(written.rows).toEqual(rows);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
