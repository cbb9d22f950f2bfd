import type { Operations } from '../app/operations.ts';
import { DEFAULT_DECODE_LIMITS } from '../imaging/decode.ts';
import { imageInspector } from '../imaging/image-processor.ts';
import { awsClientsFor, cloudLinks, imageStores } from './cloud-stores.ts';
import { operationsOf, readParts } from './lambda.ts';

/**
 * POST /uploads (presigned browser uploads) and POST /images (small multipart uploads, each file checked
 * with sharp before it is stored): the bucket's image prefix, write only.
 */
export function uploadOperations(env: Record<string, string | undefined> = process.env): Operations {
  const config = readParts('uploads', env);
  const stores = imageStores(awsClientsFor(config), config);
  return operationsOf('uploads', {
    images: stores.images,
    links: cloudLinks(stores),
    imageInspector: imageInspector({ ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxPixels }),
    imagePrefix: config.imagePrefix,
  });
}
