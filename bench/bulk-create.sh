#!/usr/bin/env bash
# Bulk onboarding of schema-model tenants: tenantctl against raw psql on the same cluster.
#
#   bash bench/bulk-create.sh
#   BENCH_TENANTS=200 BENCH_CONCURRENCY=8 BENCH_SESSIONS=4 BENCH_RUNS=1 bash bench/bulk-create.sh
#
# Starts its own one-shard embedded fleet in a temp folder (free ports; removed on exit), then per
# run, each side from the same fresh state (databases dropped and re-created, tenant roles
# dropped, catalog re-created and migrated, checkpoint), timed as wall clock:
#   tenantctl   node bin/tenantctl --config C tenant create --from-file tenants.csv --concurrency 8 --quiet
#               (process start included) into database tenant_schemas
#   psql x1     psql -X -q -v ON_ERROR_STOP=1 -f raw-1-1.sql: the same DDL (bench/lib/raw-ddl.mjs),
#               one session, into database raw_bench
#   psql xS     the same split into S files, S psql sessions at once
# Each side is checked afterwards (N schemas with every table, N roles; N active tenants in the
# catalog). Target (issue 2): tenantctl within 1.5x of raw psql (one session).
# hyperfine is not used here even when installed: each run needs a reset before and a check
# after, and a run takes seconds, so a plain timed loop loses nothing.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-200}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
SESSIONS=${BENCH_SESSIONS:-4}
RUNS=${BENCH_RUNS:-1}
PREFIX=b
TARGET=1.5
TENANT_DB=tenant_schemas # the config's default tenantDatabase for us1
RAW_DB=raw_bench
CATALOG_DB=tenantctl_catalog

bench_fleet_up 1
PORT=$BENCH_PORT_US1
W="$BENCH_DIR/work"
mkdir -p "$W"

# Inputs: the CSV for tenantctl and the equivalent SQL scripts for psql (same slugs).
{
  echo 'slug,tier'
  for ((i = 1; i <= N; i++)); do printf '%s%04d,standard\n' "$PREFIX" "$i"; done
} >"$W/tenants.csv"
node bench/lib/raw-ddl.mjs --out "$W" --tenants "$N" --database "$RAW_DB" --prefix "$PREFIX" --sessions "1,$SESSIONS"
TABLES_PER_TENANT=$(bench_psql "$PORT" postgres -Atc "select 1" >/dev/null && grep -ciE '^[[:space:]]*create table' migrations/*.sql | awk -F: '{ s += $2 } END { print s }')

# Same starting point for every measured side: no tenant databases or roles, an empty catalog.
reset_state() {
  bench_psql "$PORT" postgres <<SQL >/dev/null
drop database if exists $TENANT_DB with (force);
drop database if exists $RAW_DB with (force);
drop database if exists $CATALOG_DB with (force);
select format('drop role %I', rolname) from pg_roles where rolname like 'tenant\_%' \gexec
-- As tenantctl's ensureDatabase makes it (create, then revoke from public); created here so
-- neither side pays for CREATE DATABASE inside its timing.
create database $TENANT_DB;
revoke connect, temporary on database $TENANT_DB from public;
create database $RAW_DB;
revoke connect, temporary on database $RAW_DB from public;
SQL
  # Creates and migrates the catalog, as any earlier tenantctl command on the fleet would have.
  bench_tctl --quiet tenant list >/dev/null
  bench_psql "$PORT" postgres -c checkpoint >/dev/null
}

# Connections opened to the cluster so far (sessions that ended), all databases.
sessions_total() {
  sleep 0.5 # backends report their session when they exit
  bench_psql "$PORT" postgres -Atc 'select coalesce(sum(sessions), 0) from pg_stat_database'
}

check_placements() { # DB
  local got
  got=$(bench_psql "$PORT" "$1" -Atc "
    select count(distinct n.nspname) || ' ' || count(c.oid)
      from pg_namespace n left join pg_class c on c.relnamespace = n.oid and c.relkind = 'r'
     where n.nspname like 't\_${PREFIX}%'")
  local roles
  roles=$(bench_psql "$PORT" postgres -Atc "select count(*) from pg_roles where rolname like 'tenant\_${PREFIX}%'")
  [[ "$got" == "$N $((N * TABLES_PER_TENANT))" && "$roles" == "$N" ]] ||
    bench_die "$1: expected $N schemas with $((N * TABLES_PER_TENANT)) tables and $N roles, found (schemas tables) $got and $roles roles"
}

run_tenantctl() {
  local t0 t1 rc=0
  t0=$EPOCHREALTIME
  bench_tctl tenant create --from-file "$W/tenants.csv" --concurrency "$CONCURRENCY" --quiet >"$W/tenantctl.out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  if ((rc != 0)); then
    tail -20 "$W/tenantctl.out" >&2
    bench_die "tenantctl exited $rc"
  fi
  LAST_MS=$(bench_elapsed_ms "$t0" "$t1")
  local active
  active=$(bench_psql "$PORT" "$CATALOG_DB" -Atc "select count(*) from tenants where status = 'active'")
  [[ "$active" == "$N" ]] || bench_die "catalog has $active active tenants, expected $N"
  check_placements "$TENANT_DB"
}

run_psql() { # SESSIONS
  local s=$1 t0 t1 pids=() failed=0 i
  t0=$EPOCHREALTIME
  for ((i = 1; i <= s; i++)); do
    bench_psql "$PORT" "$RAW_DB" -f "$W/raw-$s-$i.sql" >"$W/psql-$s-$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  t1=$EPOCHREALTIME
  if ((failed)); then
    tail -5 "$W"/psql-"$s"-*.out >&2
    bench_die "psql ($s session(s)) failed"
  fi
  LAST_MS=$(bench_elapsed_ms "$t0" "$t1")
  check_placements "$RAW_DB"
}

bench_log "bulk-create: $N schema tenants, tenantctl --concurrency $CONCURRENCY vs psql (1 and $SESSIONS sessions), $RUNS run(s), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
T_TCTL=() T_PSQL1=() T_PSQLS=() CONNS=()
for ((r = 1; r <= RUNS; r++)); do
  reset_state
  before=$(sessions_total)
  run_tenantctl
  after=$(sessions_total)
  T_TCTL+=("$LAST_MS")
  CONNS+=("$((after - before - 1))") # minus the psql session that read "before"
  bench_log "  run $r: tenantctl $(bench_secs "$LAST_MS") ($((after - before - 1)) connections opened)"

  reset_state
  run_psql 1
  T_PSQL1+=("$LAST_MS")
  bench_log "  run $r: psql x1 $(bench_secs "$LAST_MS")"

  reset_state
  run_psql "$SESSIONS"
  T_PSQLS+=("$LAST_MS")
  bench_log "  run $r: psql x$SESSIONS $(bench_secs "$LAST_MS")"
done

tctl=$(bench_median "${T_TCTL[@]}")
p1=$(bench_median "${T_PSQL1[@]}")
ps=$(bench_median "${T_PSQLS[@]}")
r1=$(bench_ratio "$tctl" "$p1")
rs=$(bench_ratio "$tctl" "$ps")
verdict=$(awk -v r="$r1" -v t="$TARGET" 'BEGIN { print (r <= t) ? "PASS" : "FAIL" }')
per=$(awk -v a="$tctl" -v n="$N" 'BEGIN { printf "%.0f", a / n }')
echo
echo "tenantctl: $(bench_median "${CONNS[@]}" | cut -d. -f1) connections opened for $N tenants (median), ${per} ms wall per tenant"
echo "bulk-create ($N tenants${RUNS:+, median of $RUNS run(s)}): tenantctl $(bench_secs "$tctl"), psql (1 session) $(bench_secs "$p1") (${r1}x), psql ($SESSIONS sessions) $(bench_secs "$ps") (${rs}x); target tenantctl <= ${TARGET}x psql (1 session): $verdict"
