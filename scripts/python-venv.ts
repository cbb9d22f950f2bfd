import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PYTHON_CANDIDATES = ['python3', 'python3.13', 'python3.12', 'python3.11', 'python3.10', 'python'];

/** A virtual environment the project creates itself from a pinned requirements file. */
export interface PythonVenv {
  dir: string;
  requirements: string;
  /** What it is for, in the log and in the error when no Python is found ("the emulators"). */
  purpose: string;
  /** A program the venv must have (`moto_server`, `python`): its absence means rebuild. */
  marker: string;
}

export function venvBinOf(dir: string, name: string): string {
  return join(dir, process.platform === 'win32' ? 'Scripts' : 'bin', name);
}

/** The first interpreter on PATH that is Python ≥ 3.10 (PIC_PYTHON wins when set). */
async function findPython(purpose: string): Promise<string> {
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
    `${purpose} need Python ≥ 3.10 with the venv module; tried ${candidates.join(', ')}. Install python3 (and python3-venv) or set PIC_PYTHON.`,
  );
}

/**
 * Creates the venv when it is missing or its requirements changed (a SHA-256 stamp inside it), so a
 * fresh clone gets it from the command that needs it. Returns whether it (re)built it and how long it took.
 */
export async function ensurePythonVenv(
  venv: PythonVenv,
  log: (line: string) => void = console.log,
): Promise<{ built: boolean; ms: number }> {
  const stamp = join(venv.dir, '.requirements.sha256');
  const wanted = createHash('sha256')
    .update(await readFile(venv.requirements))
    .digest('hex');
  if (
    existsSync(stamp) &&
    (await readFile(stamp, 'utf8')).trim() === wanted &&
    existsSync(venvBinOf(venv.dir, venv.marker))
  ) {
    return { built: false, ms: 0 };
  }
  const started = Date.now();
  const python = await findPython(venv.purpose);
  log(`Creating the venv for ${venv.purpose} (${venv.dir}) with ${python}, about a minute…`);
  await rm(venv.dir, { recursive: true, force: true });
  await run(python, ['-m', 'venv', venv.dir]);
  await run(venvBinOf(venv.dir, 'python'), ['-m', 'pip', 'install', '--quiet', '-r', venv.requirements], {
    maxBuffer: 1 << 24,
  });
  await writeFile(stamp, `${wanted}\n`);
  const ms = Date.now() - started;
  log(`Venv for ${venv.purpose} ready in ${(ms / 1000).toFixed(1)} s`);
  return { built: true, ms };
}
