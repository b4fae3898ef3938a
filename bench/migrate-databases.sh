#!/usr/bin/env bash
# migrate up over 100 database tenants on one shard, against raw psql.
#
#   bash bench/migrate-databases.sh             # 100 tenants, 3 rounds (BENCH_TENANTS, BENCH_ROUNDS)
#
# Each round adds one migration of three statements (add a column, create an index, add a
# column) and times, process start included:
#   tenantctl  `tenantctl migrate up --quiet` (default concurrency, the shard's budget)
#   raw psql   one psql per database applying the same statements, 4 at a time (xargs -P4)
# Target (issue 3): tenantctl within 2x of raw psql.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/migrate-seed.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-100}
ROUNDS=${BENCH_ROUNDS:-3}
bench_fleet_up 1
bench_migrations_dir
bench_log "migrate-databases: seeding $N database tenants"
bench_seed_databases "$N" d
DBS=(t_dseed)
for ((i = 1; i < N; i++)); do DBS+=("t_d$i"); done

bench_raw_run() {
  local tag=$1
  bench_round_sql "$tag" | sed '1i set search_path = app;' >"$BENCH_DIR/raw.sql"
  printf '%s\n' "${DBS[@]}" | PGPASSWORD="$BENCH_PASSWORD" xargs -P4 -I{} \
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BENCH_PORT" -U postgres -d {} -f "$BENCH_DIR/raw.sql"
}

bench_log "migrate-databases: $ROUNDS rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
tctl=() raw=()
for ((r = 1; r <= ROUNDS; r++)); do
  bench_round_sql "bench$r" >"$BENCH_MIGRATIONS/$(printf '%04d' $((3 + r)))_bench$r.sql"
  bench_time bench_tctl --quiet migrate up
  tctl+=("$BENCH_LAST_MS")
  bench_time bench_raw_run "raw$r"
  raw+=("$BENCH_LAST_MS")
  bench_log "  round $r: tenantctl ${tctl[-1]} ms, raw psql ${raw[-1]} ms"
done
applied=$(for db in "${DBS[@]}"; do bench_psql "$BENCH_PORT" "$db" -Atc "select count(*) from tenantctl.schema_migrations where name like '%_bench%'"; done | awk '{ s += $1 } END { print s }')
[[ $applied -eq $((N * ROUNDS)) ]] || bench_die "expected $((N * ROUNDS)) applied rows, found $applied"

t_med=$(bench_median "${tctl[@]}")
r_med=$(bench_median "${raw[@]}")
bench_measure 'migrate up, nothing pending' 5 1 "node bin/tenantctl --config '$BENCH_CONFIG' --quiet migrate up"
idle=$BENCH_MEDIAN_MS
ratio=$(bench_ratio "$t_med" "$r_med")
v1=$(awk -v x="$ratio" 'BEGIN { print (x <= 2) ? "PASS" : "FAIL" }')
echo
echo "migrate-databases: $N database tenants, 3 statements: tenantctl median ${t_med} ms, raw psql (per database, 4 at a time) median ${r_med} ms, ratio ${ratio}x (target <= 2x): $v1"
echo "migrate-databases: nothing pending: median ${idle} ms"
