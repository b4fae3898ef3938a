import { describe, expect, it } from 'vitest';
import { searchPathNames } from '../../src/placement/function-paths.js';

describe('searchPathNames', () => {
  it('splits at commas outside quotes and unquotes', () => {
    expect(searchPathNames('t_acme__r1a2b3, pg_temp')).toEqual(['t_acme__r1a2b3', 'pg_temp']);
    expect(searchPathNames('"$user", public')).toEqual(['$user', 'public']);
    expect(searchPathNames('"a, b", "t ""x"""')).toEqual(['a, b', 't "x"']);
    expect(searchPathNames('')).toEqual([]);
  });
});
