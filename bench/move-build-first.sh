#!/usr/bin/env bash
# How long an offline move of a schema tenant blocks the tenant's writes, against its total time
# (issue 16, item 7: the target is built and migrated before the fence goes up).
#
#   bash bench/move-build-first.sh                         # 300,000 rows (BENCH_ROWS), 3 runs
#   BENCH_SLOW_S=0 BENCH_RUNS=1 bash bench/move-build-first.sh
#
# Two embedded shards (us1, eu1), connected as the least-privileged shard role `tenantctl`.
# `big`, a schema tenant (tier standard) on us1, holds BENCH_ROWS rows over its 5 tables, and is
# moved to eu1 (`move big --to-shard eu1 --yes --json`): a new schema placement built at the
# tenant's version. The migrations are the repository's plus `0004_slow.sql`, a migration that
# takes BENCH_SLOW_S seconds (default 2, `select pg_sleep`), standing for a slow migration: before
# item 7 its time was inside the write block of every move. Between runs (untimed): move rollback.
# Prints per run: writeBlockedMs (fence on -> lifted, from the move's report), the total
# (durationMs), and the phases.
#   BENCH_COMPARE=/path/to/other/checkout (built): each run moves once with that checkout's
#   tenantctl ("before") and once with this one ("after"), alternating on the same fleet, so both
#   see the same machine load; medians per side.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/two-shards.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-300000}
RUNS=${BENCH_RUNS:-3}
SLOW=${BENCH_SLOW_S:-2}
command -v psql >/dev/null || bench_die "needs psql on PATH"

bench_two_shards
# The repository's migrations, plus a slow one, in a folder of the bench's own.
mkdir -p "$BENCH_DIR/migrations"
cp migrations/*.sql "$BENCH_DIR/migrations/"
if [[ $SLOW != 0 ]]; then printf -- '-- A slow migration (bench).\nselect pg_sleep(%s);\n' "$SLOW" >"$BENCH_DIR/migrations/0004_slow.sql"; fi
sed -i "s#^\(  dir: \).*/migrations\$#\1$BENCH_DIR/migrations#" "$BENCH_CONFIG"
grep -q "dir: $BENCH_DIR/migrations" "$BENCH_CONFIG" || bench_die "could not point the config at $BENCH_DIR/migrations"
bench_log "move-build-first: starting an embedded fleet of 2 shards in $BENCH_DIR"
bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
US=$BENCH_PORT_US1

bench_log "move-build-first: creating big (schema tenant, $N rows) on us1"
bench_tctl --quiet tenant create big --tier standard --shard us1 >/dev/null
seed_schema_tenant "$US" big "$N" >/dev/null

summary='const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
if (d.status !== "switched") { console.error(JSON.stringify(d)); process.exit(1); }
console.log(`${d.writeBlockedMs} ${d.durationMs} ${d.rows} ${JSON.stringify(Object.fromEntries(d.phases.map(p=>[p.phase,p.ms])))}`)'
SIDES=(after)
[[ -n ${BENCH_COMPARE:-} ]] && SIDES=(before after)
# An older build refuses keys it does not know (tenantKey.shared, migrations.lockWait): its side
# reads the same config without them.
BEFORE_CONFIG="$BENCH_DIR/before.config.yaml"
grep -Ev '^[[:space:]]*(shared|lockWait):' "$BENCH_CONFIG" >"$BEFORE_CONFIG"
declare -A blocked total
for ((i = 0; i < RUNS; i++)); do
  for side in "${SIDES[@]}"; do
    repo=$BENCH_REPO cfg=$BENCH_CONFIG
    [[ $side == before ]] && repo=$BENCH_COMPARE cfg=$BEFORE_CONFIG
    out="$BENCH_DIR/move-$side-$i.json"
    node "$repo/bin/tenantctl" --config "$cfg" --json move big --to-shard eu1 --yes >"$out" || { cat "$out" >&2; bench_die "move failed ($side)"; }
    read -r b t rows phases < <(node -e "$summary" "$out")
    bench_log "  run $((i + 1)) ${side}: writes blocked ${b} ms of ${t} ms total, ${rows} rows, phases ms ${phases}"
    blocked[$side]+=" $b" total[$side]+=" $t"
    node "$repo/bin/tenantctl" --config "$cfg" --quiet move rollback big --yes >/dev/null
  done
done

echo
echo "move-build-first: schema tenant of $N rows us1 -> eu1, slow migration ${SLOW} s, medians of $RUNS, $(nproc 2>/dev/null || echo '?') cores, load $(cut -d' ' -f1-3 /proc/loadavg), role tenantctl:"
for side in "${SIDES[@]}"; do
  # shellcheck disable=SC2086
  echo "  ${side}: writes blocked $(bench_median ${blocked[$side]}) ms of $(bench_median ${total[$side]}) ms total (runs: blocked${blocked[$side]}; total${total[$side]})"
done
