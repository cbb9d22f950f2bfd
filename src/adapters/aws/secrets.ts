import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * The Milvus token from a Secrets Manager secret. The secret is either the token itself (a Zilliz Cloud
 * API key, or "user:password" for self-hosted Milvus) or JSON with `token`, or `username` + `password`.
 */
export async function readMilvusToken(client: SecretsManagerClient, secretId: string): Promise<string> {
  const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  if (!SecretString) throw new Error(`secret ${secretId} has no string value (the Milvus token)`);
  if (!SecretString.trimStart().startsWith('{')) return SecretString.trim();
  const parsed = JSON.parse(SecretString) as { token?: string; username?: string; password?: string };
  if (parsed.token) return parsed.token;
  if (parsed.username && parsed.password) return `${parsed.username}:${parsed.password}`;
  throw new Error(`secret ${secretId} holds JSON without "token" or "username" + "password"`);
}
