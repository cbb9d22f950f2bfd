import { makeGetImageHandler } from '../../src/http/handlers/images.ts';
import type { HttpEvent } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { imageOperations } from '../../src/wiring/lambda.ts';

const { operations, linkFor } = imageOperations();
const image = makeGetImageHandler(operations, 'image', linkFor);
const thumbnail = makeGetImageHandler(operations, 'thumbnail', linkFor);

/** GET /images/{key+} and GET /thumbnails/{key+}: 302 to a presigned S3 link (no 6 MB Lambda response limit). */
export const handler = lambdaHandler('images', (event: HttpEvent) =>
  event.routeKey.startsWith('GET /thumbnails/') ? thumbnail(event) : image(event),
);
