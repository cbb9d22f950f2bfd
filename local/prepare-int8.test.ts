import { resolve } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../src/model/manifest.ts';
import { prepareInt8InBackground } from './prepare-int8.ts';

describe('prepareInt8InBackground', () => {
  it('says loudly that the service stays on fp32 when the int8 model cannot be made', async () => {
    const seeded = await loadManifest(resolve(import.meta.dirname, '../models/vgg16-seeded.manifest.json'));
    const lines: { level: number; msg: string; output?: string[] }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });

    // A model whose manifest is missing: the quantize script fails as it would without Python.
    const made = await prepareInt8InBackground({ ...seeded, modelPath: '/nonexistent/model.onnx' }, log);

    expect(made).toBe(false);
    const failure = lines.find((line) => line.level === 50);
    expect(failure?.msg).toMatch(/^INT8 PREPARATION FAILED: the service stays on the fp32 model/);
    expect(failure?.output?.join('\n')).toMatch(/nonexistent\/model\.manifest\.json/);
  });
});
