import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parseWith } from './request.ts';
import { ingestBody, moreLikeThisBody, searchQuery, uploadsBody } from './schemas.ts';

/** The message a caller gets for `value`, as parseWith throws it. */
function messageFor(schema: z.ZodType, value: unknown): string {
  try {
    parseWith(schema, value, 'body');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${JSON.stringify(value)} was accepted`);
}

describe('validation messages in plain words', () => {
  it.each([
    [searchQuery, { minScore: 'abc' }, 'minScore must be a number from -1 to 1'],
    [searchQuery, { prefix: ['a', 'b'] }, 'prefix must be text, not a list'],
    [ingestBody, { path: 5 }, 'path must be text, not a number'],
    [ingestBody, { prefix: 'x'.repeat(513) }, 'prefix must be at most 512 characters'],
    [ingestBody, [], 'must be an object, not a list'],
    [uploadsBody, {}, 'files is required'],
    [uploadsBody, { files: [] }, 'files must have at least 1 item'],
    [uploadsBody, { files: [{ contentType: 'image/png' }] }, 'files[0].name is required'],
    [moreLikeThisBody, { key: '' }, 'key must not be empty'],
  ] as const)('%#: says %j plainly', (schema, value, expected) => {
    const message = messageFor(schema, value);
    expect(message).toContain(expected);
    // zod's own wording never reaches a caller.
    expect(message).not.toMatch(/expected|received|Invalid input|Too (big|small)|NaN/);
  });
});
