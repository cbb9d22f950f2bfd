import busboy from 'busboy';
import { PayloadTooLargeError, ValidationError } from '../domain/errors.ts';

export interface FilePart {
  field: string;
  filename: string;
  contentType: string;
  body: Buffer;
}

export interface MultipartBody {
  files: FilePart[];
  fields: Record<string, string>;
}

/**
 * Parses a whole multipart/form-data body (API Gateway delivers it in one piece). Limits are enforced while
 * parsing: a file over `maxFileBytes` or more than `maxFiles` files is a 413.
 */
export function parseMultipart(
  body: Buffer,
  contentType: string,
  limits: { maxFileBytes: number; maxFiles: number },
): Promise<MultipartBody> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: { 'content-type': contentType },
        // Browsers send UTF-8 file names unescaped; busboy's default would read them as latin1.
        defParamCharset: 'utf8',
        limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 50, fieldSize: 64 * 1024 },
      });
    } catch (error) {
      reject(new ValidationError(`Not a multipart body: ${(error as Error).message}`));
      return;
    }
    const parts: { field: string; filename: string; contentType: string; chunks: Buffer[] }[] = [];
    const fields: Record<string, string> = {};
    let failed = false;
    const fail = (error: Error) => {
      if (!failed) reject(error);
      failed = true;
    };
    parser.on('file', (field, stream, info) => {
      const part = {
        field,
        filename: info.filename ?? '',
        contentType: info.mimeType,
        chunks: [] as Buffer[],
      };
      parts.push(part);
      stream.on('data', (chunk: Buffer) => part.chunks.push(chunk));
      stream.on('limit', () =>
        fail(
          new PayloadTooLargeError(
            `"${info.filename}" is over the limit of ${limits.maxFileBytes} bytes per file.`,
          ),
        ),
      );
    });
    parser.on('field', (name, value) => {
      fields[name] = value;
    });
    parser.on('filesLimit', () =>
      fail(new PayloadTooLargeError(`Too many files: at most ${limits.maxFiles} per request.`)),
    );
    parser.on('error', (error: Error) =>
      fail(new ValidationError(`Malformed multipart body: ${error.message}`)),
    );
    parser.on('close', () => {
      if (failed) return;
      const files = parts.map(({ chunks, ...rest }) => ({ ...rest, body: Buffer.concat(chunks) }));
      resolve({ files, fields });
    });
    parser.end(body);
  });
}
