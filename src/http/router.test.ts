import { describe, expect, it } from 'vitest';
import type { Operations } from '../app/operations.ts';
import { openApiDocument } from './openapi.ts';
import { createRouter, matchRoute, routeKeysFor } from './router.ts';
import type { HttpEvent } from './types.ts';

/** "GET /images/{key+}" → "get /images/{key}" (OpenAPI has no greedy parameters). */
const asOpenApi = (routeKey: string) => {
  const [method = '', path = ''] = routeKey.split(' ');
  return `${method.toLowerCase()} ${path.replace('{key+}', '{key}')}`;
};

function documentedOperations(mode: 'embedded' | 'cloud'): string[] {
  const paths = openApiDocument(mode).paths as Record<string, Record<string, unknown>>;
  return Object.entries(paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
}

describe('route table and OpenAPI document', () => {
  it.each(['embedded', 'cloud'] as const)('describe exactly the same routes in %s mode', (mode) => {
    // Prepare
    const routes = routeKeysFor(mode).map(asOpenApi).sort();
    // Act
    const documented = documentedOperations(mode).sort();
    // Assess
    expect(documented).toEqual(routes);
  });

  it('serves PUT /images/{key+} only in embedded mode', () => {
    expect(routeKeysFor('embedded')).toContain('PUT /images/{key+}');
    expect(routeKeysFor('cloud')).not.toContain('PUT /images/{key+}');
  });

  it('documents topK as an integer from 1 to 100 with default 10, and every error as {error, message}', () => {
    const document = openApiDocument('embedded') as {
      paths: Record<string, Record<string, { parameters?: { name: string; schema: unknown }[] }>>;
      components: { schemas: Record<string, { required?: string[] }> };
    };
    const topK = document.paths['/search']?.post?.parameters?.find((p) => p.name === 'topK');
    expect(topK?.schema).toEqual({ type: 'integer', minimum: 1, maximum: 100, default: 10 });
    expect(document.components.schemas.Error?.required).toEqual(['error', 'message']);
  });
});

describe('matchRoute', () => {
  const keys = routeKeysFor('embedded');

  it('decodes a greedy key segment by segment, as API Gateway hands it to Lambda', () => {
    const match = matchRoute(keys, 'GET', '/images/holiday/caf%C3%A9%20%26%20%24(rm%20-rf).jpg');
    expect(match).toEqual({
      routeKey: 'GET /images/{key+}',
      pathParameters: { key: 'holiday/café & $(rm -rf).jpg' },
    });
  });

  it('tells DELETE /images from DELETE /images/{key+}', () => {
    expect(matchRoute(keys, 'DELETE', '/images')?.routeKey).toBe('DELETE /images');
    expect(matchRoute(keys, 'DELETE', '/images/a.jpg')?.routeKey).toBe('DELETE /images/{key+}');
    expect(matchRoute(keys, 'GET', '/images/')).toBeUndefined();
  });

  it('refuses malformed percent-encoding with a 400-kind error', () => {
    expect(() => matchRoute(keys, 'GET', '/images/%E0%A4%A.jpg')).toThrow(/percent-encoding/);
  });
});

describe('cloud routes', () => {
  it('are exactly the routes API Gateway gets from the CDK stack', async () => {
    const { ROUTES } = await import('../../infra/api.ts');
    expect(Object.keys(ROUTES).sort()).toEqual(routeKeysFor('cloud').sort());
  });
});

describe('duplicates routes', () => {
  const get = (rawPath: string, query: Record<string, string>) =>
    createRouter({} as Operations, { mode: 'embedded' }).handle({
      rawPath,
      queryStringParameters: query,
      requestContext: { http: { method: 'GET' } },
    } as never);

  it('are served in both modes', () => {
    for (const mode of ['embedded', 'cloud'] as const) {
      expect(routeKeysFor(mode)).toEqual(
        expect.arrayContaining(['GET /duplicates', 'POST /duplicates/dismissals', 'POST /duplicates/scan']),
      );
    }
  });

  it('refuse a threshold outside (0, 1] with 400 before any work, and say 503 without a finder', async () => {
    const refused = await get('/duplicates', { threshold: '1.5' });
    expect(refused.statusCode).toBe(400);
    expect(JSON.parse(refused.body ?? '{}').message).toContain('threshold must be at most 1');
    expect((await get('/duplicates', {})).statusCode).toBe(503);
  });
});

describe('query parameters', () => {
  /** No operation may run for a refused request: any call on this empty object would throw, giving 500. */
  const router = createRouter({} as Operations, { mode: 'embedded' });
  const request = (routeKey: string, query: Record<string, string>): HttpEvent => {
    const [method = '', template = ''] = routeKey.split(' ');
    const rawPath = template.replace('{key+}', 'photos/a.jpg');
    return {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString: new URLSearchParams(query).toString(),
      headers: {},
      queryStringParameters: query,
      isBase64Encoded: false,
      requestContext: { http: { method, path: rawPath } },
    } as HttpEvent;
  };

  it.each(routeKeysFor('embedded'))(
    '%s refuses one it does not take, with 400 naming it',
    async (routeKey) => {
      const result = await router.handle(request(routeKey, { bogus: '1' }));
      expect(result.statusCode).toBe(400);
      expect(JSON.parse(String(result.body)).message).toMatch(/^Unknown query parameter "bogus"; it takes /);
    },
  );

  it('refuses top_k on POST /search and points at topK', async () => {
    const result = await router.handle(request('POST /search', { top_k: '3' }));
    expect(result.statusCode).toBe(400);
    const { error, message } = JSON.parse(String(result.body));
    expect(error).toBe('bad_request');
    expect(message).toMatch(/^Unknown query parameter "top_k" \(did you mean "topK"\?\); it takes topK, /);
  });
});
