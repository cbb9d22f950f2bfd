import path from 'node:path';
import type { Operations } from '../../app/operations.ts';
import { ValidationError } from '../../domain/errors.ts';
import { parseMultipart } from '../multipart.ts';
import { bodyBytes, header, mediaType, pathKey } from '../request.ts';
import { binary, handler, json, redirect } from '../response.ts';
import { deleteAllQuery, deleteOneQuery } from '../schemas.ts';
import { DEFAULT_HTTP_LIMITS, type HttpHandler, type HttpLimits } from '../types.ts';

export type ImageVariant = 'image' | 'thumbnail';

/** Where a browser can fetch an object directly (a presigned S3 GET in the cloud). */
export type LinkFor = (key: string, variant: ImageVariant) => Promise<string>;

/**
 * GET /images/{key+} and GET /thumbnails/{key+}: the bytes, or a 302 to `linkFor` when given (Lambda
 * should not stream images through its 6 MB response limit).
 */
export function makeGetImageHandler(
  operations: Operations,
  variant: ImageVariant,
  linkFor?: LinkFor,
): HttpHandler {
  return handler(async (event) => {
    const key = pathKey(event);
    if (linkFor) return redirect(await linkFor(key, variant));
    const { body, contentType } =
      variant === 'image' ? await operations.getImage(key) : await operations.getThumbnail(key);
    // Thumbnails are made once per content; a changed image gets a new one, so a short cache is safe.
    return binary(body, contentType, variant === 'thumbnail' ? 'public, max-age=60' : 'no-cache');
  });
}

/** POST /images — multipart, one or many file parts (named "files"), optional field "prefix" → 201 {keys}. */
export function makeUploadImagesHandler(
  operations: Operations,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): HttpHandler {
  return handler(async (event) => {
    if (mediaType(event) !== 'multipart/form-data') {
      throw new ValidationError('Send multipart/form-data with one or more file parts named "files".');
    }
    const form = await parseMultipart(
      bodyBytes(event, limits.maxRequestBytes),
      header(event, 'content-type') ?? '',
      {
        maxFileBytes: limits.maxImageBytes,
        maxFiles: limits.maxFiles,
      },
    );
    if (form.files.length === 0) throw new ValidationError('The form has no file parts named "files".');
    // Browsers send base names only; other clients might send a path, which must not pick the key's folder.
    const files = form.files.map((file) => ({
      name: path.posix.basename(file.filename.replaceAll('\\', '/')) || 'upload',
      body: file.body,
      contentType: file.contentType,
    }));
    return json(201, await operations.upload(files, form.fields.prefix));
  });
}

/** PUT /images/{key+} — raw body (embedded mode's answer to presigned uploads) → 201 {keys, rejected: []}. */
export function makePutImageHandler(
  operations: Operations,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): HttpHandler {
  return handler(async (event) => {
    const key = pathKey(event);
    const body = bodyBytes(event, limits.maxImageBytes);
    const contentType = header(event, 'content-type');
    return json(201, await operations.upload([{ name: key, body, contentType }], ''));
  });
}

/** DELETE /images/{key+}?keepObject=false — the image, its vector and its catalogue entry. */
export function makeDeleteImageHandler(operations: Operations): HttpHandler {
  return handler(async (event, { keepObject }) => {
    const key = pathKey(event);
    await operations.deleteImage(key, { keepObject: keepObject === 'true' });
    return json(200, { deleted: key });
  }, deleteOneQuery);
}

/** DELETE /images?confirm=true[&deleteObjects=true] — everything; without confirm=true nothing happens. */
export function makeDeleteAllHandler(operations: Operations): HttpHandler {
  return handler(
    async (_event, { deleteObjects }) =>
      json(202, await operations.deleteAll({ deleteObjects: deleteObjects === 'true' })),
    deleteAllQuery,
  );
}
