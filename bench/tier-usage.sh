#!/usr/bin/env bash
# Issue 19: `usage` over 1,000 schema tenants and over a pool of 1,000 tenants with 1M rows, and
# `tenant limits apply` over 1,000 tenants.
#
#   bash bench/tier-usage.sh
#   BENCH_TENANTS=1000 BENCH_POOL_ROWS=1000000 bash bench/tier-usage.sh
#
# Starts its own one-shard embedded fleet (least-privileged shard role; removed on exit), creates
# N schema tenants (tier standard) and N pool tenants (tier free) with --from-file, loads the pool
# with POOL_ROWS rows (a workspace per tenant, the rest users) as the superuser, then times:
#   usage --model schema / --model pool (wall, process start included; peak connections from the
#   JSON), and for the pool one psql session running the hand-written
#   `select key, count(*), sum(pg_column_size(t.*)) from app.<t> t group by key` over each pool
#   table (target: usage <= 1.5x of it); BENCH_ROUNDS (at least 3, default 3) interleaved rounds,
#   medians reported; BENCH_FLOOR=1 also times bench/lib/usage-floor.mjs (node, pg, one connection,
#   the same hand-written statements, exit: the least any node program takes) in each round;
#   tenant limits apply after the tiers' statementTimeout changed (pool tenants: nothing to change), with the
#   transactions it committed on the maintenance database (pg_stat_database.xact_commit) per
#   tenant: each tenant's changes are one multi-statement query, one round trip.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"
bench_require_built

N=${BENCH_TENANTS:-1000}
# BENCH_SCHEMA=0: the pool half only (creating 1,000 schema tenants takes minutes on a busy machine).
SCHEMA=${BENCH_SCHEMA:-1}
POOL_ROWS=${BENCH_POOL_ROWS:-1000000}
export BENCH_SHARD_USER=tenantctl
bench_fleet_up 1
PORT=$BENCH_PORT_US1
W="$BENCH_DIR/work"
mkdir -p "$W"

now() { date +%s.%N; }
{
  echo 'slug,tier'
  if [[ $SCHEMA == 1 ]]; then for ((i = 1; i <= N; i++)); do printf 's%04d,standard\n' "$i"; done; fi
  for ((i = 1; i <= N; i++)); do printf 'p%04d,free\n' "$i"; done
} >"$W/tenants.csv"
t0=$(now)
bench_tctl --quiet tenant create --from-file "$W/tenants.csv" --concurrency 8 >/dev/null
bench_log "bench: created $(((1 + SCHEMA) * N)) tenants in $(bench_elapsed_ms "$t0" "$(now)") ms"

bench_psql "$PORT" tenantctl_catalog -Atc "select key from tenants where model = 'pool'" >"$W/keys.txt"
PER=$(((POOL_ROWS - N) / N))
bench_psql "$PORT" tenant_pool <<SQL
create temp table k (key uuid);
\copy k from '$W/keys.txt'
insert into app.workspaces (id, name) select key, 'w' from k;
insert into app.users (tenant_id, email, display_name) select key, 'u' || g || '@x.io', 'User ' || g from k, generate_series(1, $PER) g;
vacuum analyze;
SQL
bench_log "bench: pool loaded: $(bench_psql "$PORT" tenant_pool -Atc 'select (select count(*) from app.workspaces) + (select count(*) from app.users)') rows"

ROUNDS=${BENCH_ROUNDS:-3}
((ROUNDS >= 3)) || bench_die "BENCH_ROUNDS must be at least 3"
usage() {
  local model=$1
  local t
  t=$(now)
  bench_tctl usage --model "$model" --json >"$W/usage-$model.json"
  USAGE_MS=$(bench_elapsed_ms "$t" "$(now)")
  PEAK=$(node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const c = d.connections.us1; console.log(`${c.peak}/${c.budget}`)' "$W/usage-$model.json")
  COUNT=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tenants.length)' "$W/usage-$model.json")
}
HAND=""
for t in workspaces:id users:tenant_id projects:tenant_id tasks:tenant_id comments:tenant_id; do
  HAND+="select ${t#*:}, count(*), sum(pg_column_size(t.*)) from app.${t%%:*} t group by 1;"$'\n'
done
# ROUNDS rounds, each side once per round in turn (usage schema, usage pool, the hand-written
# group by), so every side sees the same machine; medians reported.
schema_runs=() pool_runs=() hand_runs=() floor_runs=()
FLOOR=${BENCH_FLOOR:-0}
SCHEMA_PEAK=- SCHEMA_N=0 last_schema=-
for ((r = 1; r <= ROUNDS; r++)); do
  if [[ $SCHEMA == 1 ]]; then
    usage schema
    schema_runs+=("$USAGE_MS") SCHEMA_PEAK=$PEAK SCHEMA_N=$COUNT last_schema=$USAGE_MS
  fi
  usage pool
  pool_runs+=("$USAGE_MS") POOL_PEAK=$PEAK POOL_N=$COUNT
  t=$(now)
  bench_psql "$PORT" tenant_pool -o /dev/null <<<"$HAND"
  hand_runs+=("$(bench_elapsed_ms "$t" "$(now)")")
  if [[ $FLOOR == 1 ]]; then
    t=$(now)
    PGPASSWORD="$BENCH_PASSWORD" node "$BENCH_REPO/bench/lib/usage-floor.mjs" "$PORT" tenant_pool <<<"$HAND"
    floor_runs+=("$(bench_elapsed_ms "$t" "$(now)")")
  fi
  bench_log "bench: round $r: usage schema $last_schema ms, usage pool ${pool_runs[-1]} ms, hand-written ${hand_runs[-1]} ms${floor_runs:+, node floor ${floor_runs[-1]} ms}"
done
SCHEMA_MS=-
[[ $SCHEMA == 1 ]] && SCHEMA_MS=$(bench_median "${schema_runs[@]}")
POOL_MS=$(bench_median "${pool_runs[@]}")
HAND_MS=$(bench_median "${hand_runs[@]}")
RATIO=$(awk -v a="$POOL_MS" -v b="$HAND_MS" 'BEGIN { printf "%.2f", a / b }')
if [[ $FLOOR == 1 ]]; then
  FLOOR_MS=$(bench_median "${floor_runs[@]}")
  echo "tier-usage node floor (node + pg + one connection + the hand-written statements, medians of $ROUNDS rounds): ${FLOOR_MS} ms, $(awk -v a="$FLOOR_MS" -v b="$HAND_MS" 'BEGIN { printf "%.2f", a / b }')x the hand-written ${HAND_MS} ms; usage is $(awk -v a="$POOL_MS" -v b="$FLOOR_MS" 'BEGIN { printf "%.0f", a - b }') ms above it"
fi

# limits apply: the standard tier's statementTimeout changed in the config.
sed -i -e 's/statementTimeout: 30s/statementTimeout: 45s/' -e 's/statementTimeout: 5s/statementTimeout: 6s/' "$BENCH_CONFIG"
commits() { bench_psql "$PORT" postgres -Atc "select xact_commit from pg_stat_database where datname = 'postgres'"; }
c0=$(commits)
t=$(now)
bench_tctl --quiet tenant limits apply --json >"$W/limits.json"
LIMITS_MS=$(bench_elapsed_ms "$t" "$(now)")
c1=$(commits)
CHANGED=$(node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(d.results.filter((r) => r.changes.length).length)' "$W/limits.json")
PER_TENANT=$(awk -v a="$c0" -v b="$c1" -v n="$CHANGED" 'BEGIN { if (n > 0) printf "%.2f", (b - a - 2) / n; else print "-" }')

VERDICT=$(awk -v r="$RATIO" 'BEGIN { print (r <= 1.5) ? "PASS" : "FAIL" }')
echo "tier-usage ($N schema + $N pool tenants, $POOL_ROWS pool rows, medians of $ROUNDS interleaved rounds, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)): usage schema ${SCHEMA_MS} ms ($SCHEMA_N tenants, peak connections $SCHEMA_PEAK); usage pool ${POOL_MS} ms ($POOL_N tenants, peak $POOL_PEAK) vs hand-written group by ${HAND_MS} ms (${RATIO}x, target <= 1.5x: $VERDICT); limits apply ${LIMITS_MS} ms for $CHANGED tenants, ${PER_TENANT} transactions per tenant on postgres (besides the 2 commit probes)"
