import { describe, expect, it } from 'vitest';
import { loadCloudConfig } from '../adapters/aws/config.ts';
import { SEEDED_MANIFEST } from '../app/test-system.ts';
import { LazyEmbedder } from '../embedder/lazy-embedder.ts';
import { loadManifest } from '../model/manifest.ts';
import { createCloudSystem } from './cloud.ts';

// Nothing is contacted while a system is made without ensureIndex: clients connect on their first call.
const config = loadCloudConfig({
  IMAGES_BUCKET: 'pics',
  QUEUE_URL: 'http://127.0.0.1:9/000000000000/ingest',
  TABLE_NAME: 'catalogue',
  MILVUS_ADDRESS: '127.0.0.1:9',
  MILVUS_TOKEN: 'unused',
  PIC_MODEL_MANIFEST: SEEDED_MANIFEST,
  AWS_REGION: 'eu-west-1',
});

describe('createCloudSystem, as the Lambda functions make it', () => {
  it("states the model's identity without opening it when the model opens on first use", async () => {
    const system = await createCloudSystem(config, { ensureIndex: false, openModel: 'on-first-use' });
    try {
      const { manifest } = await loadManifest(SEEDED_MANIFEST);
      expect(system.embedder).toBeInstanceOf(LazyEmbedder);
      expect((system.embedder as LazyEmbedder).opened).toBe(false);
      expect(system.embedder.info).toEqual({
        model: manifest.name,
        profile: manifest.profile,
        dimension: manifest.output.dimension,
        provider: 'cpu',
        pretrained: false,
      });
    } finally {
      await system.close();
    }
  });

  it('refuses to open on first use with a GPU provider, whose fallback it could not state', async () => {
    await expect(
      createCloudSystem(config, {
        ensureIndex: false,
        openModel: 'on-first-use',
        executionProviders: ['cuda'],
      }),
    ).rejects.toThrow(/CPU provider only/);
  });
});
