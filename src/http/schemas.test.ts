import { describe, expect, it } from 'vitest';
import { deleteAllQuery, searchQuery } from './schemas.ts';

describe('searchQuery', () => {
  it('defaults topK to 10 and parses numbers', () => {
    expect(searchQuery.parse({})).toEqual({ topK: 10 });
    expect(searchQuery.parse({ topK: '100', minScore: '-0.25', prefix: 'a/' })).toEqual({
      topK: 100,
      minScore: -0.25,
      prefix: 'a/',
    });
  });

  it.each(['0', '101', '1.5', '1e1', 'ten', '', '-3'])('refuses topK=%j', (topK) => {
    const result = searchQuery.safeParse({ topK });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/topK must be an integer from 1 to 100/);
  });

  it.each(['1.01', '-2', 'high', ''])('refuses minScore=%j', (minScore) => {
    expect(searchQuery.safeParse({ minScore }).success).toBe(false);
  });

  it('takes orientation upright or any, and refuses another naming the allowed values', () => {
    expect(searchQuery.parse({ orientation: 'any' })).toEqual({ topK: 10, orientation: 'any' });
    const result = searchQuery.safeParse({ orientation: 'sideways' });
    expect(result.error?.issues[0]?.message).toBe('orientation must be one of: upright, any');
  });
});

describe('deleteAllQuery', () => {
  it('demands confirm=true', () => {
    expect(deleteAllQuery.safeParse({}).success).toBe(false);
    expect(deleteAllQuery.safeParse({ confirm: 'yes' }).success).toBe(false);
    expect(deleteAllQuery.parse({ confirm: 'true' })).toEqual({ confirm: 'true', deleteObjects: 'false' });
  });
});
