import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayRequestAuthorizerEventV2, APIGatewaySimpleAuthorizerResult } from 'aws-lambda';
import { tokenMatches } from '../../src/http/bearer-token.ts';

/**
 * API Gateway HTTP API Lambda authorizer (simple responses): lets a request through when its
 * `Authorization: Bearer <token>` equals the API token kept in Secrets Manager (API_TOKEN_SECRET_ARN).
 * The token is re-read at most every TOKEN_TTL_MS so a rotated token takes effect without a redeploy.
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html
 */

const TOKEN_TTL_MS = 5 * 60_000;

export type TokenSource = () => Promise<string>;

export function secretsManagerToken(secretArn: string, client = new SecretsManagerClient({})): TokenSource {
  return async () => {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
    if (!SecretString) throw new Error(`Secret ${secretArn} has no string value`);
    return SecretString.trim();
  };
}

export function makeAuthorizer(source: TokenSource, now: () => number = Date.now) {
  let cached: { token: string; at: number } | undefined;
  return async (event: APIGatewayRequestAuthorizerEventV2): Promise<APIGatewaySimpleAuthorizerResult> => {
    if (!cached || now() - cached.at > TOKEN_TTL_MS) cached = { token: await source(), at: now() };
    const header = event.headers?.authorization ?? event.identitySource?.[0];
    return { isAuthorized: tokenMatches(header, cached.token) };
  };
}

const secretArn = process.env.API_TOKEN_SECRET_ARN;
export const handler = makeAuthorizer(
  secretArn
    ? secretsManagerToken(secretArn)
    : () => Promise.reject(new Error('API_TOKEN_SECRET_ARN is not set')),
);
