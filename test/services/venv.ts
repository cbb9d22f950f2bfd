import { join, resolve } from 'node:path';
import { ensurePythonVenv, venvBinOf } from '../../scripts/python-venv.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const VENV_DIR = join(REPO_ROOT, '.venv');

export function venvBin(name: string): string {
  return venvBinOf(VENV_DIR, name);
}

/**
 * Creates .venv/ from test/services/requirements.txt when it is missing or the requirements changed,
 * so a fresh clone gets its emulators (moto server, Milvus Lite) from `npm test` alone.
 */
export function ensureVenv(log?: (line: string) => void): Promise<{ built: boolean; ms: number }> {
  return ensurePythonVenv(
    {
      dir: VENV_DIR,
      requirements: join(REPO_ROOT, 'test/services/requirements.txt'),
      purpose: 'the cloud tests (moto and Milvus Lite)',
      marker: 'moto_server',
    },
    log,
  );
}
