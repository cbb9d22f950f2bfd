/**
 * Validation problems in plain words. zod's own wording ("Invalid input: expected number, received NaN")
 * is written for developers; callers of the API get "minScore must be a number" instead. Messages a schema
 * sets itself win over these (zod's precedence: schema, then this per-parse map).
 */
import type { z } from 'zod';

type Issue = z.core.$ZodRawIssue;

const KINDS: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
};

/** What a wrong value was, for "must be a number, not a list". */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number' && Number.isNaN(value)) return 'text';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'text';
  return KINDS[typeof value] ?? typeof value;
}

function quoted(values: readonly unknown[]): string {
  const items = values.map((value) => JSON.stringify(value));
  return items.length <= 2 ? items.join(' or ') : `one of ${items.join(', ')}`;
}

function bound(issue: Issue & { code: 'too_small' | 'too_big' }): string {
  const limit = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
  const most = issue.code === 'too_small' ? 'at least' : 'at most';
  switch (issue.origin) {
    case 'string':
      return issue.code === 'too_small' && limit === 1
        ? 'must not be empty'
        : `must be ${most} ${limit} characters`;
    case 'array':
    case 'set':
      return `must have ${most} ${limit} item${limit === 1 ? '' : 's'}`;
    default:
      return `must be ${most} ${limit}`;
  }
}

/** A zod error map (pass as `{ error: plainWords }` to safeParse): the message without the field's name. */
export function plainWords(issue: Issue): string | undefined {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'is required';
      const expected = KINDS[issue.expected] ?? issue.expected;
      return `must be ${expected}, not ${kindOf(issue.input)}`;
    }
    case 'invalid_value':
      return `must be ${quoted(issue.values)}`;
    case 'too_small':
    case 'too_big':
      return bound(issue);
    case 'invalid_format':
      return issue.format === 'regex' ? 'has the wrong format' : `must be a valid ${issue.format}`;
    case 'unrecognized_keys':
      return `has unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_union':
      return 'has the wrong shape';
    default:
      return undefined;
  }
}

/** "files[0].name" for the path ["files", 0, "name"]. */
function fieldName(path: readonly PropertyKey[]): string {
  return path
    .map((part, index) => (typeof part === 'number' ? `[${part}]` : `${index > 0 ? '.' : ''}${String(part)}`))
    .join('');
}

/** One sentence per problem, joined with "; ", each naming its field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = fieldName(issue.path);
      if (!field || issue.message.startsWith(field)) return issue.message;
      // Plain-words messages read on from the field's name; a schema's own sentence gets a colon.
      return /^(must|is|has) /.test(issue.message)
        ? `${field} ${issue.message}`
        : `${field}: ${issue.message}`;
    })
    .join('; ');
}
