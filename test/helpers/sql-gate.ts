import pg from 'pg';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { until, type MigrateEnv } from './migrate-env.js';

/**
 * A gate a migration waits at until the test opens it, instead of a fixed `pg_sleep`: the
 * migration holds its target exactly as long as the test needs (no longer, however fast the
 * machine; no shorter, however busy). The test closes the gate with a session of its own
 * running one marked statement; the migration loops while that statement is active (as the
 * same role, it sees the statement's text in pg_stat_activity); `open` cancels it.
 *
 * @example
 *   const gate = await closeGate(e, 'us1', 'tl-gone');
 *   await e.addMigration('0100_slow.sql', gateSql('tl-gone'));
 *   const run = e.cli(['migrate', 'up']);
 *   await gate.reached(); // a target waits at it
 *   …
 *   await gate.open();
 */
const holdText = (tag: string) => `select pg_sleep(600) -- gate ${tag}`;

/** The migration's statement: wait while the gate `tag` is closed. */
export function gateSql(tag: string): string {
  // (pg_stat_activity is read once per transaction unless its snapshot is cleared.)
  return (
    `do $$ begin while exists (select from pg_stat_activity where state = 'active' and query = '${holdText(tag)}') ` +
    'loop perform pg_sleep(0.02); perform pg_stat_clear_snapshot(); end loop; end $$;\n'
  );
}

export interface Gate {
  /** Until a session other than the test's waits at the gate (a migration reached it). */
  reached(): Promise<void>;
  /** Open it: whatever waits there goes on. */
  open(): Promise<void>;
}

/** Close the gate `tag` on `shard` (a session of the test runs the marked statement until opened). */
export async function closeGate(e: MigrateEnv, shard: string, tag: string): Promise<Gate> {
  const text = holdText(tag);
  const url = databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, 'postgres');
  // Two sessions for the gate's life: the holder, and one that polls (a new connection per poll
  // would cost an authentication each time, on a machine the whole suite shares).
  const holder = new pg.Client({ connectionString: url, application_name: 'test' });
  const watch = new pg.Client({ connectionString: url, application_name: 'test' });
  for (const c of [holder, watch]) {
    c.on('error', () => undefined);
    await c.connect();
  }
  // Cancelled on purpose by open(): its rejection is handled here, before any other await.
  const held = holder.query(text).catch(() => undefined);
  const active = async (sql: string) => ((await watch.query(sql, [text])).rowCount ?? 0) > 0;
  await until(() => active('select 1 from pg_stat_activity where query = $1'));
  return {
    async reached() {
      await until(() => active(`select 1 from pg_stat_activity where application_name <> 'test' and query like '%' || $1 || '%'`), 60_000);
    },
    async open() {
      await watch.query('select pg_cancel_backend(pid) from pg_stat_activity where query = $1', [text]);
      await held;
      await Promise.all([holder.end(), watch.end()]);
    },
  };
}
