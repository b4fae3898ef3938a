#!/usr/bin/env bash
# Bulk onboarding of schema-model tenants: tenantctl against raw psql on the same cluster.
#
#   bash bench/bulk-create.sh
#   BENCH_TENANTS=200 BENCH_CONCURRENCY=8 BENCH_SESSIONS=4 BENCH_RUNS=3 bash bench/bulk-create.sh
#   BENCH_PROFILE=1 bash bench/bulk-create.sh   # then one more tenantctl run, traced and profiled
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
# catalog). Also reported per side: connections opened (pg_stat_database.sessions), server CPU
# (the postmaster's exited children) and the client process's CPU: on a small or busy machine,
# CPU spent is steadier than wall time. Target (issue 2): tenantctl within 1.5x of raw psql
# (one session).
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
TABLES_PER_TENANT=$(cat migrations/*.sql | grep -ciE '^[[:space:]]*create table')

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
  bench_psql "$PORT" postgres -Atc 'select coalesce(sum(sessions), 0) from pg_stat_database'
}

# CPU used by the server's exited processes (backends are children of the postmaster, which
# adds their CPU to its own cutime/cstime when they exit), in ms.
CLK_TCK=$(getconf CLK_TCK)
server_cpu_ms() {
  local pid
  pid=$(head -1 "$BENCH_DIR/clusters/us1/postmaster.pid")
  awk -v t="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13 + $14 + $15) * 1000 / t }' "/proc/$pid/stat"
}

# CPU used by this shell's finished children (the measured command), in ms, into CLIENT_CPU.
# `times` must run in this shell, not in a $(...) subshell, to see them.
client_cpu() {
  times >"$W/times"
  CLIENT_CPU=$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); n += p[1] * 60000 + p[2] * 1000 } printf "%.0f", n }' "$W/times")
}

# Around a measured command: connections opened, server CPU and client CPU.
probe_before() { S0=$(sessions_total); SC0=$(server_cpu_ms); client_cpu; CC0=$CLIENT_CPU; }
probe_after() {
  client_cpu
  CC1=$CLIENT_CPU
  sleep 0.5 # backends report their session and CPU when they exit
  S1=$(sessions_total)
  SC1=$(server_cpu_ms)
  LAST_CONNS=$((S1 - S0 - 1)) # minus the psql session that read S0
  LAST_SCPU=$((SC1 - SC0))
  LAST_CCPU=$((CC1 - CC0))
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
}

check_tenantctl() {
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
}

bench_log "bulk-create: $N schema tenants, tenantctl --concurrency $CONCURRENCY vs psql (1 and $SESSIONS sessions), $RUNS run(s), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
T_TCTL=() T_PSQL1=() T_PSQLS=() CONNS=() SCPU_T=() CCPU_T=() SCPU_1=() CCPU_1=() SCPU_S=() CCPU_S=()
line() { # label
  bench_log "  run $r: $1 $(bench_secs "$LAST_MS") wall, $LAST_CONNS connections, server CPU $(bench_secs "$LAST_SCPU"), client CPU $(bench_secs "$LAST_CCPU")"
}
for ((r = 1; r <= RUNS; r++)); do
  reset_state
  probe_before
  run_tenantctl
  probe_after
  check_tenantctl
  T_TCTL+=("$LAST_MS") CONNS+=("$LAST_CONNS") SCPU_T+=("$LAST_SCPU") CCPU_T+=("$LAST_CCPU")
  line tenantctl

  reset_state
  probe_before
  run_psql 1
  probe_after
  check_placements "$RAW_DB"
  T_PSQL1+=("$LAST_MS") SCPU_1+=("$LAST_SCPU") CCPU_1+=("$LAST_CCPU")
  line 'psql x1'

  reset_state
  probe_before
  run_psql "$SESSIONS"
  probe_after
  check_placements "$RAW_DB"
  T_PSQLS+=("$LAST_MS") SCPU_S+=("$LAST_SCPU") CCPU_S+=("$LAST_CCPU")
  line "psql x$SESSIONS"
done

tctl=$(bench_median "${T_TCTL[@]}")
p1=$(bench_median "${T_PSQL1[@]}")
ps=$(bench_median "${T_PSQLS[@]}")
# Ratios: the median of each run's own ratio (the three sides of a run ran back to back, under
# the same machine load), steadier than a ratio of medians on a shared or busy machine.
R1=() RS=()
for ((i = 0; i < RUNS; i++)); do
  R1+=("$(bench_ratio "${T_TCTL[i]}" "${T_PSQL1[i]}")")
  RS+=("$(bench_ratio "${T_TCTL[i]}" "${T_PSQLS[i]}")")
done
r1=$(bench_median "${R1[@]}" | xargs printf '%.2f')
rs=$(bench_median "${RS[@]}" | xargs printf '%.2f')
verdict=$(awk -v r="$r1" -v t="$TARGET" 'BEGIN { print (r <= t) ? "PASS" : "FAIL" }')
per=$(awk -v a="$tctl" -v n="$N" 'BEGIN { printf "%.0f", a / n }')
scpu_t=$(bench_median "${SCPU_T[@]}" | cut -d. -f1) ccpu_t=$(bench_median "${CCPU_T[@]}" | cut -d. -f1)
scpu_1=$(bench_median "${SCPU_1[@]}" | cut -d. -f1) ccpu_1=$(bench_median "${CCPU_1[@]}" | cut -d. -f1)
scpu_s=$(bench_median "${SCPU_S[@]}" | cut -d. -f1) ccpu_s=$(bench_median "${CCPU_S[@]}" | cut -d. -f1)

# Optional: one more, untimed tenantctl run with a per-query trace and a CPU profile. On the sources
# (tsx): the built bundle carries its own pg, which pg-trace.mjs cannot see.
if [[ -n "${BENCH_PROFILE:-}" ]]; then
  reset_state
  rm -rf "$W/prof"
  BENCH_TRACE_OUT="$W/trace.txt" node --import tsx --import ./bench/lib/pg-trace.mjs --cpu-prof --cpu-prof-dir "$W/prof" src/cli/main.ts \
    --config "$BENCH_CONFIG" tenant create --from-file "$W/tenants.csv" --concurrency "$CONCURRENCY" --quiet >/dev/null 2>&1 ||
    bench_die "the profiled tenantctl run failed"
  echo
  cat "$W/trace.txt"
  node bench/lib/cpu-summary.mjs "$W"/prof/*.cpuprofile 12
fi

echo
cpu_ratio=$(bench_ratio "$((scpu_t + ccpu_t))" "$((scpu_1 + ccpu_1))")
echo "tenantctl: $(bench_median "${CONNS[@]}" | cut -d. -f1) connections opened for $N tenants (psql: 1 and $SESSIONS), ${per} ms wall per tenant"
echo "CPU (server + client, medians): tenantctl $(bench_secs "$scpu_t") + $(bench_secs "$ccpu_t"), psql x1 $(bench_secs "$scpu_1") + $(bench_secs "$ccpu_1") (tenantctl uses ${cpu_ratio}x), psql x$SESSIONS $(bench_secs "$scpu_s") + $(bench_secs "$ccpu_s")"
echo "bulk-create ($N tenants, medians of $RUNS run(s), $(nproc) cores): tenantctl $(bench_secs "$tctl"), psql (1 session) $(bench_secs "$p1") (${r1}x), psql ($SESSIONS sessions) $(bench_secs "$ps") (${rs}x); target tenantctl <= ${TARGET}x psql (1 session): $verdict"
