import { describe, expect, it } from 'vitest';
import { builtIfMissing, waitsWithoutBlocking } from '../../src/migrate/concurrent-ddl.js';

/** Which statements of a no-transaction file run without the short lock timeout (true) or keep it. */
describe('waitsWithoutBlocking', () => {
  it.each([
    ['create index concurrently if not exists events_kind_idx on events (kind)', true],
    ['CREATE UNIQUE INDEX CONCURRENTLY x ON t (a)', true],
    ['create\n  index concurrently x on t (a)', true],
    ['drop index concurrently if exists x', true],
    ['reindex index concurrently x', true],
    ['REINDEX (VERBOSE) TABLE CONCURRENTLY t', true],
    ['create index x on t (a)', false],
    ['alter table t add column c int', false],
    ['drop index x', false],
    ['reindex table t', false],
    ["insert into notes values ('create index concurrently')", false],
    ['vacuum t', false],
  ])('%s → %s', (sql, expected) => {
    expect(waitsWithoutBlocking(sql)).toBe(expected);
  });
});

/** The index whose INVALID leftover a retry drops before building it again. */
describe('builtIfMissing', () => {
  it.each([
    ['create unique index concurrently if not exists users_dn on users (tenant_id, display_name)', 'users_dn'],
    ['CREATE INDEX CONCURRENTLY IF NOT EXISTS Tasks_Title ON tasks (title)', 'tasks_title'],
    ['create index concurrently if not exists "Odd ""Name""" on t (a)', 'Odd "Name"'],
    ['create index concurrently users_dn on users (a)', null],
    ['create index if not exists users_dn on users (a)', null],
    ['create index concurrently if not exists other.users_dn on users (a)', null],
  ])('%s → %s', (sql, expected) => {
    expect(builtIfMissing(sql)).toBe(expected);
  });
});
