import type { Operations } from '../app/operations.ts';
import { createCloudEmbedder } from './cloud.ts';
import { awsClientsFor, catalogueTable, cloudLinks, imageStores, liveIndex } from './cloud-stores.ts';
import { operationsOf, readParts } from './lambda.ts';

/**
 * POST /search: the one function that embeds (onnxruntime-node and sharp from the runtime layer, the
 * model from the model layer). The model opens at start, CPU only: a cold start pays for it once.
 */
export async function searchOperations(
  env: Record<string, string | undefined> = process.env,
): Promise<Operations> {
  const config = readParts('search', env);
  const aws = awsClientsFor(config);
  const stores = imageStores(aws, config);
  const embedder = await createCloudEmbedder(config);
  const index = await liveIndex(aws, config, embedder.info);
  return operationsOf('search', {
    ...stores,
    catalogue: catalogueTable(aws, config),
    index,
    generations: index,
    embedder,
    links: cloudLinks(stores),
    imagePrefix: config.imagePrefix,
  });
}
