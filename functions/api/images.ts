import { makeGetImageHandler } from '../../src/http/handlers/images.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { cloudOperations } from '../../src/wiring/cloud.ts';

const operations = await cloudOperations();
const image = makeGetImageHandler(operations, 'image');
const thumbnail = makeGetImageHandler(operations, 'thumbnail');

/**
 * GET /images/{key+} and GET /thumbnails/{key+}. Search results already carry presigned links, so these
 * routes serve direct links to a key; the bytes pass through Lambda (6 MB response limit).
 */
export const handler = (event: HttpEvent) =>
  event.routeKey.startsWith('GET /thumbnails/') ? thumbnail(event) : image(event);
