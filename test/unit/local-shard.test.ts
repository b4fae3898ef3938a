import { describe, expect, it } from 'vitest';
import { isLocalShard, localShardTargets } from '../../src/migrate/local-shard.js';

describe('isLocalShard', () => {
  it.each([
    'postgres://u:p@127.0.0.1:5432/postgres',
    'postgres://u:p@127.1.2.3/postgres',
    'postgres://u:p@localhost:5433/postgres',
    'postgres://u:p@LOCALHOST/postgres',
    'postgres://u:p@[::1]:5432/postgres',
    'postgres:///postgres?host=/var/run/postgresql',
    'postgres://u@127.0.0.1/postgres?host=127.0.0.1',
    'postgres://u@x/postgres?host=%2Ftmp',
  ])('%s is on this machine', (url) => {
    expect(isLocalShard({ url })).toBe(true);
  });

  it.each([
    'postgres://u:p@db.internal:5432/postgres',
    'postgres://u:p@10.0.0.7/postgres',
    'postgres://u:p@128.0.0.1/postgres',
    'postgres://u:p@localhost.example.com/postgres',
    'postgres://u@localhost/postgres?host=db.internal',
    'not a url',
  ])('%s is not', (url) => {
    expect(isLocalShard({ url })).toBe(false);
  });
});

describe('localShardTargets', () => {
  it('is 2 per core, at least 2', () => {
    expect(localShardTargets(2)).toBe(4);
    expect(localShardTargets(16)).toBe(32);
    expect(localShardTargets(0)).toBe(2);
  });
});
