import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ImageError, NotFoundError, ValidationError } from '../../domain/errors.ts';
import type { ListOptions, ObjectStore, ObjectWithBody, StoredObject } from '../../domain/ports.ts';

export interface S3ObjectStoreOptions {
  bucket: string;
  /**
   * Stored keys are this + the key (the thumbnails live under 'thumbnails/' in the images bucket);
   * keys given and listed are relative to it. @default ''
   */
  keyPrefix?: string;
  /** Lifetime of presigned GET links and upload forms. @default 3600 */
  urlExpiresSeconds?: number;
  /**
   * get() refuses larger objects (ImageError too_large) from their Content-Length, before reading the
   * body, and upload forms allow no larger file. @default unlimited
   */
  maxObjectBytes?: number;
}

/** A presigned POST form: the browser posts `fields`, then the file as the last part named "file". */
export interface UploadForm {
  url: string;
  fields: Record<string, string>;
  maxBytes: number;
  expiresInSeconds: number;
}

/** S3's own limit on key length, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

/** An S3 bucket as the object store; links are presigned URLs. */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly #s3: S3Client;
  readonly #expiresIn: number;
  readonly #prefix: string;
  readonly #maxBytes: number;

  constructor(s3: S3Client, options: S3ObjectStoreOptions) {
    this.#s3 = s3;
    this.bucket = options.bucket;
    this.#prefix = options.keyPrefix ?? '';
    this.#expiresIn = options.urlExpiresSeconds ?? 3600;
    this.#maxBytes = options.maxObjectBytes ?? Number.POSITIVE_INFINITY;
  }

  #stored(key: string): string {
    if (key.length === 0) throw new ValidationError('an object key cannot be empty');
    const stored = this.#prefix + key;
    if (Buffer.byteLength(stored, 'utf8') > MAX_KEY_BYTES) {
      throw new ValidationError(`object key longer than ${MAX_KEY_BYTES} bytes`);
    }
    return stored;
  }

  async get(key: string): Promise<ObjectWithBody> {
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.#stored(key) }));
      if ((out.ContentLength ?? 0) > this.#maxBytes) {
        // Not buffered: one 5 GB object must not run the worker out of memory.
        (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
        throw new ImageError(
          `The object is ${out.ContentLength} bytes; images larger than ${this.#maxBytes} bytes are not indexed.`,
          'too_large',
        );
      }
      const body = Buffer.from(
        await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
      return {
        key,
        size: out.ContentLength ?? body.byteLength,
        etag: unquote(out.ETag),
        lastModified: out.LastModified ?? new Date(0),
        body,
      };
    } catch (error) {
      if (error instanceof NoSuchKey) throw new NotFoundError(`no object '${key}'`);
      throw error;
    }
  }

  /** PutObject returns no LastModified; the local clock stands in (S3's own differs by well under a second). */
  async put(key: string, body: Uint8Array, contentType?: string): Promise<StoredObject> {
    const out = await this.#s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.#stored(key),
        Body: body,
        ...(contentType ? { ContentType: contentType } : {}),
      }),
    );
    return { key, size: body.byteLength, etag: unquote(out.ETag), lastModified: new Date() };
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.#s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#stored(key) }));
      return {
        key,
        size: out.ContentLength ?? 0,
        etag: unquote(out.ETag),
        lastModified: out.LastModified ?? new Date(0),
      };
    } catch (error) {
      if (error instanceof NotFound || (error as { name?: string }).name === 'NotFound') return undefined;
      throw error;
    }
  }

  async *list(prefix?: string, options: ListOptions = {}): AsyncIterable<StoredObject> {
    const pages = paginateListObjectsV2(
      { client: this.#s3, pageSize: 1000 },
      {
        Bucket: this.bucket,
        ...(this.#prefix || prefix ? { Prefix: this.#prefix + (prefix ?? '') } : {}),
        ...(options.startAfter ? { StartAfter: this.#prefix + options.startAfter } : {}),
      },
    );
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: object.Key.slice(this.#prefix.length),
          size: object.Size ?? 0,
          etag: unquote(object.ETag),
          lastModified: object.LastModified ?? new Date(0),
        };
      }
    }
  }

  async delete(key: string): Promise<void> {
    await this.#s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#stored(key) }));
  }

  downloadUrl(key: string): Promise<string> {
    return getSignedUrl(this.#s3, new GetObjectCommand({ Bucket: this.bucket, Key: this.#stored(key) }), {
      expiresIn: this.#expiresIn,
    });
  }

  /**
   * A presigned POST form for one file (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html):
   * S3 itself refuses a file over `maxObjectBytes` (content-length-range), another key, or another
   * Content-Type than the one given, so a browser can only upload the image it announced.
   */
  async uploadForm(key: string, contentType: string): Promise<UploadForm> {
    if (!Number.isFinite(this.#maxBytes)) throw new Error('upload forms need maxObjectBytes');
    const stored = this.#stored(key);
    const { url, fields } = await createPresignedPost(this.#s3, {
      Bucket: this.bucket,
      Key: stored,
      Conditions: [
        ['content-length-range', 1, this.#maxBytes],
        ['eq', '$Content-Type', contentType],
      ],
      Fields: { 'Content-Type': contentType },
      Expires: this.#expiresIn,
    });
    return { url, fields, maxBytes: this.#maxBytes, expiresInSeconds: this.#expiresIn };
  }
}

/** S3 returns ETags in double quotes; events and the catalogue carry them bare. */
function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}
