import type { Operations } from '../app/operations.ts';
import { createCloudEmbedder } from './cloud.ts';
import { awsClientsFor, catalogueTable, cloudLinks, imageStores, milvusIndex } from './cloud-stores.ts';
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
  const [embedder, index] = await Promise.all([createCloudEmbedder(config), milvusIndex(aws, config)]);
  return operationsOf('search', {
    ...stores,
    catalogue: catalogueTable(aws, config),
    index,
    embedder,
    links: cloudLinks(stores),
    imagePrefix: config.imagePrefix,
  });
}
