import { resolve } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../src/model/manifest.ts';
import { prepareInt8InBackground } from './prepare-int8.ts';

describe('prepareInt8InBackground', () => {
  it.each([
    ['missing', /^no int8 model yet/, 'the fp32 model'],
    ['outdated', /^the int8 model was made by an earlier recipe: making it again/, 'the model it runs now'],
  ] as const)(
    'says loudly what the service stays on when the %s int8 model cannot be made',
    async (why, start, stays) => {
      const seeded = await loadManifest(resolve(import.meta.dirname, '../models/vgg16-seeded.manifest.json'));
      const lines: { level: number; msg: string; output?: string[] }[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });

      // A model whose manifest is missing: the quantize script fails as it would without Python.
      const made = await prepareInt8InBackground(
        { ...seeded, modelPath: '/nonexistent/model.onnx' },
        log,
        why,
      );

      expect(made).toBe(false);
      expect(lines[0]?.msg).toMatch(start);
      const failure = lines.find((line) => line.level === 50);
      expect(failure?.msg).toMatch(new RegExp(`^INT8 PREPARATION FAILED: the service stays on ${stays}\\.`));
      expect(failure?.output?.join('\n')).toMatch(/nonexistent\/model\.manifest\.json/);
    },
  );
});
