#!/usr/bin/env bash
# Cold start of `tenantctl --help` against a bare `node -e 0`; then the CPU (user + sys) of the
# start of real commands against a one-shard fleet.
#
#   bash bench/help-startup.sh            # 30 runs each (BENCH_RUNS=N to change, at least 20)
#   BENCH_NO_HYPERFINE=1 bash bench/help-startup.sh   # force the plain bash loop
#   BENCH_COMMANDS=0 bash bench/help-startup.sh       # --help only: no fleet
#   BENCH_BASE=/path/to/older/built/checkout bash bench/help-startup.sh   # commands: old/new pairs
#
# Target (issue 2): median of `tenantctl --help` within 150 ms.
# --help touches no database and reads no config; the commands part starts its own fleet.
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

[[ "${BENCH_COMMANDS:-1}" == 0 ]] && exit 0

# The commands part: CPU, not wall time (the machine may be busy), from bash's `times` (children's
# user and sys, 1 ms resolution) around each run. With BENCH_BASE, every command runs as an
# interleaved pair (old first in odd rounds, new first in even ones) on the same fleet.
CMD_RUNS=${BENCH_CMD_RUNS:-20}
((CMD_RUNS >= 20)) || bench_die "BENCH_CMD_RUNS must be at least 20"
bench_fleet_up 1
bench_tctl --quiet tenant create acme --tier standard >/dev/null
bench_tctl --quiet tenant create bob --tier free >/dev/null
bench_tctl --quiet backup create acme >/dev/null
SIDES=(new)
[[ -n "${BENCH_BASE:-}" ]] && SIDES=(old new)
bin_of() { if [[ $1 == old ]]; then echo "$BENCH_BASE/bin/tenantctl"; else echo "$BENCH_REPO/bin/tenantctl"; fi; }

# Children's user + sys so far, in ms, into CPU_MS. `times` runs in this shell (a subshell would
# count its own children, none) and its second line reads "0m0.120s 0m0.030s".
TIMES_FILE="$BENCH_DIR/times.txt"
children_cpu_ms() {
  times >"$TIMES_FILE"
  local u s
  { read -r _ _ && read -r u s; } <"$TIMES_FILE"
  CPU_MS=$(awk -v u="$u" -v s="$s" 'function ms(t, p) { split(t, p, "m"); return p[1] * 60000 + p[2] * 1000 } BEGIN { printf "%.0f", ms(u) + ms(s) }')
}

declare -A CPU
run_cpu() { # run_cpu SIDE ARGS... → appends the run's CPU ms to CPU[SIDE]
  local side=$1 before after
  shift
  local bin
  bin=$(bin_of "$side")
  children_cpu_ms
  before=$CPU_MS
  node "$bin" --config "$BENCH_CONFIG" "$@" >/dev/null 2>&1 || bench_die "$side: tenantctl $* failed"
  children_cpu_ms
  after=$CPU_MS
  CPU[$side]+="$((after - before)) "
}

bench_log "help-startup commands: CPU user+sys, median of $CMD_RUNS runs per side$( [[ -n "${BENCH_BASE:-}" ]] && echo ", old ($BENCH_BASE) and new interleaved"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n%-18s %s\n' 'command' "$(for s in "${SIDES[@]}"; do printf '%-10s' "$s"; done)$( [[ ${#SIDES[@]} == 2 ]] && echo 'new/old')"
n=0
for cmd in '--version' 'resolve acme' 'tenant show acme' 'tenant create' 'migrate status' 'backup list'; do
  CPU=()
  for ((i = 0; i < CMD_RUNS; i++)); do
    order=("${SIDES[@]}")
    ((i % 2)) && [[ ${#SIDES[@]} == 2 ]] && order=(new old)
    for side in "${order[@]}"; do
      if [[ $cmd == 'tenant create' ]]; then
        n=$((n + 1))
        run_cpu "$side" --quiet tenant create "s$n" --tier standard
      else
        # shellcheck disable=SC2086 # the command's words
        run_cpu "$side" $cmd
      fi
    done
  done
  line=$(printf '%-18s' "$cmd")
  declare -A MED=()
  for side in "${SIDES[@]}"; do
    # shellcheck disable=SC2086 # one number per word
    MED[$side]=$(bench_median ${CPU[$side]})
    line+=$(printf '%-10s' "${MED[$side]} ms")
  done
  [[ ${#SIDES[@]} == 2 ]] && line+="$(bench_ratio "${MED[new]}" "${MED[old]}")x"
  echo "$line"
done
echo "help-startup commands: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
