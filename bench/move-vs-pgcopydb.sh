#!/usr/bin/env bash
# An offline move of a schema tenant between two clusters, against the tools operators use for the
# same copy today (issue 22, item 5): `pgcopydb clone` of the tenant's schema, and
# `pg_dump -Fd -j | pg_restore -j` of it (the fallback when pgcopydb cannot run here).
#
#   bash bench/move-vs-pgcopydb.sh                        # 1,500,000 rows (BENCH_ROWS), 3 rounds
#   BENCH_ROWS=300000 BENCH_RUNS=1 bash bench/move-vs-pgcopydb.sh
#   BENCH_COMPARE=/path/to/other/checkout (built): each round also moves (and rolls back) with
#   that checkout's tenantctl, so two versions of the move see the same machine load
#   BENCH_DUMP=0: no pg_dump | pg_restore rounds (a shorter invocation, for the lock)
#   BENCH_TO_MODEL=database: the move goes into a database placement on eu1 (--to-model database)
#
# Two embedded shards (us1, eu1), connected as the least-privileged shard role `tenantctl`; every
# tool runs as that role too. `big`, a schema tenant on us1, holds BENCH_ROWS rows over its 5
# tables (as bench/move-build-first.sh seeds it), vacuumed and analyzed at the source.
# Each round, interleaved so all three see the same machine load:
#   tenantctl  move big --to-shard eu1 --yes --json (build, fence, copy, rebuild, verify, switch);
#              untimed after: move rollback
#   pgcopydb   pgcopydb clone --filters (include-only-schema t_big) --no-owner --no-acl into a fresh
#              database on eu1 (created and dropped untimed), BENCH_JOBS table and index jobs
#   pg_dump    pg_dump -Fd -j BENCH_JOBS -n t_big to a folder, pg_restore -j BENCH_JOBS --no-owner
#              --no-acl into a fresh database on eu1 (both timed)
# Prints per round each tool's wall time and the move's phases, and `unphased`: the move's
# durationMs less the sum of its phases (time the report does not account for). Then medians and
# the ratios tenantctl / pgcopydb and tenantctl / pg_dump. pgcopydb is skipped (said so) when it
# is not on PATH; it must be built for the servers' major version.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/two-shards.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-1500000}
RUNS=${BENCH_RUNS:-3}
JOBS=${BENCH_JOBS:-4}
TO_MODEL=()
[[ -n ${BENCH_TO_MODEL:-} ]] && TO_MODEL=(--to-model "$BENCH_TO_MODEL")
command -v psql >/dev/null || bench_die "needs psql on PATH"
command -v pg_dump >/dev/null || bench_die "needs pg_dump and pg_restore on PATH"
HAVE_PGCOPYDB=1
command -v pgcopydb >/dev/null || { HAVE_PGCOPYDB=0; bench_log "move-vs-pgcopydb: pgcopydb is not on PATH; comparing with pg_dump | pg_restore only"; }

bench_two_shards
bench_log "move-vs-pgcopydb: starting an embedded fleet of 2 shards in $BENCH_DIR"
bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
role_url() { echo "postgres://tenantctl:$BENCH_PASSWORD@127.0.0.1:$1/$2"; }
US=$BENCH_PORT_US1
EU=$BENCH_PORT_EU1
now_ms() { date +%s%3N; }

bench_log "move-vs-pgcopydb: creating big (schema tenant, $N rows) on us1"
bench_tctl --quiet tenant create big --tier standard --shard us1 >/dev/null
seed_schema_tenant "$US" big "$N" >/dev/null
SIZE=$(role_psql "$US" tenant_schemas -At -c "select pg_size_pretty(sum(pg_total_relation_size(c.oid))) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 't_big'")
printf '[include-only-schema]\nt_big\n' >"$BENCH_DIR/filters.ini"
fresh_db() { role_psql "$EU" postgres -c "drop database if exists bench_copy" -c "create database bench_copy"; }

summary='const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
if (d.status !== "switched") { console.error(JSON.stringify(d)); process.exit(1); }
const sum=d.phases.reduce((n,p)=>n+p.ms,0);
console.log(`${d.durationMs} ${d.durationMs-sum} ${JSON.stringify(Object.fromEntries(d.phases.map(p=>[p.phase,p.ms])))}`)'
tct=() pgc=() dump=() cmp=()
for ((i = 1; i <= RUNS; i++)); do
  out="$BENCH_DIR/move-$i.json"
  bench_tctl --json move big --to-shard eu1 "${TO_MODEL[@]}" --yes >"$out" || { cat "$out" >&2; bench_die "move failed"; }
  read -r t unphased phases < <(node -e "$summary" "$out")
  bench_log "  round $i tenantctl: ${t} ms (unphased ${unphased} ms), phases ms ${phases}"
  tct+=("$t")
  bench_tctl --quiet move rollback big --yes >/dev/null

  if [[ -n ${BENCH_COMPARE:-} ]]; then
    out="$BENCH_DIR/move-compare-$i.json"
    node "$BENCH_COMPARE/bin/tenantctl" --config "$BENCH_CONFIG" --json move big --to-shard eu1 "${TO_MODEL[@]}" --yes >"$out" || { cat "$out" >&2; bench_die "move failed (BENCH_COMPARE)"; }
    read -r t unphased phases < <(node -e "$summary" "$out")
    bench_log "  round $i tenantctl at BENCH_COMPARE: ${t} ms, phases ms ${phases}"
    cmp+=("$t")
    node "$BENCH_COMPARE/bin/tenantctl" --config "$BENCH_CONFIG" --quiet move rollback big --yes >/dev/null
  fi

  if [[ $HAVE_PGCOPYDB == 1 ]]; then
    fresh_db
    rm -rf "$BENCH_DIR/pgcopydb"
    t0=$(now_ms)
    pgcopydb clone --source "$(role_url "$US" tenant_schemas)" --target "$(role_url "$EU" bench_copy)" \
      --dir "$BENCH_DIR/pgcopydb" --filters "$BENCH_DIR/filters.ini" --table-jobs "$JOBS" --index-jobs "$JOBS" \
      --no-owner --no-acl --skip-large-objects >"$BENCH_DIR/pgcopydb-$i.log" 2>&1 || { tail -20 "$BENCH_DIR/pgcopydb-$i.log" >&2; bench_die "pgcopydb clone failed"; }
    t1=$(now_ms)
    bench_log "  round $i pgcopydb clone: $((t1 - t0)) ms"
    pgc+=("$((t1 - t0))")
  fi

  [[ ${BENCH_DUMP:-1} == 0 ]] && continue
  fresh_db
  rm -rf "$BENCH_DIR/dump"
  t0=$(now_ms)
  PGPASSWORD="$BENCH_PASSWORD" pg_dump -h 127.0.0.1 -p "$US" -U tenantctl -d tenant_schemas -n t_big -Fd -j "$JOBS" -f "$BENCH_DIR/dump"
  PGPASSWORD="$BENCH_PASSWORD" pg_restore -h 127.0.0.1 -p "$EU" -U tenantctl -d bench_copy -j "$JOBS" --no-owner --no-acl "$BENCH_DIR/dump"
  t1=$(now_ms)
  bench_log "  round $i pg_dump -Fd -j$JOBS | pg_restore -j$JOBS: $((t1 - t0)) ms"
  dump+=("$((t1 - t0))")
done
role_psql "$EU" postgres -c "drop database if exists bench_copy"

mt=$(bench_median "${tct[@]}")
echo
echo "move-vs-pgcopydb: schema tenant of $N rows ($SIZE) us1 -> eu1${BENCH_TO_MODEL:+ (into a $BENCH_TO_MODEL placement)}, medians of $RUNS interleaved rounds, $JOBS jobs, $(nproc 2>/dev/null || echo '?') cores, load $(cut -d' ' -f1-3 /proc/loadavg), role tenantctl:"
if [[ ${#dump[@]} -gt 0 ]]; then
  md=$(bench_median "${dump[@]}")
  echo "  tenantctl move ${mt} ms (runs ${tct[*]}); pg_dump|pg_restore ${md} ms (runs ${dump[*]}): ratio $(bench_ratio "$mt" "$md")"
else
  echo "  tenantctl move ${mt} ms (runs ${tct[*]}); pg_dump|pg_restore not run (BENCH_DUMP=0)"
fi
if [[ -n ${BENCH_COMPARE:-} ]]; then
  mc=$(bench_median "${cmp[@]}")
  echo "  tenantctl at $BENCH_COMPARE ${mc} ms (runs ${cmp[*]}): this checkout / it $(bench_ratio "$mt" "$mc")"
fi
if [[ $HAVE_PGCOPYDB == 1 ]]; then
  mp=$(bench_median "${pgc[@]}")
  echo "  pgcopydb clone ${mp} ms (runs ${pgc[*]}): tenantctl / pgcopydb $(bench_ratio "$mt" "$mp")"
fi
