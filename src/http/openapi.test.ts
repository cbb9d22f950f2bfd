import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../app/test-system.ts';
import { openApiDocument } from './openapi.ts';

const run = promisify(execFile);
const redocly = createRequire(import.meta.url).resolve('@redocly/cli/bin/cli.js');

interface LintReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
}

describe("OpenAPI document under Redocly's recommended rules (redocly.yaml)", () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'pic-openapi-'));
  });
  afterAll(() => rm(folder, { recursive: true, force: true }));

  it.each(['embedded', 'cloud'] as const)('lints clean in %s mode, offline', async (mode) => {
    // Prepare
    const file = join(folder, `openapi-${mode}.json`);
    await writeFile(file, JSON.stringify(openApiDocument(mode)));
    // Act: lint exits 1 on errors, so read the report either way.
    const output = await run(
      process.execPath,
      [redocly, 'lint', '--config', join(REPO_ROOT, 'redocly.yaml'), '--format=json', file],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      },
    ).catch((error: { stdout: string }) => error);
    const report = JSON.parse(output.stdout) as LintReport;
    // Assess
    const problems = report.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`);
    expect(problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });

  it('gives every operation a 4XX response, and the cloud document the bearer token', () => {
    for (const mode of ['embedded', 'cloud'] as const) {
      const document = openApiDocument(mode) as {
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
        security: unknown[];
      };
      for (const [path, operations] of Object.entries(document.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          const statuses = Object.keys(operation.responses);
          expect(statuses, `${mode} ${method} ${path}`).toContain('400');
          if (mode === 'cloud')
            expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(['401', '403']));
        }
      }
      expect(document.security).toEqual(mode === 'cloud' ? [{ bearerToken: [] }] : []);
    }
  });
});
