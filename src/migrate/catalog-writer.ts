import { sql, type Kysely } from 'kysely';
import { currentActor } from '../catalog/actor.js';
import { intArrayParam, textArrayParam } from '../pg-array.js';
import type { CatalogDatabase } from '../catalog/tables.js';
import { TargetColumns, type TargetRecord } from './catalog-writer-columns.js';

export type { TargetRecord } from './catalog-writer-columns.js';

/** Queued records that are written at once, without waiting for the batch delay. */
const FULL_BATCH = 500;
/** Records per statement at most. */
const MAX_BATCH = 2000;

/**
 * Writes finished targets to the catalog: each target's state row, its tenants' schema_version and
 * their events, in ONE statement (one transaction) per batch. Targets finish faster than one
 * round trip each when many run at once, so whatever queued up while a write was in flight goes in
 * the next statement together; a target's rows are never split across transactions. A crash
 * loses at most the targets not yet written, which `--resume` re-runs and finds done.
 */
export class CatalogWriter {
  /** Records already as the statement's column arrays: no object per waiting target. */
  private queue = new TargetColumns();
  private flushing: Promise<void> | null = null;
  private ready: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private delay: NodeJS.Timeout | null = null;
  private readonly actor: { actor: string; ciJob: string | null };
  /** The first failure to write; the run reports it at the end. */
  error: unknown = null;
  written = 0;
  /** Statements sent (each one transaction). */
  statements = 0;

  constructor(
    private readonly db: Kysely<CatalogDatabase>,
    private readonly runId: number | null,
    private readonly command: string,
    private readonly progress: () => Record<string, unknown>,
    heartbeatMs = 10_000,
    /** How long finished targets may wait to be written together (0: write at once). */
    private readonly batchMs = 200,
  ) {
    this.actor = currentActor();
    if (runId !== null) {
      this.timer = setInterval(() => this.kick(true), heartbeatMs);
      this.timer.unref();
    }
  }

  /**
   * Write nothing before `ready` settles (the run's target rows' statistics: insertTargets), so
   * that the first statement is planned with them; the targets themselves need not wait.
   */
  waitFor(ready: Promise<unknown>): void {
    this.ready = ready.then(
      () => undefined,
      () => undefined,
    );
  }

  push(record: TargetRecord): void {
    this.queue.push(record);
    // A statement per finished target would cost the catalog more than the targets cost their
    // shards: gather for a moment (a crash loses at most this much, which --resume re-checks).
    if (this.queue.length >= FULL_BATCH || this.batchMs === 0) this.kick(false);
    else if (!this.delay) {
      this.delay = setTimeout(() => {
        this.delay = null;
        this.kick(false);
      }, this.batchMs);
    }
  }

  /** Write everything queued; resolves when the catalog has it (or the write failed). */
  async flush(): Promise<void> {
    if (this.delay) clearTimeout(this.delay);
    this.delay = null;
    while (this.flushing || this.queue.length > 0) {
      if (!this.flushing) this.kick(false);
      await this.flushing;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  private kick(heartbeat: boolean): void {
    if (this.flushing) return;
    if (this.queue.length === 0 && !heartbeat) return;
    this.flushing = this.loop().finally(() => {
      this.flushing = null;
      if (this.queue.length >= FULL_BATCH) this.kick(false);
      else if (this.queue.length > 0 && !this.delay) {
        this.delay = setTimeout(() => {
          this.delay = null;
          this.kick(false);
        }, this.batchMs);
      }
    });
  }

  private async loop(): Promise<void> {
    // Only a full batch follows at once: what finished while a write was in flight waits for the
    // batch delay (kick's finally), else a run over 5,000 small targets wrote a handful of
    // targets per statement, back to back (877 statements, 2.5 s of the catalog's CPU, on the
    // two cores the targets' backends need). flush() writes what is left.
    await this.ready;
    do {
      const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.take(MAX_BATCH);
      if (batch === this.queue) this.queue = new TargetColumns();
      this.statements++;
      try {
        await this.write(batch);
        this.written += batch.length;
      } catch (err) {
        this.error ??= err;
      }
    } while (this.queue.length >= FULL_BATCH);
  }

  private async write(c: TargetColumns): Promise<void> {
    const runId = this.runId;
    // Array text built here (pg-array.ts), not JS arrays for pg to serialize element by element.
    const t = textArrayParam;
    await sql`
      with d as (
        select x.target, x.status, x.applied::text[] as applied, x.error::jsonb as error, x.started_at, x.duration_ms,
               x.version, x.slugs::text[] as slugs, x.sh_shard, x.sh_database, x.sh_schema, x.ev_action, x.ev_result,
               x.ev_details::jsonb as ev_details, x.ev_tenants::text[] as ev_tenants
          from unnest(${t(c.target)}::text[], ${t(c.status)}::text[], ${t(c.applied)}::text[], ${t(c.error)}::text[],
                      ${t(c.startedAt)}::timestamptz[], ${intArrayParam(c.durationMs)}::int[], ${t(c.version)}::text[], ${t(c.slugs)}::text[],
                      ${t(c.shShard)}::text[], ${t(c.shDatabase)}::text[], ${t(c.shSchema)}::text[], ${t(c.evAction)}::text[],
                      ${t(c.evResult)}::text[], ${t(c.evDetails)}::text[], ${t(c.evTenants)}::text[])
            as x(target, status, applied, error, started_at, duration_ms, version, slugs, sh_shard, sh_database, sh_schema,
                 ev_action, ev_result, ev_details, ev_tenants)
      ),
      upd as (
        update migrate_targets m
           set status = d.status, applied = d.applied, error = d.error, started_at = d.started_at,
               finished_at = now(), duration_ms = d.duration_ms
          from d
         where m.run_id = ${runId}::bigint and m.target = d.target and d.status is not null
           and m.target = any (array(select d.target from d))
        returning 1
      ),
      -- Each update names its rows with "= any (array(...))" besides the join: PostgreSQL guessed
      -- 100 rows for jsonb_to_recordset (the batch was once a JSON document) and would hash-join against a scan of every target of the
      -- run and every tenant, so a run over 5,000 targets grew with the square (17 ms a batch);
      -- an index condition keeps a batch at the cost of its own rows.
      ten as (
        update tenants t set schema_version = x.version, updated_at = now()
          from (select s.slug, d.version from d cross join lateral unnest(d.slugs) as s(slug) where d.version is not null) x
         where t.slug = x.slug and t.schema_version is distinct from x.version
           and t.slug = any (array(select unnest(d.slugs) from d where d.version is not null))
        returning 1
      ),
      shr as (
        update tenants t set schema_version = d.version, updated_at = now()
          from d
         where d.version is not null and d.sh_shard is not null
           and t.shard = d.sh_shard and t.database_name = d.sh_database and t.schema_name = d.sh_schema
           and t.status in ('active', 'suspended') and t.schema_version is distinct from d.version
        returning 1
      ),
      ev as (
        insert into events (actor, ci_job, command, tenant_slug, action, result, details)
        select ${this.actor.actor}, ${this.actor.ciJob}, ${this.command}, s.slug, d.ev_action, d.ev_result,
               d.ev_details || jsonb_build_object('run', ${runId}::bigint)
          from d cross join lateral unnest(d.ev_tenants) as s(slug)
         where d.ev_action is not null
        returning 1
      ),
      op as (
        update operations set heartbeat_at = now(), progress = ${JSON.stringify(this.progress())}::jsonb
         where id = ${runId}::bigint
        returning 1
      )
      select (select count(*) from upd) as targets`.execute(this.db);
  }
}
