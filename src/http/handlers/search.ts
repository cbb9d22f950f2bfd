import type { Operations } from '../../app/operations.ts';
import { ValidationError } from '../../domain/errors.ts';
import { parseMultipart } from '../multipart.ts';
import { bodyBytes, header, mediaType, parseJsonBody } from '../request.ts';
import { handler, json } from '../response.ts';
import { moreLikeThisBody, searchQuery } from '../schemas.ts';
import { DEFAULT_HTTP_LIMITS, type HttpHandler, type HttpLimits } from '../types.ts';

/**
 * POST /search?topK&minScore&prefix — the query image as the raw body, as a multipart part "image", or
 * JSON {"key"} to search with an indexed image's stored vector ("more like this").
 */
export function makeSearchHandler(
  operations: Operations,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): HttpHandler {
  return handler(async (event, request) => {
    const type = mediaType(event);
    if (type === 'application/json') {
      const { key } = parseJsonBody(moreLikeThisBody, event, limits.maxImageBytes);
      return json(200, await operations.searchByKey(key, request));
    }
    const isForm = type === 'multipart/form-data';
    const body = bodyBytes(event, isForm ? limits.maxRequestBytes : limits.maxImageBytes);
    const image = isForm
      ? (
          await parseMultipart(body, header(event, 'content-type') ?? '', {
            maxFileBytes: limits.maxImageBytes,
            maxFiles: 1,
          })
        ).files.find((file) => file.field === 'image')?.body
      : body;
    if (!image || image.length === 0) {
      throw new ValidationError(
        'No query image: send the image bytes as the body, a multipart part named "image", or JSON {"key": "…"}.',
      );
    }
    return json(200, await operations.searchByImage(image, request));
  }, searchQuery);
}
