import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * cfn-lint (PyPI, pinned) over synthesised templates, from its own venv under .cache/ so `npm test`
 * needs nothing but Python ≥ 3.9 with venv. `npx tsx scripts/cfn-lint.ts cdk.out/PicSearch.template.json`.
 */
export const CFN_LINT_VERSION = '1.58.0';
const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const VENV = join(REPO_ROOT, '.cache/cfn-lint-venv');
const BIN = join(VENV, 'bin/cfn-lint');
const STAMP = join(VENV, '.cfn-lint-version');

/**
 * Checks we skip, with why:
 * - W3005: CDK writes DependsOn next to a GetAtt of the same resource (its own style; harmless).
 */
export const IGNORED_CHECKS = ['W3005'];

export async function ensureCfnLint(): Promise<string> {
  if (existsSync(BIN) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === CFN_LINT_VERSION)
    return BIN;
  const python = process.env.PIC_PYTHON ?? 'python3';
  await run(python, ['-m', 'venv', '--clear', VENV]);
  await run(join(VENV, 'bin/python'), ['-m', 'pip', 'install', '--quiet', `cfn-lint==${CFN_LINT_VERSION}`], {
    maxBuffer: 1 << 24,
  });
  writeFileSync(STAMP, `${CFN_LINT_VERSION}\n`);
  return BIN;
}

export interface CfnLintResult {
  /** cfn-lint's exit code: bit 2 errors, 4 warnings, 8 informational. */
  exitCode: number;
  output: string;
}

export async function cfnLint(templates: string[]): Promise<CfnLintResult> {
  const bin = await ensureCfnLint();
  try {
    const { stdout } = await run(bin, ['--ignore-checks', ...IGNORED_CHECKS, '--', ...templates], {
      maxBuffer: 1 << 24,
    });
    return { exitCode: 0, output: stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { exitCode: failed.code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const templates = process.argv.slice(2);
  if (templates.length === 0) {
    console.error('usage: npx tsx scripts/cfn-lint.ts <template.json>…');
    process.exit(2);
  }
  const { exitCode, output } = await cfnLint(templates);
  if (output) console.log(output);
  process.exit(exitCode);
}
