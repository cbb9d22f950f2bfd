import type { Operations } from '../app/operations.ts';
import { cloudLiveModels, createCloudEmbedder } from './cloud.ts';
import {
  awsClientsFor,
  catalogueTable,
  cloudLinks,
  imageStores,
  keptModels,
  liveIndex,
} from './cloud-stores.ts';
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
  const index = await liveIndex(aws, config, embedder.info, { models: keptModels(aws, config) });
  // Until a re-index switches, the live generation may be the previous model's: the worker kept it in
  // the bucket, and it is fetched and opened here on the first search that needs it.
  const liveModels = cloudLiveModels(index, config);
  return operationsOf('search', {
    ...stores,
    catalogue: catalogueTable(aws, config),
    index,
    generations: index,
    embedder,
    embedderFor: liveModels.embedderFor,
    links: cloudLinks(stores),
    imagePrefix: config.imagePrefix,
  });
}
