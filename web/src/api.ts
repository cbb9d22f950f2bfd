/**
 * Typed client of the HTTP API (routes in docs/api.md). The response types are the Operations types of
 * src/app/operations.ts, imported as types only, so the page and the server cannot drift apart silently.
 */
import type { DuplicatesPage } from '../../src/app/duplicates.ts';
import type {
  Health,
  IngestReport,
  Orientation,
  Progress,
  SearchResponse,
  UploadReport,
  UploadTarget,
} from '../../src/app/operations.ts';

/** What a type looks like after JSON.stringify/parse: dates travel as ISO strings. */
type Json<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Json<U>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

export type { Health, Orientation, SearchResponse };
export type ProgressView = Json<Progress>;
export type SearchHit = SearchResponse['results'][number];
export type DuplicatesView = Json<DuplicatesPage>;
export type DuplicateGroupView = DuplicatesView['groups'][number];

/** GET /config.json, written by `npm start` locally and by the CDK stack next to the deployed page. */
export interface WebConfig {
  /** '' means the API is on the page's own origin. */
  apiUrl: string;
  mode: 'embedded' | 'cloud';
  auth: { kind: 'none' } | { kind: 'bearer' };
}

/** Any failed request, in words a person can act on; `code` is the API's error code or 'network'. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface SearchOptions {
  topK: number;
  orientation: Orientation;
}

/** The query string of a search; upright is the server's default and is left out. */
function searchQuery({ topK, orientation }: SearchOptions): string {
  return `topK=${topK}${orientation === 'upright' ? '' : `&orientation=${orientation}`}`;
}

/** Supplies the bearer token: asks the person when none is stored yet. */
export interface TokenSource {
  get(): Promise<string>;
  /** The API refused the token: forget it so the next get() asks again. */
  reject(): void;
}

export async function loadConfig(): Promise<WebConfig> {
  // Relative, so the page works at the root of the local server and of the web bucket alike.
  const response = await fetch('./config.json', { cache: 'no-store' });
  if (!response.ok) throw await toApiError(response, 'config.json');
  const body = (await response.json()) as Partial<WebConfig>;
  return {
    apiUrl: (body.apiUrl ?? '').replace(/\/+$/, ''),
    mode: body.mode === 'cloud' ? 'cloud' : 'embedded',
    auth: body.auth?.kind === 'bearer' ? { kind: 'bearer' } : { kind: 'none' },
  };
}

/** Keys in paths are URL-encoded per segment, so "a/b c.jpg" stays two segments. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

export class Api {
  constructor(
    readonly config: WebConfig,
    private readonly tokens: TokenSource | undefined,
  ) {}

  /** Absolute URL of an API path or of a URL the API returned (relative or absolute). */
  url(pathOrUrl: string): string {
    return /^[a-z]+:/i.test(pathOrUrl) ? pathOrUrl : `${this.config.apiUrl}${pathOrUrl}`;
  }

  health(): Promise<Health> {
    return this.json('GET', '/health');
  }

  async count(): Promise<number> {
    return (await this.json<{ count: number }>('GET', '/count')).count;
  }

  progress(failures = 20): Promise<ProgressView> {
    return this.json('GET', `/progress?failures=${failures}`);
  }

  searchByImage(image: Blob, options: SearchOptions): Promise<SearchResponse> {
    // Multipart works for any file, even one the browser could not type from its name.
    const form = new FormData();
    form.append('image', image, image instanceof File ? image.name : 'query');
    return this.json('POST', `/search?${searchQuery(options)}`, form);
  }

  searchByKey(key: string, options: SearchOptions): Promise<SearchResponse> {
    return this.json('POST', `/search?${searchQuery(options)}`, { key });
  }

  duplicates(options: { threshold?: number; cursor?: string; limit?: number }): Promise<DuplicatesView> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 20) });
    if (options.threshold !== undefined) query.set('threshold', String(options.threshold));
    if (options.cursor) query.set('cursor', options.cursor);
    return this.json('GET', `/duplicates?${query}`);
  }

  /** Starts re-indexing with the configured model; follow it in progress().tasks.reindex. */
  async reindex(): Promise<void> {
    await this.send('POST', '/reindex');
  }

  /** Cloud mode: the worker looks for duplicates in the background; GET /duplicates shows them after. */
  async scanDuplicates(threshold?: number): Promise<void> {
    await this.send('POST', `/duplicates/scan${threshold === undefined ? '' : `?threshold=${threshold}`}`);
  }

  async dismissDuplicates(keys: string[]): Promise<void> {
    await this.send('POST', '/duplicates/dismissals', { keys });
  }

  /** Embedded mode: copy a folder on the server's disk into the library, then index it. */
  ingestFolder(path: string, prefix?: string): Promise<IngestReport> {
    return this.json('POST', '/ingest', prefix ? { path, prefix } : { path });
  }

  /** Index whatever is in the bucket under `prefix` and not indexed yet. */
  backfill(prefix: string): Promise<IngestReport> {
    return this.json('POST', '/ingest', { prefix });
  }

  /**
   * Adds files to the library. Embedded: one multipart request; cloud: presigned S3 POST forms straight
   * to the bucket (S3 refuses a file over the form's size limit). Resolves with one outcome per file, so one bad file never hides the others.
   */
  async upload(files: File[], prefix?: string): Promise<UploadOutcome[]> {
    if (this.config.mode === 'embedded') {
      const form = new FormData();
      if (prefix) form.append('prefix', prefix);
      for (const file of files) form.append('files', file, file.name);
      const { rejected } = await this.json<UploadReport>('POST', '/images', form);
      return files.map((file) => {
        const refused = rejected.find((r) => r.name === file.name);
        return refused ? { name: file.name, error: refused.message } : { name: file.name };
      });
    }
    const { uploads } = await this.json<{ uploads: UploadTarget[] }>('POST', '/uploads', {
      files: files.map((file) => ({ name: file.name, contentType: file.type || 'application/octet-stream' })),
      ...(prefix ? { prefix } : {}),
    });
    return Promise.all(
      files.map(async (file, i): Promise<UploadOutcome> => {
        const target = uploads[i];
        if (!target) return { name: file.name, error: 'The API returned no upload target for this file.' };
        try {
          // Presigned targets carry their own signature: no Authorization header.
          const response = await fetch(target.url, uploadRequest(target, file));
          if (!response.ok) throw await toApiError(response, file.name);
          return { name: file.name };
        } catch (error) {
          return { name: file.name, error: describe(error) };
        }
      }),
    );
  }

  deleteImage(key: string): Promise<{ deleted: string }> {
    return this.json('DELETE', `/images/${encodeKey(key)}`);
  }

  deleteAll(deleteObjects: boolean): Promise<{ deleted: number }> {
    return this.json('DELETE', `/images?confirm=true${deleteObjects ? '&deleteObjects=true' : ''}`);
  }

  /** A blob of a protected image (bearer auth: an <img src> cannot send the token). */
  async blob(url: string): Promise<Blob> {
    return (await this.send('GET', url)).blob();
  }

  private async json<T>(method: string, path: string, body?: FormData | object): Promise<T> {
    return (await this.send(method, path, body)).json() as Promise<T>;
  }

  private async send(
    method: string,
    path: string,
    body?: FormData | object,
    retried = false,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.tokens) headers.Authorization = `Bearer ${await this.tokens.get()}`;
    let payload: BodyInit | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await fetch(this.url(path), { method, headers, body: payload });
    } catch {
      throw new ApiError(
        `Cannot reach the API at ${this.config.apiUrl || window.location.origin}. Is the server running?`,
        0,
        'network',
      );
    }
    if (response.status === 401 && this.tokens && !retried) {
      this.tokens.reject();
      return this.send(method, path, body, true);
    }
    if (!response.ok) throw await toApiError(response, `${method} ${path.split('?')[0]}`);
    return response;
  }
}

/** One file's upload: `error` says why it did not get in. */
export type UploadOutcome = { name: string; error?: string };

/** Reads the API's {error, message} body; falls back to the status line for anything else. */
async function toApiError(response: Response, what: string): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.message === 'string' && body.message) {
      return new ApiError(body.message, response.status, String(body.error ?? response.status));
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): the status line below still says what happened.
  }
  const reason = response.statusText || 'error';
  return new ApiError(
    `${what} failed: the server answered ${response.status} ${reason}.`,
    response.status,
    'http',
  );
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The request for one upload target: a raw PUT, or an S3 POST form whose file part comes last. */
function uploadRequest(target: UploadTarget, file: File): RequestInit {
  if (target.method === 'PUT') return { method: 'PUT', headers: target.headers, body: file };
  const form = new FormData();
  for (const [name, value] of Object.entries(target.fields)) form.append(name, value);
  form.append('file', file);
  return { method: 'POST', body: form };
}
