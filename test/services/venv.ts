import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const REQUIREMENTS = join(REPO_ROOT, 'test/services/requirements.txt');
export const VENV_DIR = join(REPO_ROOT, '.venv');
const STAMP = join(VENV_DIR, '.requirements.sha256');
const PYTHON_CANDIDATES = ['python3', 'python3.13', 'python3.12', 'python3.11', 'python3.10', 'python'];

export function venvBin(name: string): string {
  return join(VENV_DIR, process.platform === 'win32' ? 'Scripts' : 'bin', name);
}

/** The first interpreter on PATH that is Python ≥ 3.10 (PIC_PYTHON wins when set). */
async function findPython(): Promise<string> {
  const candidates = process.env.PIC_PYTHON ? [process.env.PIC_PYTHON] : PYTHON_CANDIDATES;
  for (const candidate of candidates) {
    try {
      const { stdout } = await run(candidate, ['-c', 'import sys; print(sys.version_info >= (3, 10))']);
      if (stdout.trim() === 'True') return candidate;
    } catch {
      // Not installed under this name: try the next one.
    }
  }
  throw new Error(
    `The cloud tests need Python ≥ 3.10 with the venv module to run moto and Milvus Lite; tried ${candidates.join(', ')}. Install python3 (and python3-venv) or set PIC_PYTHON.`,
  );
}

/**
 * Creates .venv/ from test/services/requirements.txt when it is missing or the requirements changed
 * (a SHA-256 stamp inside the venv), so a fresh clone gets its emulators from `npm test` alone.
 * Returns whether it (re)built the venv and how long that took.
 */
export async function ensureVenv(
  log: (line: string) => void = console.log,
): Promise<{ built: boolean; ms: number }> {
  const wanted = createHash('sha256')
    .update(await readFile(REQUIREMENTS))
    .digest('hex');
  if (
    existsSync(STAMP) &&
    (await readFile(STAMP, 'utf8')).trim() === wanted &&
    existsSync(venvBin('moto_server'))
  ) {
    return { built: false, ms: 0 };
  }
  const started = Date.now();
  const python = await findPython();
  log(`Creating the emulator venv (${VENV_DIR}) with ${python}: moto server + Milvus Lite, about a minute…`);
  await rm(VENV_DIR, { recursive: true, force: true });
  await run(python, ['-m', 'venv', VENV_DIR]);
  await run(venvBin('python'), ['-m', 'pip', 'install', '--quiet', '-r', REQUIREMENTS], {
    maxBuffer: 1 << 24,
  });
  await writeFile(STAMP, `${wanted}\n`);
  const ms = Date.now() - started;
  log(`Emulator venv ready in ${(ms / 1000).toFixed(1)} s`);
  return { built: true, ms };
}
