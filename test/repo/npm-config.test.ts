import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/app/test-system.ts';

const run = promisify(execFile);

/** npm as a user runs it in the checkout; stderr is where npm prints its config warnings. */
async function npm(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('npm', args, { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1' } });
}

describe('npm configuration (docs/decisions.md, npm and onnxruntime-node)', () => {
  it('prints no config warning on a plain command', async () => {
    const { stderr } = await npm('pkg', 'get', 'name');
    expect(stderr).not.toMatch(/Unknown (project|user|env) config/);
    expect(stderr).toBe('');
  });

  it('covers every install script of the lockfile in allowScripts, onnxruntime-node denied', async () => {
    const { stdout, stderr } = await npm('install-scripts', 'ls');
    expect(stderr).toBe('');
    expect(stdout).toContain('No packages with unreviewed install scripts');
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
  });
});
