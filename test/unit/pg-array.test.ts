import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { intArrayParam, textArrayLiteral, textArrayParam } from '../../src/pg-array.js';

// pg's own serialization of a JS array parameter: what these replace must stay byte for byte.
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils') as { prepareValue: (v: unknown) => unknown };

describe('array parameters built as text', () => {
  const awkward = [
    'plain',
    'a"b',
    'back\\slash',
    'x,y',
    '{}',
    'NULL',
    '',
    ' spaced ',
    'ünï',
    'us1/tenant_schemas/t_s1',
    '\\"',
    'two\nlines\tand a tab',
  ];

  it('a text[] parameter is the text pg would send for the same array, nulls included', () => {
    expect(textArrayParam(awkward)).toBe(prepareValue(awkward));
    const withNulls = ['a', null, 'NULL', null];
    expect(textArrayParam(withNulls)).toBe(prepareValue(withNulls));
    expect(textArrayParam([])).toBe(prepareValue([]));
  });

  it('an array of text[] literals (one per row) survives as elements of a text[] parameter', () => {
    const rows = [['s1'], ['a"b', 'c\\d'], []].map(textArrayLiteral);
    expect(rows).toEqual(['{"s1"}', '{"a\\"b","c\\\\d"}', '{}']);
    expect(textArrayParam(rows)).toBe(prepareValue(rows));
  });

  it('an int[] parameter is plain digits (pg quotes them; PostgreSQL reads both the same); a fraction is refused rather than sent', () => {
    expect(intArrayParam([0, 7, -3, null])).toBe('{0,7,-3,NULL}');
    expect(intArrayParam([])).toBe('{}');
    expect(() => intArrayParam([1.5])).toThrow(/not an integer/);
  });
});
