#!/usr/bin/env bash
# Every benchmark, one after the other (`npm run bench`). Each prints its own summary line; the
# summaries are repeated at the end. Environment variables of the scripts pass through
# (BENCH_RUNS is the runs of help-startup; BENCH_BULK_RUNS those of bulk-create).
set -euo pipefail
cd "$(dirname "$0")/.."
summaries=()
run() {
  local out
  out="$(mktemp "${TMPDIR:-/tmp}/bench-out-XXXXXX")"
  "$@" | tee "$out"
  # Each script ends with its summary line(s), named after the script.
  while IFS= read -r line; do summaries+=("$line"); done < <(tail -3 "$out" | grep -E '^(help-startup|bulk-create|migrate-[a-z]+)[: ]')
  rm -f "$out"
}
# `bash bench/run-all.sh fleet-scale`: that script alone (its summary is its last lines).
if [[ ${1:-} == fleet-scale ]]; then
  exec bash bench/fleet-scale.sh
fi
run bash bench/help-startup.sh
echo
BENCH_RUNS=${BENCH_BULK_RUNS:-1} run bash bench/bulk-create.sh
echo
run bash bench/migrate-schemas.sh
echo
run bash bench/migrate-databases.sh
echo
run bash bench/migrate-rss.sh
echo
echo "== summary ($(date -u +%Y-%m-%d), $(nproc) cores, node $(node --version))"
printf '%s\n' "${summaries[@]}"
