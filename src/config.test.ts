import { homedir } from 'node:os';
import { delimiter } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('configuration from the environment', () => {
  it('gives the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      batchSize: 8,
      maxReceiveCount: 5,
      watch: true,
    });
    expect(config.dataDir).toMatch(/\/data$/);
    expect(config.modelManifest).toBeUndefined();
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', PIC_BATCH_SIZE: ' ' }).port).toBe(8080);
  });

  it('names every bad variable with its value in one error', () => {
    const attempt = () =>
      loadConfig({ PORT: 'eighty', PIC_BATCH_SIZE: '0', PIC_LOG_LEVEL: 'loud', PIC_WATCH: 'maybe' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const { problems, message } = error as ConfigError;
      expect(problems).toHaveLength(4);
      for (const part of [
        'PORT="eighty"',
        'PIC_BATCH_SIZE="0"',
        'PIC_LOG_LEVEL="loud"',
        'PIC_WATCH="maybe"',
      ]) {
        expect(message).toContain(part);
      }
    }
  });

  it('defaults the ingest roots to the home and data folders, and takes absolute folders only', () => {
    const config = loadConfig({ PIC_DATA_DIR: '/srv/pics' });
    expect(config.ingestRoots).toEqual([homedir(), '/srv/pics']);
    expect(loadConfig({ PIC_INGEST_ROOTS: `/a${delimiter}/b` }).ingestRoots).toEqual(['/a', '/b']);
    expect(() => loadConfig({ PIC_INGEST_ROOTS: `/a${delimiter}photos` })).toThrow(
      /PIC_INGEST_ROOTS.*absolute/,
    );
  });

  it('limits query images below ingest, sizes the search queue by cores, and wants a long token', () => {
    const config = loadConfig({ PIC_THREADS: '3' });
    expect(config.maxQueryPixels).toBeLessThan(config.maxPixels);
    expect(config.searchQueue).toBe(12);
    expect(config.apiToken).toBeUndefined();
    expect(() => loadConfig({ PIC_API_TOKEN: 'short' })).toThrow(/PIC_API_TOKEN.*16 characters/);
  });

  it('gives the search model session every inference thread unless PIC_SEARCH_THREADS says', () => {
    expect(loadConfig({ PIC_THREADS: '2' }).searchThreads).toBe(2);
    expect(loadConfig({ PIC_THREADS: '2', PIC_SEARCH_THREADS: '1' }).searchThreads).toBe(1);
    expect(() => loadConfig({ PIC_SEARCH_THREADS: '0' })).toThrow(/PIC_SEARCH_THREADS="0"/);
  });

  it('leaves the int8 scan threshold to the index unless set, and takes a positive count of vectors', () => {
    expect(loadConfig({}).indexInt8From).toBeUndefined();
    expect(loadConfig({ PIC_INDEX_INT8_FROM: '500000' }).indexInt8From).toBe(500_000);
    expect(() => loadConfig({ PIC_INDEX_INT8_FROM: '0' })).toThrow(/PIC_INDEX_INT8_FROM="0"/);
  });
});
