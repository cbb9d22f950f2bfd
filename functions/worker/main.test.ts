import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ExactVectorIndex } from '../../src/adapters/embedded/exact-vector-index.ts';
import { REPO_ROOT, SEEDED_MANIFEST } from '../../src/app/test-system.ts';
import { dataLayout } from '../../src/wiring/embedded.ts';

const run = promisify(execFile);

describe('worker entry point --mode embedded', () => {
  it('refuses to start on an index another model built, as startWorker() does', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pic-worker-guard-'));
    try {
      const foreign = new ExactVectorIndex(dataLayout(dataDir).index);
      await foreign.ensure({ model: 'another-model', profile: 'keras-compat', dimension: 512 });
      await foreign.close();

      const result = await run(
        process.execPath,
        ['--import', 'tsx', join(REPO_ROOT, 'functions/worker/main.ts'), '--mode', 'embedded'],
        {
          env: {
            ...process.env,
            PIC_DATA_DIR: dataDir,
            PIC_MODEL_MANIFEST: SEEDED_MANIFEST,
            PIC_MODEL_FETCH: 'false',
            PIC_WATCH: 'false',
          },
          timeout: 60_000,
        },
      ).then(
        () => ({ code: 0, output: '' }),
        (error: { code: number; stdout: string; stderr: string }) => ({
          code: error.code,
          output: error.stdout + error.stderr,
        }),
      );

      expect(result.code).toBe(1);
      expect(result.output).toContain('another-model');
      expect(result.output).not.toContain('worker started');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
