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

export interface MultipartLimits {
  maxFileBytes: number;
  maxFiles: number;
}

/**
 * A busboy parser with the upload limits; `fail` gets the first limit broken (413) or the first parse
 * error (400), once. Limits are enforced while parsing, so a stream is refused at the first byte too many.
 */
function limitedParser(
  contentType: string,
  limits: MultipartLimits,
  fail: (error: Error) => void,
  onFile: (field: string, filename: string, mimeType: string, stream: NodeJS.ReadableStream) => void,
  onField: (name: string, value: string) => void = () => undefined,
): busboy.Busboy {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': contentType },
      // Browsers send UTF-8 file names unescaped; busboy's default would read them as latin1.
      defParamCharset: 'utf8',
      limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 50, fieldSize: 64 * 1024 },
    });
  } catch (error) {
    throw new ValidationError(`Not a multipart body: ${(error as Error).message}`);
  }
  let failed = false;
  const failOnce = (error: Error) => {
    if (!failed) fail(error);
    failed = true;
  };
  const malformed = (error: Error) =>
    failOnce(new ValidationError(`Malformed multipart body: ${error.message}`));
  parser.on('file', (field, stream, info) => {
    // A body cut off inside a file errors the file's stream too: unheard, that would crash the process.
    stream.on('error', malformed);
    stream.on('limit', () =>
      failOnce(
        new PayloadTooLargeError(
          `"${info.filename}" is over the limit of ${limits.maxFileBytes} bytes per file.`,
        ),
      ),
    );
    onFile(field, info.filename ?? '', info.mimeType, stream);
  });
  parser.on('field', onField);
  parser.on('filesLimit', () =>
    failOnce(new PayloadTooLargeError(`Too many files: at most ${limits.maxFiles} per request.`)),
  );
  parser.on('error', malformed);
  return parser;
}

/**
 * Parses a whole multipart/form-data body (API Gateway delivers it in one piece). Limits are enforced while
 * parsing: a file over `maxFileBytes` or more than `maxFiles` files is a 413.
 */
export function parseMultipart(
  body: Buffer,
  contentType: string,
  limits: MultipartLimits,
): Promise<MultipartBody> {
  return new Promise((resolve, reject) => {
    const parts: { field: string; filename: string; contentType: string; chunks: Buffer[] }[] = [];
    const fields: Record<string, string> = {};
    let failed = false;
    const fail = (error: Error) => {
      failed = true;
      reject(error);
    };
    let parser: busboy.Busboy;
    try {
      parser = limitedParser(
        contentType,
        limits,
        fail,
        (field, filename, mimeType, stream) => {
          const part = { field, filename, contentType: mimeType, chunks: [] as Buffer[] };
          parts.push(part);
          stream.on('data', (chunk: Buffer) => part.chunks.push(chunk));
        },
        (name, value) => {
          fields[name] = value;
        },
      );
    } catch (error) {
      reject(error);
      return;
    }
    parser.on('close', () => {
      if (failed) return;
      const files = parts.map(({ chunks, ...rest }) => ({ ...rest, body: Buffer.concat(chunks) }));
      resolve({ files, fields });
    });
    parser.end(body);
  });
}

/**
 * Checks a multipart body against the limits while it streams in (the local server, before it keeps a
 * byte more than a limit allows): write each chunk as it arrives; `refuse` is called once, at the first
 * file over `maxFileBytes` or the first file past `maxFiles`. File bytes are counted, not kept. Throws
 * ValidationError when the content type is not a usable multipart one.
 */
export function multipartLimitCheck(
  contentType: string,
  limits: MultipartLimits,
  refuse: (error: Error) => void,
): { write(chunk: Buffer): void; end(): void } {
  const parser = limitedParser(contentType, limits, refuse, (_field, _filename, _type, stream) =>
    stream.resume(),
  );
  let stopped = false;
  return {
    write(chunk) {
      if (!stopped) parser.write(chunk);
    },
    end() {
      stopped = true;
      parser.end();
    },
  };
}
