#!/usr/bin/env bash
# Cold start of `tenantctl --help` against a bare `node -e 0`.
#
#   bash bench/help-startup.sh            # 30 runs each (BENCH_RUNS=N to change, at least 20)
#   BENCH_NO_HYPERFINE=1 bash bench/help-startup.sh   # force the plain bash loop
#
# Target (issue 2): median of `tenantctl --help` within 150 ms.
# --help touches no database and reads no config, so this benchmark starts no fleet.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"
bench_require_built

RUNS=${BENCH_RUNS:-30}
((RUNS >= 20)) || bench_die "BENCH_RUNS must be at least 20"
WARMUP=${BENCH_WARMUP:-3}
TARGET_MS=150

bench_log "help-startup: $RUNS runs each after $WARMUP warm-up runs ($(bench_have_hyperfine && echo hyperfine || echo 'plain loop')), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Same interpreter for both, by absolute path, so PATH lookups do not differ.
NODE="$(command -v node)"
bench_measure 'node -e 0' "$RUNS" "$WARMUP" "$NODE -e 0"
node_ms=$BENCH_MEDIAN_MS
bench_measure 'tenantctl --help' "$RUNS" "$WARMUP" "$NODE bin/tenantctl --help"
help_ms=$BENCH_MEDIAN_MS help_min=$BENCH_MIN_MS help_max=$BENCH_MAX_MS

# What --help loads: every module, grouped by package (one extra, untimed run).
census="$(mktemp "${TMPDIR:-/tmp}/bench-census-XXXXXX.json")"
BENCH_CENSUS_OUT="$census" "$NODE" --import ./bench/lib/module-census.mjs bin/tenantctl --help >/dev/null
loaded=$(node -e '
  const c = require(process.argv[1]);
  const g = Object.entries(c.groups).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`${c.total} modules (${g})`);' "$census")
rm -f "$census"

verdict=$(awk -v m="$help_ms" -v t="$TARGET_MS" 'BEGIN { print (m <= t) ? "PASS" : "FAIL" }')
overhead=$(awk -v a="$help_ms" -v b="$node_ms" 'BEGIN { printf "%.0f", a - b }')
echo
echo "--help loads: $loaded"
echo "help-startup: tenantctl --help median ${help_ms} ms (min ${help_min}, max ${help_max}), node -e 0 median ${node_ms} ms, ratio $(bench_ratio "$help_ms" "$node_ms")x, overhead +${overhead} ms; target median <= ${TARGET_MS} ms: ${verdict}"
