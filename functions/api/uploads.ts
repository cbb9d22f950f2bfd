import { makeUploadImagesHandler } from '../../src/http/handlers/images.ts';
import { makeUploadsHandler } from '../../src/http/handlers/ingest.ts';
import { CLOUD_HTTP_LIMITS, type HttpEvent } from '../../src/http/types.ts';
import { lambdaHandler } from '../../src/observability/lambda-handler.ts';
import { uploadOperations } from '../../src/wiring/lambda-uploads.ts';

const operations = uploadOperations();
const targets = makeUploadsHandler(operations);
const multipart = makeUploadImagesHandler(operations, CLOUD_HTTP_LIMITS);

/**
 * POST /uploads (presigned S3 PUT links, for files of any size) and POST /images (multipart through
 * Lambda, small files only: 6 MB a request).
 */
export const handler = lambdaHandler('uploads', (event: HttpEvent) =>
  event.routeKey === 'POST /images' ? multipart(event) : targets(event),
);
