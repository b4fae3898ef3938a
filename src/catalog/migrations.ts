import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * The catalog's own schema, versioned with Kysely's migrator and kept in code (not in
 * migrations/, which is the application's schema shared by every tenant).
 */
const migrations: Record<string, Migration> = {
  '0001_tenants_operations_events': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('slug', 'text', (c) => c.notNull().unique())
        .addColumn('key', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('tier', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull().check(sql`model in ('pool','schema','database')`))
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('shard', 'text', (c) => c.notNull())
        .addColumn('database_name', 'text', (c) => c.notNull())
        .addColumn('schema_name', 'text', (c) => c.notNull())
        .addColumn('residency', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('status_detail', 'text')
        .addColumn('schema_version', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('tenants_shard_idx').on('tenants').columns(['shard', 'model']).execute();
      // Keys for bigint-keyed fleets come from here, so two concurrent creates never collide.
      await sql`create sequence tenant_key_seq`.execute(db);

      await db.schema
        .createTable('operations')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('tenant_slug', 'text')
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('args', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .addColumn('progress', 'jsonb')
        .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('heartbeat_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('finished_at', 'timestamptz')
        .execute();

      await db.schema
        .createTable('events')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('ci_job', 'text')
        .addColumn('command', 'text', (c) => c.notNull())
        .addColumn('tenant_slug', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('result', 'text', (c) => c.notNull())
        .addColumn('details', 'jsonb')
        .execute();
      await db.schema.createIndex('events_tenant_idx').on('events').columns(['tenant_slug', 'id']).execute();
      // Append-only: the log of who did what is not edited after the fact.
      await sql`
        create function events_append_only() returns trigger language plpgsql as $$
        begin raise exception 'the event log is append-only'; end $$`.execute(db);
      await sql`
        create trigger events_no_update before update or delete on events
        for each row execute function events_append_only()`.execute(db);
    },
  },
  '0002_migrate_runs': {
    // `migrate up` runs: the run itself is an operations row (kind 'migrate'); this holds each
    // target's state in it, written as each target finishes, so a crashed or stopped run can be
    // resumed and `migrate status` can name the tenants whose last run failed.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('migrate_targets')
        .addColumn('run_id', 'bigint', (c) => c.notNull().references('operations.id').onDelete('cascade'))
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('shard', 'text', (c) => c.notNull())
        .addColumn('database_name', 'text', (c) => c.notNull())
        .addColumn('schema_name', 'text', (c) => c.notNull())
        .addColumn('tenants', sql`text[]`, (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'succeeded', 'failed', 'not_run')`))
        .addColumn('applied', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
        .addColumn('error', 'jsonb')
        .addColumn('started_at', 'timestamptz')
        .addColumn('finished_at', 'timestamptz')
        .addColumn('duration_ms', 'integer')
        .addPrimaryKeyConstraint('migrate_targets_pkey', ['run_id', 'target'])
        .execute();
      // The last run of each target (migrate status), newest first.
      await sql`create index migrate_targets_target_idx on migrate_targets (target, run_id desc)`.execute(db);
      await sql`create index operations_kind_status_idx on operations (kind, status, id)`.execute(db);
    },
  },
  '0003_tenant_locks': {
    // Who holds each tenant's operation lock (src/operations/tenant-lock.ts). The lock itself is
    // a session advisory lock; this row only describes its holder, matched by backend pid, so a
    // stale row of a crashed process is ignored and overwritten.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('tenant_locks')
        .addColumn('slug', 'text', (c) => c.primaryKey())
        .addColumn('backend_pid', 'integer', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('ci_job', 'text')
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('command', 'text', (c) => c.notNull())
        .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
  },
  '0004_backup_keys': {
    // Per-tenant data keys of encrypted backups, wrapped by the master key from the environment
    // (src/backup/keys.ts). `backup forget-key` clears `wrapped`: every archive of the tenant is
    // then unreadable, without rewriting anything. At most one live key per tenant.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('backup_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey())
        .addColumn('slug', 'text', (c) => c.notNull())
        .addColumn('wrapped', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('destroyed_at', 'timestamptz')
        .execute();
      await sql`create unique index backup_keys_live_idx on backup_keys (slug) where wrapped is not null`.execute(db);
    },
  },
  '0005_migration_checksums': {
    // The checksum the fleet ran of each migration file (src/migrate/one-version.ts): a file
    // whose checksum differs was edited after it ran somewhere, and `migrate up` must not apply
    // the edited version to other targets while those keep the old one (`migrate repair`).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('migration_checksums')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('checksum', 'text', (c) => c.notNull())
        .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
  },
  '0006_catalog_scale': {
    // A catalog of 100,000 tenants (issue 22): every per-tenant read is bounded by an index, not
    // by the catalog's size or its history. The tenants' own lookups already are (slug and key
    // unique; `tenant list --json` pages through the slug index); the operations history was not:
    // `move status`, a move's or a restore's open record and backup records by tenant scanned
    // every operation ever recorded.
    async up(db: Kysely<any>) {
      await sql`create index operations_tenant_idx on operations (tenant_slug, kind, id desc) where tenant_slug is not null`.execute(db);
    },
  },
  '0007_migrate_partitions': {
    // The split of one CI matrix (`migrate up --partition I/N` with a partition key): the first
    // job deals the targets out by cost and records it; the other jobs read it, so the N jobs
    // cover the fleet exactly once even if a tenant comes or goes between their starts.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('migrate_partitions')
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('slice_count', 'integer', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('slice', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('migrate_partitions_pkey', ['key', 'slice_count', 'target'])
        .execute();
      await sql`create index migrate_partitions_created_idx on migrate_partitions (created_at)`.execute(db);
    },
  },
  '0008_run_write_costs': {
    // Every `migrate up` updates each target's migrate_targets row once (pending → its outcome)
    // and each tenant's schema_version, in the catalog writer's statements. On pages packed full
    // those updates could not stay on their page (HOT): each one wrote a new entry into every
    // index (4 on tenants, 2 on migrate_targets), 82–95% of them in a 5,000-target run. Free room
    // on each page keeps them HOT: no index is touched, and pruning reuses the room run after run.
    // Only pages written from now on get it: the next run's updates move the rows once.
    async up(db: Kysely<any>) {
      await sql`alter table tenants set (fillfactor = ${sql.raw(String(TENANTS_FILLFACTOR))})`.execute(db);
      await sql`alter table migrate_targets set (fillfactor = ${sql.raw(String(MIGRATE_TARGETS_FILLFACTOR))})`.execute(db);
      // insertTargets analyzes run_id after a large run's rows (the writer's plan needs the run's
      // size): a sample of 3,000 rows instead of 30,000 sizes a run of 500 or more as well, and
      // took 7 ms instead of 61–85 ms on a catalog of 40,000 target rows.
      await sql`alter table migrate_targets alter column run_id set statistics ${sql.raw(String(RUN_ID_STATISTICS))}`.execute(db);
    },
  },
  '0009_migrate_targets_unchecked': {
    // A run's target rows name their run without a foreign key: its check (a row lock on the
    // run's operations row, by a query per inserted row) was 60 of the 100 ms that inserting
    // 5,000 rows took, before the run's first target could start (bench/README.md). Nothing is
    // lost: a run's row is written before its targets (in createRun, under the run's own lock),
    // and tenantctl never deletes an operations row; the cascade was never used.
    async up(db: Kysely<any>) {
      await sql`alter table migrate_targets drop constraint if exists migrate_targets_run_id_fkey`.execute(db);
    },
  },
  '0010_migrate_target_last': {
    // Each target's last finished run and last cost, one row per target, instead of an index on
    // the whole history: migrate_targets_target_idx (target, run_id desc) took one entry per
    // target per run, a leaf page apart, so inserting a run's rows grew with every run kept
    // (5,000 rows: +29 ms at 10 runs, +136 ms at 70; bench/README.md). A row here is updated in
    // place (HOT: its only index is the target), so a run's cost no longer depends on the history.
    // A statement trigger keeps it from every writer of migrate_targets at once (the catalog
    // writer, repair, catalog restore), one upsert per statement from its transition table.
    async up(db: Kysely<any>) {
      await sql`
        create table migrate_target_last (
          target text primary key,
          run_id bigint not null,
          status text not null,
          error jsonb,
          finished_at timestamptz,
          cost_run_id bigint,
          cost_ms integer
        ) with (fillfactor = ${sql.raw(String(MIGRATE_TARGET_LAST_FILLFACTOR))})`.execute(db);
      await sql`
        create function migrate_target_last_note() returns trigger language plpgsql as $$
        begin
          -- Newest run wins, whatever order runs finish or are restored in (a resumed older run
          -- never overwrites a newer one). Rows are taken in target order, so two runs writing
          -- at once lock their common targets in the same order and cannot deadlock.
          insert into migrate_target_last as l (target, run_id, status, error, finished_at, cost_run_id, cost_ms)
          ${sql.raw(lastOf('changed'))}
           order by f.target
          on conflict (target) do update set
            run_id = greatest(l.run_id, excluded.run_id),
            status = case when excluded.run_id >= l.run_id then excluded.status else l.status end,
            error = case when excluded.run_id >= l.run_id then excluded.error else l.error end,
            finished_at = case when excluded.run_id >= l.run_id then excluded.finished_at else l.finished_at end,
            cost_run_id = case when excluded.cost_run_id >= coalesce(l.cost_run_id, 0) then excluded.cost_run_id else l.cost_run_id end,
            cost_ms = case when excluded.cost_run_id >= coalesce(l.cost_run_id, 0) then excluded.cost_ms else l.cost_ms end;
          return null;
        end $$`.execute(db);
      await sql`
        create trigger migrate_target_last_on_insert after insert on migrate_targets
        referencing new table as changed for each statement execute function migrate_target_last_note()`.execute(db);
      await sql`
        create trigger migrate_target_last_on_update after update on migrate_targets
        referencing new table as changed for each statement execute function migrate_target_last_note()`.execute(db);
      // The history so far, by the same rules.
      await sql`
        insert into migrate_target_last (target, run_id, status, error, finished_at, cost_run_id, cost_ms)
        ${sql.raw(lastOf('migrate_targets'))}`.execute(db);
      await sql`drop index if exists migrate_targets_target_idx`.execute(db);
    },
  },
  '0011_migrate_partition_selector': {
    // The selectors of the job that recorded a split: a job of the same key selecting other
    // tenants (`--region eu-west` in one job, none in the next) would read a split of other
    // targets and leave tenants out with every job green; it is refused instead. The key no
    // longer carries the selectors (splits recorded before keep theirs in the key, and expire).
    async up(db: Kysely<any>) {
      await sql`alter table migrate_partitions add column selector text`.execute(db);
    },
  },
};

/**
 * Half of each tenants page is left for updates: a run updates every tenant of a page within one
 * statement, before the old versions can be pruned. A migrate_targets row grows when it gets its
 * outcome (the applied list, times), so its pages keep more room (40% full: every update HOT in a
 * 5,000-row test, 81% at 50%).
 */
export const TENANTS_FILLFACTOR = 50;
export const MIGRATE_TARGETS_FILLFACTOR = 40;
/** A target's last-run row is rewritten by every run that reaches the target: room to do it on its page. */
export const MIGRATE_TARGET_LAST_FILLFACTOR = 50;
/** Statistics target of migrate_targets.run_id (PostgreSQL samples 300 rows per unit). */
export const RUN_ID_STATISTICS = 10;

/**
 * Each target's newest finished row (succeeded or failed) among `rows`, with the duration of its
 * newest run that applied something (the CI partition's expected cost), one row per target.
 */
function lastOf(rows: string): string {
  return `select f.target, f.run_id, f.status, f.error, f.finished_at, c.run_id, c.duration_ms
            from (select distinct on (target) target, run_id, status, error, finished_at
                    from ${rows} where status in ('succeeded', 'failed')
                   order by target, run_id desc) f
            left join (select distinct on (target) target, run_id, duration_ms
                         from ${rows}
                        where status = 'succeeded' and duration_ms is not null and cardinality(applied) > 0
                        order by target, run_id desc) c on c.target = f.target`;
}

/** The newest catalog migration: a catalog that has it needs no migrator run. */
export const LATEST_CATALOG_MIGRATION = Object.keys(migrations).sort().at(-1)!;

export const catalogMigrations: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
