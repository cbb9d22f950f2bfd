import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { LoadedManifest } from '../src/model/manifest.ts';
import { manifestPathFor } from '../src/model/model-files.ts';

const QUANTIZE_SCRIPT = fileURLToPath(new URL('../scripts/model-quantize.ts', import.meta.url));

/**
 * `npm start` with no int8 model yet, or one an earlier recipe made (chooseModel's int8Missing and
 * int8Outdated): runs `npm run model:quantize` for the fp32 model in the background, at low priority, while
 * the service runs on what it has; the next start chooses between them (chooseModel). Without Python (or
 * offline, at the venv's first creation) it fails, and the log says what the service stays on and how to
 * make the int8 model by hand. PIC_INT8_PREPARE=false turns it off.
 */
export function prepareInt8InBackground(
  fp32: LoadedManifest,
  log: Logger,
  why: 'missing' | 'outdated' = 'missing',
): Promise<boolean> {
  const current = why === 'missing' ? 'the fp32 model' : 'the model it runs now';
  log.info(
    { fp32: fp32.modelPath },
    why === 'missing'
      ? 'no int8 model yet: preparing it in the background (npm run model:quantize); fp32 until the next start'
      : 'the int8 model was made by an earlier recipe: making it again in the background (npm run model:quantize); the current one runs until the next start',
  );
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', QUANTIZE_SCRIPT, '--manifest', manifestPathFor(fp32.modelPath)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid !== undefined) setPriority(child.pid, 15);
  const output: string[] = [];
  const keep = (chunk: Buffer) => output.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      if (code === 0) {
        log.info({ summary: output.slice(-3) }, 'int8 model prepared; restart to use it');
      } else {
        log.error(
          { code, output: output.slice(-5) },
          `INT8 PREPARATION FAILED: the service stays on ${current}. Run \`npm run model:quantize\` to see why (it needs Python ≥ 3.10 with venv).`,
        );
      }
      resolve(code === 0);
    });
  });
}
