#!/usr/bin/env bash
# migrate up over 1000 schema tenants on one shard, against raw psql.
#
#   bash bench/migrate-schemas.sh               # 1000 tenants, 3 rounds (BENCH_TENANTS, BENCH_ROUNDS, BENCH_STATEMENTS=1 for one cheap statement;
#                                               # BENCH_TCTL_ARGS adds flags to migrate up, e.g. "--concurrency 4";
#                                               # BENCH_BASE=/path/to/older/built/checkout runs it too, each round)
#
# Each round adds one migration of three statements (add a column, create an index, add a
# column) and times, process start included:
#   tenantctl  `tenantctl migrate up --quiet` (default concurrency, the shard's budget)
#   raw psql   the same three statements on the same schemas, 4 psql sessions in parallel
#              (a quarter of the schemas each; every statement in autocommit)
# then times `migrate up` again with nothing pending.
# Targets (issue 3): tenantctl within 2x of raw psql (aiming for 1.5x); nothing pending within 1 s.
# With BENCH_STATEMENTS=1 (issue 22): within 1.5x, and round N no slower than round 1 (history kept).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/migrate-seed.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-1000}
ROUNDS=${BENCH_ROUNDS:-3}
bench_fleet_up 1
bench_migrations_dir
bench_log "migrate-schemas: seeding $N schema tenants"
bench_seed_schemas "$N" s
# The seed wrote hundreds of thousands of catalog rows; autovacuum's pass over them would run during
# the first timed command, which is tenantctl's (its round 1 was 0.4–0.7 s slower than its other
# rounds in every run while psql's was not). Settle it first, for both.
bench_settle "$BENCH_PORT" tenant_schemas tenantctl_catalog

# 4 files of raw statements for one round: bench_raw_files TAG
bench_raw_files() {
  local tag=$1 j i stmts
  stmts="$(bench_round_sql "$tag")"
  for ((j = 0; j < 4; j++)); do
    {
      ((j == 0)) && printf 'set search_path = t_sseed;\n%s\n' "$stmts"
      for ((i = j + 1; i < N; i += 4)); do printf 'set search_path = t_s%d;\n%s\n' "$i" "$stmts"; done
    } >"$BENCH_DIR/raw-$j.sql"
  done
}
bench_raw_run() {
  local j
  for ((j = 0; j < 4; j++)); do bench_psql "$BENCH_PORT" tenant_schemas -f "$BENCH_DIR/raw-$j.sql" & done
  wait
}

bench_log "migrate-schemas: $ROUNDS rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# BENCH_BASE (an older checkout, built): each round also runs its tenantctl on a migration of its
# own, the two builds taking turns at going first; the ratios then compare both with the same psql.
sides=(new)
[[ -n ${BENCH_BASE:-} ]] && sides=(new old)
tctl=() raw=() base=() files=0
# psql's round: its own statements (a column of its own) on the same schemas.
raw_round() {
  bench_raw_files "raw$1"
  bench_time bench_raw_run
  raw+=("$BENCH_LAST_MS")
}
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${sides[@]}")
  ((r % 2 == 0 && ${#sides[@]} == 2)) && order=(old new)
  # psql and tenantctl take turns at going first (psql in even rounds): whichever goes first in
  # round 1 meets the seeded schemas' catalog pages cold, and tenantctl always going first made
  # its round 1 0.3-0.4 s slower than its other rounds while psql's never was.
  first=tenantctl
  ((r % 2 == 0)) && first=psql
  [[ $first == psql ]] && raw_round "$r"
  for side in "${order[@]}"; do
    files=$((files + 1))
    bench_round_sql "bench$files" >"$BENCH_MIGRATIONS/$(printf '%04d' $((3 + files)))_bench$files.sql"
    av=$(bench_autovacuum_workers "$BENCH_PORT")
    if [[ $side == new ]]; then
      bench_time bench_tctl --quiet migrate up ${BENCH_TCTL_ARGS:-}
      tctl+=("$BENCH_LAST_MS")
    else
      bench_time node "$BENCH_BASE/bin/tenantctl" --config "$BENCH_CONFIG" --quiet migrate up ${BENCH_TCTL_ARGS:-}
      base+=("$BENCH_LAST_MS")
    fi
  done
  [[ $first == tenantctl ]] && raw_round "$r"
  bench_log "  round $r ($first first): tenantctl ${tctl[-1]} ms$([[ ${#base[@]} -gt 0 ]] && echo ", BENCH_BASE ${base[-1]} ms (${order[0]} first)"), raw psql ${raw[-1]} ms (autovacuum workers when the last tenantctl started: $av)"
done
# Every target really got every round's migration.
done_rows=$(bench_psql "$BENCH_PORT" tenant_schemas -Atc "select count(*) from tenantctl.schema_migrations where name like '%_bench%'")
[[ $done_rows -eq $((N * files)) ]] || bench_die "expected $((N * files)) applied rows, found $done_rows"

t_med=$(bench_median "${tctl[@]}")
r_med=$(bench_median "${raw[@]}")
bench_measure 'migrate up, nothing pending' 5 1 "node bin/tenantctl --config '$BENCH_CONFIG' --quiet migrate up"
idle=$BENCH_MEDIAN_MS
ratio=$(bench_ratio "$t_med" "$r_med")
# One cheap statement shows the per-target cost: issue 22 asks for 1.5x there, 2x for three.
limit=2
[[ ${BENCH_STATEMENTS:-3} == 1 ]] && limit=1.5
v1=$(awk -v x="$ratio" -v l="$limit" 'BEGIN { print (x <= l) ? "PASS" : "FAIL" }')
per_round=()
for ((r = 0; r < ROUNDS; r++)); do per_round+=("$(bench_ratio "${tctl[r]}" "${raw[r]}")"); done
v2=$(awk -v m="$idle" 'BEGIN { print (m <= 1000) ? "PASS" : "FAIL" }')
echo
echo "migrate-schemas: $N schema tenants, ${BENCH_STATEMENTS:-3} statement(s) per round, $ROUNDS rounds: tenantctl median ${t_med} ms, raw psql (4 sessions) median ${r_med} ms, ratio ${ratio}x (target <= ${limit}x): $v1"
echo "migrate-schemas: per-round ratios ${per_round[*]}; round $ROUNDS against round 1: tenantctl ${tctl[-1]} / ${tctl[0]} ms, raw psql ${raw[-1]} / ${raw[0]} ms"
echo "migrate-schemas: nothing pending: median ${idle} ms (target <= 1000 ms): $v2"
if [[ ${#base[@]} -gt 0 ]]; then
  b_med=$(bench_median "${base[@]}")
  echo "migrate-schemas: BENCH_BASE ($BENCH_BASE) median ${b_med} ms, ratio $(bench_ratio "$b_med" "$r_med")x against the same psql rounds"
fi
