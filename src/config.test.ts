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
});
