#!/usr/bin/env bash
# Audit time for N schema tenants and for a pool of N tenants, and the peak connections held.
#
#   bash bench/audit.sh
#   BENCH_TENANTS=1000 BENCH_CONCURRENCY=8 bash bench/audit.sh
#
# Starts its own one-shard embedded fleet (temp folder, free ports, removed on exit), onboards N
# schema tenants and N pool tenants with `tenant create --from-file` (not timed), then times
# `tenantctl audit --json` (process start included) over each model, while a psql loop samples
# pg_stat_activity every 50 ms for tenantctl's connections (application_name tenantctl%). The
# budget is the shard's maxConnections (10). The bench fleet connects as the superuser, so the
# audit reports the shard role as privileged: that finding is expected here.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-1000}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
bench_fleet_up 1
PORT=$BENCH_PORT_US1
W="$BENCH_DIR/work"
mkdir -p "$W"

for model in schema pool; do
  { echo 'slug,model,shard'; for ((i = 1; i <= N; i++)); do printf '%s%04d,%s,us1\n' "${model:0:1}" "$i" "$model"; done; } >"$W/$model.csv"
  bench_log "bench: onboarding $N $model tenants (not timed)"
  bench_tctl tenant create --from-file "$W/$model.csv" --concurrency "$CONCURRENCY" --quiet >"$W/create-$model.out" 2>&1 ||
    { tail -20 "$W/create-$model.out" >&2; bench_die "onboarding $model tenants failed"; }
done

sample() { # writes the peak count to $1 until killed
  local peak=0 n
  while :; do
    n=$(bench_psql "$PORT" postgres -Atc "select count(*) from pg_stat_activity where application_name like 'tenantctl%'" 2>/dev/null || echo 0)
    ((n > peak)) && peak=$n && echo "$peak" >"$1"
    sleep 0.05
  done
}

for model in schema pool; do
  echo 0 >"$W/peak-$model"
  sample "$W/peak-$model" &
  SAMPLER=$!
  t0=$(date +%s.%N)
  rc=0
  bench_tctl audit --model "$model" --concurrency "$CONCURRENCY" --fail-on critical --json >"$W/audit-$model.json" 2>"$W/audit-$model.err" || rc=$?
  t1=$(date +%s.%N)
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  ms=$(bench_elapsed_ms "$t0" "$t1")
  read -r findings units failed selfpeak < <(node -e '
    const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const c = Object.values(d.summary.connections)[0] ?? { peak: 0 };
    console.log(d.summary.findings, d.summary.units, d.summary.unitsFailed, c.peak);' "$W/audit-$model.json")
  printf '%-7s %5d tenants  audit %8s  (exit %d)  units %d (failed %d)  findings %d  peak connections: pg_stat_activity %d, tenantctl %d (budget 10)\n' \
    "$model" "$N" "$(bench_secs "$ms")" "$rc" "$units" "$failed" "$findings" "$(cat "$W/peak-$model")" "$selfpeak"
  [[ "$findings" -gt 0 ]] && node -e '
    const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const by = {}; for (const f of d.findings) by[f.check] = (by[f.check] ?? 0) + 1; console.log("        findings by check:", JSON.stringify(by));' "$W/audit-$model.json"
done
