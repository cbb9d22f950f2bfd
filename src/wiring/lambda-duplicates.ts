import { createDuplicates, type Duplicates, scannedPairFinder } from '../app/duplicates.ts';
import { duplicateScanner } from '../app/tasks.ts';
import { DEFAULT_DUPLICATE_THRESHOLD } from '../config.ts';
import {
  awsClientsFor,
  catalogueTable,
  cloudLinks,
  duplicateStores,
  imageStores,
  jobQueue,
  liveIndex,
  taskStore,
} from './cloud-stores.ts';
import { readParts } from './lambda.ts';

/**
 * GET /duplicates, POST /duplicates/dismissals and POST /duplicates/scan: the groups of the last scan the
 * worker ran (src/app/tasks.ts), described from the bucket (sharp reads the image headers: this module
 * is apart from lambda.ts so that only this bundle carries sharp's layer).
 */
export async function duplicatesFinder(
  env: Record<string, string | undefined> = process.env,
): Promise<Duplicates> {
  const config = readParts('duplicates', env);
  const aws = awsClientsFor(config);
  const stores = imageStores(aws, config);
  const { scannedPairs, dismissed } = duplicateStores(aws, config);
  const index = await liveIndex(aws, config, config.modelIdentity);
  const catalogue = catalogueTable(aws, config);
  const scanner = duplicateScanner({
    queue: jobQueue(aws, config),
    tasks: taskStore(aws, config),
    scannedPairs,
  });
  return createDuplicates({
    pairs: scannedPairFinder(scannedPairs),
    dismissed,
    index,
    catalogue,
    images: stores.images,
    links: cloudLinks(stores),
    defaultThreshold: config.modelIdentity.matchThresholds?.duplicate ?? DEFAULT_DUPLICATE_THRESHOLD,
    scanner,
  });
}
