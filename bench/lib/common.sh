# Shared helpers for the bench/*.sh scripts. Source it; do not run it.
#
#   source "$(dirname "$0")/lib/common.sh"
#   bench_fleet_up 1           # own embedded fleet in a temp folder, torn down on exit
#   bench_measure NAME RUNS WARMUP CMD   # median in BENCH_MEDIAN_MS (hyperfine, or a bash loop)

BENCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_TENANTCTL=(node "$BENCH_REPO/bin/tenantctl")
BENCH_DIR=""
BENCH_CONFIG=""

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

bench_require_built() {
  [[ -f "$BENCH_REPO/dist/cli/main.js" ]] || bench_die "tenantctl is not built: run \`npm run build\` in $BENCH_REPO first"
}

# The tenantctl CLI on the bench fleet's config.
bench_tctl() { "${BENCH_TENANTCTL[@]}" --config "$BENCH_CONFIG" "$@"; }

# psql as the shard's superuser: bench_psql PORT DB [psql args...]
bench_psql() {
  local port=$1 db=$2
  shift 2
  PGPASSWORD="$BENCH_PASSWORD" PGCONNECT_TIMEOUT=10 PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# VACUUM ANALYZE each database as the superuser: bench_settle PORT DB...
bench_settle() {
  local port=$1 db
  shift
  for db in "$@"; do bench_psql "$port" "$db" -c 'vacuum analyze' >/dev/null; done
}

# Autovacuum workers running on the cluster now: bench_autovacuum_workers PORT
bench_autovacuum_workers() {
  bench_psql "$1" postgres -Atc "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'"
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$BENCH_DIR" && -d "$BENCH_DIR" ]]; then
    if [[ -n "$BENCH_CONFIG" && -f "$BENCH_CONFIG" ]]; then
      "${BENCH_TENANTCTL[@]}" --config "$BENCH_CONFIG" --quiet dev down >/dev/null 2>&1 ||
        bench_log "bench: dev down failed; clusters may still run from $BENCH_DIR/clusters"
    fi
    if [[ -n "${BENCH_KEEP:-}" ]]; then
      bench_log "bench: BENCH_KEEP set, leaving $BENCH_DIR"
    else
      rm -rf "$BENCH_DIR"
    fi
  fi
  exit "$rc"
}

# Start a throwaway fleet of N embedded shards (default 1) on free ports, in a temp folder that
# the postgres OS user can reach. Sets BENCH_DIR, BENCH_CONFIG, BENCH_PASSWORD, BENCH_PORT_US1...
# The trap stops the clusters and deletes the folder however the script ends.
bench_fleet_up() {
  local shards=${1:-1}
  bench_require_built
  BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantctl-bench-XXXXXX")"
  # mktemp makes 0700; the postgres OS user (clusters run as it when we are root) must get through.
  chmod 0755 "$BENCH_DIR"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  eval "$(node "$BENCH_REPO/bench/lib/fleet-config.mjs" "$BENCH_DIR" "$shards")"
  [[ -n "$BENCH_CONFIG" ]] || bench_die "could not write the fleet config"
  bench_log "bench: starting an embedded fleet ($shards shard(s)) in $BENCH_DIR"
  if ! bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1; then
    cat "$BENCH_DIR/dev-up.log" >&2
    bench_die "dev up failed"
  fi
}

bench_have_hyperfine() { [[ -z "${BENCH_NO_HYPERFINE:-}" ]] && command -v hyperfine >/dev/null 2>&1; }

# Milliseconds between two $EPOCHREALTIME readings (taken without spawning anything).
bench_elapsed_ms() { awk -v a="${1/,/.}" -v b="${2/,/.}" 'BEGIN { printf "%.3f", (b - a) * 1000 }'; }

# Median of numbers given as arguments (prints it).
bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Time a command RUNS times (after WARMUP untimed runs), output discarded.
# Sets BENCH_MEDIAN_MS, BENCH_MIN_MS, BENCH_MAX_MS. Uses hyperfine when installed (unless
# BENCH_NO_HYPERFINE is set), running the command without a shell in between (-N) when it has no
# shell syntax; otherwise a plain loop in this shell.
#   bench_measure NAME RUNS WARMUP 'node bin/tenantctl --help'
bench_measure() {
  local name=$1 runs=$2 warmup=$3 cmd=$4
  if bench_have_hyperfine; then
    local json
    json="$(mktemp "${TMPDIR:-/tmp}/bench-hf-XXXXXX.json")"
    local shell_flag=(-N)
    [[ "$cmd" =~ [\|\&\;\<\>\$\`\'\"] ]] && shell_flag=(--shell=bash)
    hyperfine "${shell_flag[@]}" --style basic --warmup "$warmup" --runs "$runs" --export-json "$json" -n "$name" "$cmd" >&2 ||
      { rm -f "$json"; bench_die "$name failed under hyperfine"; }
    read -r BENCH_MEDIAN_MS BENCH_MIN_MS BENCH_MAX_MS < <(node -e '
      const r = require(process.argv[1]).results[0];
      const ms = (s) => (s * 1000).toFixed(1);
      console.log(ms(r.median), ms(r.min), ms(r.max));' "$json")
    rm -f "$json"
  else
    local i t0 t1 times=()
    for ((i = 0; i < warmup; i++)); do eval "$cmd" >/dev/null 2>&1 || bench_die "$name failed: $cmd"; done
    for ((i = 0; i < runs; i++)); do
      t0=$EPOCHREALTIME
      eval "$cmd" >/dev/null 2>&1 || bench_die "$name failed: $cmd"
      t1=$EPOCHREALTIME
      times+=("$(bench_elapsed_ms "$t0" "$t1")")
    done
    BENCH_MEDIAN_MS=$(bench_median "${times[@]}")
    BENCH_MIN_MS=$(printf "%s\n" "${times[@]}" | sort -g | head -1 | xargs printf "%.1f")
    BENCH_MAX_MS=$(printf "%s\n" "${times[@]}" | sort -g | tail -1 | xargs printf "%.1f")
    bench_log "  $name: median ${BENCH_MEDIAN_MS} ms (min ${BENCH_MIN_MS}, max ${BENCH_MAX_MS}, $runs runs, plain loop)"
  fi
}

# a / b with 2 decimals.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# ms → seconds with 1 decimal (or 2 under 10 s).
bench_secs() { awk -v a="$1" 'BEGIN { s = a / 1000; if (s < 10) printf "%.2fs", s; else printf "%.1fs", s }'; }
