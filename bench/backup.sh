#!/usr/bin/env bash
# Per-tenant backup and restore against raw psql / pg_dump on the same cluster (issue 9).
#
#   bash bench/backup.sh                 # a pool tenant and a schema tenant of 1,000,000 rows (BENCH_ROWS)
#   BENCH_ROWS=100000 BENCH_RUNS=3 bash bench/backup.sh
#
# The fleet connects as the least-privileged shard role `tenantctl` (LOGIN CREATEDB CREATEROLE),
# and every psql / pg_dump / pg_restore of the baselines runs as that role too.
# Pool: `big` (BENCH_ROWS rows over its 5 tables) among 3 other pool tenants (BENCH_ROWS/4 each).
#   backup:  tenantctl backup create big   vs  psql: 5 x \copy (select cols from app.t where key = …) to file
#   restore: tenantctl restore <id> --as … vs  psql: begin; delete the tenant's rows; 5 x \copy app.t from file; commit
#            (the shard role has the session_replication_role grant of dev up: foreign keys
#            checked once per tenant; psql's \copy checks them row by row)
# Schema: `sbig`, the same rows in its own schema.
#   backup:  tenantctl backup create sbig  vs  pg_dump -n t_sbig -Fc
#   restore: tenantctl restore <id> --as … vs  pg_restore -d <fresh database> of that dump
# Peak RSS (GNU time) of backup and restore at BENCH_ROWS/10 and BENCH_ROWS.
# Targets: pool backup <= 1.3x, pool restore <= 1.5x, schema <= 1.3x both ways; RSS flat.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
[[ -x /usr/bin/time ]] || bench_die "needs /usr/bin/time (GNU time) for the peak RSS"
for p in psql pg_dump pg_restore; do command -v "$p" >/dev/null || bench_die "needs $p on PATH"; done

# The fleet as bench_fleet_up makes it, but with the least-privileged role in the shard url.
bench_require_built
BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantctl-bench-XXXXXX")"
chmod 0755 "$BENCH_DIR"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
eval "$(node bench/lib/fleet-config.mjs "$BENCH_DIR" 1)"
sed -i 's#postgres://postgres:#postgres://tenantctl:#' "$BENCH_CONFIG"
bench_log "backup: starting an embedded fleet in $BENCH_DIR"
bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
PORT=$BENCH_PORT_US1
source "$(dirname "$0")/lib/backup-lib.sh"
export PGPASSWORD="$BENCH_PASSWORD" PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=tenantctl

TABLES=(workspaces users projects tasks comments)
cols() { role_psql "$1" -At -c "select string_agg(quote_ident(attname), ', ' order by attnum) from pg_attribute where attrelid = '\"$2\".$3'::regclass and attnum > 0 and not attisdropped"; }
keycol() { [[ $1 == workspaces ]] && echo id || echo tenant_id; }

bench_log "backup: creating tenants and $N rows each for big and sbig (plus $((N / 4)) for 3 other pool tenants)"
bench_tctl --quiet tenant create big --tier free >/dev/null
for o in other1 other2 other3; do bench_tctl --quiet tenant create "$o" --tier free >/dev/null; done
bench_tctl --quiet tenant create sbig --tier standard >/dev/null
bench_tctl --quiet tenant create small --tier free >/dev/null
bench_tctl --quiet tenant create ssmall --tier standard >/dev/null
BIG=$(key_of big)
seed tenant_pool app "$BIG" "$N"
for o in other1 other2 other3; do seed tenant_pool app "$(key_of $o)" $((N / 4)); done
seed tenant_schemas t_sbig "$(key_of sbig)" "$N"
seed tenant_pool app "$(key_of small)" $((N / 10))
seed tenant_schemas t_ssmall "$(key_of ssmall)" $((N / 10))
PGOPTIONS='-c client_min_messages=error' role_psql tenant_pool -c 'vacuum analyze'
PGOPTIONS='-c client_min_messages=error' role_psql tenant_schemas -c 'vacuum analyze'

RAW="$BENCH_DIR/raw"
mkdir -p "$RAW"
psql_copy_out() {
  local script="$BENCH_DIR/copy-out.sql"
  : >"$script"
  for t in "${TABLES[@]}"; do
    printf '\\copy (select %s from app.%s where %s = %s::uuid) to %s\n' "$(cols tenant_pool app $t)" "$t" "$(keycol $t)" "'$BIG'" "'$RAW/$t.copy'" >>"$script"
  done
  role_psql tenant_pool -f "$script"
}
psql_copy_in() {
  local script="$BENCH_DIR/copy-in.sql"
  { echo 'begin;'
    for ((i = ${#TABLES[@]} - 1; i >= 0; i--)); do t=${TABLES[$i]}; printf "delete from app.%s where %s = '%s'::uuid;\n" "$t" "$(keycol $t)" "$BIG"; done
    for t in "${TABLES[@]}"; do printf '\\copy app.%s (%s) from %s\n' "$t" "$(cols tenant_pool app $t)" "'$RAW/$t.copy'"; done
    echo 'commit;'; } >"$script"
  role_psql tenant_pool -f "$script"
}

pg_restore_fresh() {
  role_psql postgres -c 'drop database if exists raw_restore' -c 'create database raw_restore' >/dev/null
  pg_restore --no-owner -d raw_restore "$RAW/sbig.pgc"
}

bench_log "backup: pool tenant of $N rows"
pair pool-backup 'bench_tctl --quiet backup create big' pool-copy-out 'psql_copy_out'
PID=$(last_backup big)
pair pool-restore 'tctl_restore_as "$PID" "rp$i"' pool-copy-in 'psql_copy_in' 'drop_clone "rp$i"'

bench_log "backup: schema tenant of $N rows"
pair schema-backup 'bench_tctl --quiet backup create sbig' schema-pg-dump 'pg_dump -Fc -n t_sbig -d tenant_schemas -f "$RAW/sbig.pgc"'
SID=$(last_backup sbig)
pair schema-restore 'tctl_restore_as "$SID" "rs$i"' schema-pg-restore 'pg_restore_fresh' 'drop_clone "rs$i"'

rss() { peak_rss_mb node bin/tenantctl --config "$BENCH_CONFIG" --quiet "$@"; } # peak RSS in MB of one CLI run
bench_log "backup: peak RSS"
declare -A R
R[pool-small-backup]=$(rss backup create small)
R[pool-big-backup]=$(rss backup create big)
R[pool-small-restore]=$(rss restore "$(last_backup small)" --as rss-a)
R[pool-big-restore]=$(rss restore "$PID" --as rss-b)
R[schema-small-backup]=$(rss backup create ssmall)
R[schema-big-backup]=$(rss backup create sbig)
R[schema-small-restore]=$(rss restore "$(last_backup ssmall)" --as rss-c)
R[schema-big-restore]=$(rss restore "$SID" --as rss-d)

verdict() { awk -v r="$1" -v m="$2" 'BEGIN { print (r <= m) ? "PASS" : "FAIL" }'; }
r1=$(bench_ratio "${T[pool-backup]}" "${T[pool-copy-out]}")
r2=$(bench_ratio "${T[pool-restore]}" "${T[pool-copy-in]}")
r3=$(bench_ratio "${T[schema-backup]}" "${T[schema-pg-dump]}")
r4=$(bench_ratio "${T[schema-restore]}" "${T[schema-pg-restore]}")
cores=$(nproc 2>/dev/null || echo '?')
echo
echo "backup: pool tenant of $N rows (among 3 of $((N / 4))), medians of $RUNS interleaved run(s), $cores cores, load $(cut -d' ' -f1-3 /proc/loadavg), role tenantctl:"
echo "  backup  $(bench_secs "${T[pool-backup]}") vs psql \\copy to $(bench_secs "${T[pool-copy-out]}"): ${r1}x (target <= 1.3x): $(verdict "$r1" 1.3)"
echo "  restore $(bench_secs "${T[pool-restore]}") vs psql \\copy from $(bench_secs "${T[pool-copy-in]}"): ${r2}x (target <= 1.5x): $(verdict "$r2" 1.5)"
echo "backup: schema tenant of $N rows:"
echo "  backup  $(bench_secs "${T[schema-backup]}") vs pg_dump -n -Fc $(bench_secs "${T[schema-pg-dump]}"): ${r3}x (target <= 1.3x): $(verdict "$r3" 1.3)"
echo "  restore $(bench_secs "${T[schema-restore]}") vs pg_restore $(bench_secs "${T[schema-pg-restore]}"): ${r4}x (target <= 1.3x): $(verdict "$r4" 1.3)"
echo "backup: peak RSS MB at $((N / 10)) / $N rows: pool backup ${R[pool-small-backup]} / ${R[pool-big-backup]}, pool restore ${R[pool-small-restore]} / ${R[pool-big-restore]}, schema backup ${R[schema-small-backup]} / ${R[schema-big-backup]}, schema restore ${R[schema-small-restore]} / ${R[schema-big-restore]}"
