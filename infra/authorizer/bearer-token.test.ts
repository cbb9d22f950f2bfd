import type { APIGatewayRequestAuthorizerEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { tokenMatches } from '../../src/http/bearer-token.ts';
import { makeAuthorizer } from './bearer-token.ts';

const TOKEN = 'k3y-48-characters-long-generated-by-secrets-mgr';

function requestWith(authorization?: string): APIGatewayRequestAuthorizerEventV2 {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  return {
    type: 'REQUEST',
    routeArn: 'arn',
    identitySource: authorization ? [authorization] : [],
    headers,
  } as never;
}

describe('bearer token authorizer', () => {
  it('accepts the exact token, case-insensitive scheme', () => {
    expect(tokenMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(tokenMatches(`bearer ${TOKEN}`, TOKEN)).toBe(true);
  });

  it('refuses a missing, wrong, truncated or non-bearer token', () => {
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
    expect(tokenMatches('Bearer nope', TOKEN)).toBe(false);
    expect(tokenMatches(`Bearer ${TOKEN.slice(0, -1)}`, TOKEN)).toBe(false);
    expect(tokenMatches(`Basic ${TOKEN}`, TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN, TOKEN)).toBe(false);
  });

  it('never accepts anything while the secret is empty', () => {
    expect(tokenMatches('Bearer x', '')).toBe(false);
  });

  it('reads the secret once per five minutes, so a rotated token takes effect without a deploy', async () => {
    // Prepare: a token source that rotates on every read, and a clock we move.
    let reads = 0;
    let clock = 0;
    const authorize = makeAuthorizer(
      async () => `${TOKEN}-${++reads}`,
      () => clock,
    );

    // Act + Assess
    expect(await authorize(requestWith(`Bearer ${TOKEN}-1`))).toEqual({ isAuthorized: true });
    clock += 60_000;
    expect(await authorize(requestWith(`Bearer ${TOKEN}-1`))).toEqual({ isAuthorized: true });
    expect(reads).toBe(1);
    clock += 5 * 60_000;
    expect(await authorize(requestWith(`Bearer ${TOKEN}-1`))).toEqual({ isAuthorized: false });
    expect(await authorize(requestWith(`Bearer ${TOKEN}-2`))).toEqual({ isAuthorized: true });
    expect(reads).toBe(2);
  });

  it('refuses a request without an Authorization header', async () => {
    const authorize = makeAuthorizer(async () => TOKEN);
    expect(await authorize(requestWith())).toEqual({ isAuthorized: false });
  });
});
