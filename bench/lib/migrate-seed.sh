# Seeding helpers for the bench/migrate-*.sh scripts. Source it after common.sh and bench_fleet_up.
#
#   bench_migrations_dir            # copy migrations/ to $BENCH_DIR/migrations and point the config at it
#   bench_seed_schemas N PREFIX     # N schema tenants at head of migrations/, made with raw SQL
#   bench_seed_databases N PREFIX   # N database tenants at head, cloned from a template database
#
# Only the setup is raw SQL; every timed migrate run is the real CLI.

BENCH_PORT=""

# The first shard's port (us1), from the config written by bench_fleet_up.
bench_port() { BENCH_PORT=$BENCH_PORT_US1; }

# Point migrations.dir at a copy of migrations/ (or at an empty folder with "empty").
bench_migrations_dir() {
  local mode=${1:-copy}
  BENCH_MIGRATIONS="$BENCH_DIR/migrations"
  mkdir -p "$BENCH_MIGRATIONS"
  [[ $mode == copy ]] && cp "$BENCH_REPO"/migrations/*.sql "$BENCH_MIGRATIONS/"
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    import { parseDocument } from "yaml";
    const [file, dir] = process.argv.slice(1);
    const doc = parseDocument(readFileSync(file, "utf8"));
    doc.setIn(["migrations", "dir"], dir);
    writeFileSync(file, doc.toString());' "$BENCH_CONFIG" "$BENCH_MIGRATIONS"
}

# The shipped migrations rendered for the default tenant key (uuid tenant_id), as one script.
bench_base_sql() {
  cat "$BENCH_REPO"/migrations/*.sql | sed -e 's/{{tenant_key_column}}/"tenant_id"/g' -e 's/{{tenant_key_type}}/uuid/g'
}

# Insert catalog rows for tenants made by hand: bench_catalog_rows MODEL PREFIX N
bench_catalog_rows() {
  local model=$1 prefix=$2 n=$3
  local db schema
  case $model in
    schema) db="'tenant_schemas'" schema="'t_${prefix}' || i" ;;
    database) db="'t_${prefix}' || i" schema="'app'" ;;
  esac
  local head
  head=$(basename "$(ls "$BENCH_MIGRATIONS"/*.sql | sort | tail -1)" .sql)
  bench_psql "$BENCH_PORT" tenantctl_catalog -c "
    insert into tenants (slug, key, name, tier, model, region, shard, database_name, schema_name, status, schema_version)
    select '${prefix}' || i, gen_random_uuid()::text, '${prefix}' || i, 'standard', '${model}', 'us-east', 'us1',
           ${db}, ${schema}, 'active', '${head}'
      from generate_series(1, ${n}) i"
}

# N schema tenants (<prefix>seed made by the CLI, then t_<prefix>1..N-1 by raw SQL) in
# tenant_schemas, at head of migrations/ with their tracking rows.
bench_seed_schemas() {
  local n=$(($1 - 1)) prefix=$2 jobs=4
  bench_port
  # One real tenant makes the catalog, the database and the tracking table the tenantctl way.
  bench_tctl --quiet tenant create "${prefix}seed" --model schema --shard us1 >/dev/null
  local base
  base="$(bench_base_sql)"
  local j
  for ((j = 0; j < jobs; j++)); do
    {
      local i
      for ((i = j + 1; i <= n; i += jobs)); do
        printf 'begin;\ncreate schema t_%s%d;\nset local search_path = t_%s%d;\n%s\n' "$prefix" "$i" "$prefix" "$i" "$base"
        printf "insert into tenantctl.schema_migrations (target_schema, name, checksum, duration_ms)
                select 't_%s%d', name, checksum, 0 from tenantctl.schema_migrations where target_schema = 't_%sseed';\ncommit;\n" \
          "$prefix" "$i" "$prefix"
      done
    } >"$BENCH_DIR/seed-$j.sql"
  done
  for ((j = 0; j < jobs; j++)); do bench_psql "$BENCH_PORT" tenant_schemas -f "$BENCH_DIR/seed-$j.sql" >/dev/null & done
  wait
  bench_catalog_rows schema "$prefix" "$n"
}

# N database tenants (<prefix>seed by the CLI, t_<prefix>1..N-1 copies of its database).
bench_seed_databases() {
  local n=$(($1 - 1)) prefix=$2 jobs=4
  bench_port
  bench_tctl --quiet tenant create "${prefix}seed" --model database --shard us1 >/dev/null
  local j
  for ((j = 0; j < jobs; j++)); do
    {
      local i
      for ((i = j + 1; i <= n; i += jobs)); do printf 'create database t_%s%d template t_%sseed;\n' "$prefix" "$i" "$prefix"; done
    } >"$BENCH_DIR/seed-db-$j.sql"
  done
  # Copies of one template run one at a time (PostgreSQL refuses a template in use).
  cat "$BENCH_DIR"/seed-db-*.sql | bench_psql "$BENCH_PORT" postgres >/dev/null
  bench_catalog_rows database "$prefix" "$n"
}

# The three statements every timed round applies, with names unique to the round.
bench_round_sql() {
  local tag=$1
  # BENCH_STATEMENTS=1: one cheap statement, where tenantctl's per-target cost shows (issue 22).
  if [[ ${BENCH_STATEMENTS:-3} == 1 ]]; then
    printf 'alter table workspaces add column %s_at timestamptz;\n' "$tag"
    return
  fi
  printf 'alter table workspaces add column %s_at timestamptz;\ncreate index workspaces_%s_idx on workspaces (%s_at);\nalter table workspaces add column %s_by text;\n' \
    "$tag" "$tag" "$tag" "$tag"
}

# Wall time of a command in ms (process start included), into BENCH_LAST_MS.
bench_time() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@"
  t1=$EPOCHREALTIME
  BENCH_LAST_MS=$(bench_elapsed_ms "$t0" "$t1")
}
