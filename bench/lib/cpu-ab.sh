#!/usr/bin/env bash
# CPU of two builds of `migrate up`, interleaved on a kept fleet of schema tenants: per run, the wall,
# node's CPU (user + sys, /usr/bin/time) and the catalog's and the tenant database's backends'
# (backend-cpu.py). Each run gets a migration of its own that does not pile up on the tables
# (`comment on table tasks`): the tables do not widen run after run, as with `add column`.
#
#   BENCH_KEEP=1 BENCH_TENANTS=5000 BENCH_STATEMENTS=1 BENCH_ROUNDS=1 bash bench/migrate-schemas.sh   # prints the folder
#   node bin/tenantctl --config DIR/tenants.config.yaml dev up
#   bash bench/lib/cpu-ab.sh DIR PAIRS NEW_CHECKOUT OLD_CHECKOUT    # both built
set -euo pipefail
dir=$1 pairs=$2 new=$3 old=$4
here="$(cd "$(dirname "$0")" && pwd)"
conf="$dir/tenants.config.yaml"
pm=$(head -1 "$dir/clusters/us1/postmaster.pid")
out=$(mktemp -d)
one() { # checkout label
  local n
  n=$(($(ls "$dir/migrations" | wc -l) + 1))
  echo "comment on table tasks is 'cpu-ab $2 $n';" >"$dir/migrations/$(printf '%04d' "$n")_cpu_ab_$2_$n.sql"
  rm -f "$out/b" "$out/b.stop"
  python3 "$here/backend-cpu.py" "$pm" "$out/b" &
  local sampler=$! s e u sy
  sleep 0.1
  s=$(date +%s%N)
  /usr/bin/time -f '%U %S' -o "$out/t" node "$1/bin/tenantctl" --config "$conf" --quiet migrate up >/dev/null
  e=$(date +%s%N)
  touch "$out/b.stop"
  wait "$sampler"
  read -r u sy <"$out/t"
  echo "$2 wall_ms $(((e - s) / 1000000)) node $(echo "$u + $sy" | bc) catalog $(awk '/tenantctl_catalog/ {s+=$1} END {print s+0}' "$out/b") tenant $(awk '/tenant_schemas/ {s+=$1} END {print s+0}' "$out/b")"
}
for ((r = 1; r <= pairs; r++)); do
  if ((r % 2)); then one "$new" new; one "$old" old; else one "$old" old; one "$new" new; fi
done | tee "$out/runs"
awk '{w[$1]+=$3; n[$1]+=$5; c[$1]+=$7; t[$1]+=$9; k[$1]++} END {for (x in k) printf "mean %s: wall %.0f ms, node %.3f, catalog %.3f, tenant %.3f CPU-s over %d runs\n", x, w[x]/k[x], n[x]/k[x], c[x]/k[x], t[x]/k[x], k[x]}' "$out/runs"
rm -rf "$out"
