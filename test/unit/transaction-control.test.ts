import { describe, expect, it } from 'vitest';
import { transactionControl } from '../../src/migrate/transaction-control.js';

/** Statements that would end the one transaction a transactional migration file runs in. */
describe('transactionControl', () => {
  it.each([
    ['begin;\nalter table t add c int;\ncommit;', { line: 1, statement: 'BEGIN' }],
    ['alter table t add c int;\ncommit;\nalter table u add d int;', { line: 2, statement: 'COMMIT' }],
    ['alter table t add c int;\n-- a comment\nEND;', { line: 3, statement: 'END' }],
    ['start transaction; select 1;', { line: 1, statement: 'START TRANSACTION' }],
    ['select 1;\nrollback;', { line: 2, statement: 'ROLLBACK' }],
  ])('%j → %j', (sql, expected) => {
    expect(transactionControl(sql)).toEqual(expected);
  });

  it.each([
    ['savepoint a; alter table t add c int; rollback to savepoint a; release savepoint a;'],
    ['do $$ begin perform 1; end $$;\ncreate function f() returns int language plpgsql as $f$ begin return 1; end $f$;'],
    ['create function g() returns int language sql begin atomic select 1; select 2; end;\nalter table t add c int;'],
    ["insert into notes (body) values ('commit; begin;');"],
    ['/* commit; */ alter table t add c int;'],
  ])('%j → none', (sql) => {
    expect(transactionControl(sql)).toBeNull();
  });
});
