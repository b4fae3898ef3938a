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
  while IFS= read -r line; do summaries+=("$line"); done < <(tail -3 "$out" | grep -E '^[a-z0-9-]+[:( ]')
  rm -f "$out"
}
# `bash bench/run-all.sh NAME [NAME...]`: those scripts alone (bench/NAME.sh), one after the
# other, e.g. `npm run bench -- fleet-scale` or `bash bench/run-all.sh migrate-schemas catalog-scale`.
if (($# > 0)); then
  for name in "$@"; do
    if [[ ! -f bench/${name%.sh}.sh || $name == run-all* ]]; then
      known=$(cd bench && ls ./*.sh | sed 's|^\./||; s|\.sh$||' | grep -v '^run-all$' | tr '\n' ' ')
      echo "run-all: no benchmark named '$name'. Name one of: $known(or none, for the default set)" >&2
      exit 2
    fi
  done
  for name in "$@"; do
    run bash "bench/${name%.sh}.sh"
    echo
  done
else
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
fi
echo "== summary ($(date -u +%Y-%m-%d), $(nproc) cores, node $(node --version))"
printf '%s\n' "${summaries[@]}"
