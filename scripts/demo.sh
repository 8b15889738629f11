#!/usr/bin/env bash
# The demo: starts a throwaway PostgreSQL and the AWS emulator, generates the rates & availability
# sample databases, validates the example migration spec, prepares the state table and shows
# what a run of each domain would do. Everything it starts keeps running afterwards so you can
# look around; `scripts/local-stack.sh stop` stops it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$FERRY_REPO"

partitions="${FERRY_DEMO_PARTITIONS:-2}"
rows="${FERRY_DEMO_ROWS_PER_PARTITION:-25000}"
spec=examples/rates-availability.toml

have cargo || die "cargo not found: install Rust first (https://rustup.rs)"
log "building ferry (the first build takes a few minutes)"
cargo build --locked -p ferry-cli
ferry="$FERRY_REPO/target/debug/ferry"

log "starting PostgreSQL and the AWS emulator"
env_file="$(scripts/local-stack.sh start)"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

log "generating sample data: lipsdb and ${partitions} partition databases, ${rows} rows per table each"
"$ferry" sample-data --partitions "$partitions" --rows-per-partition "$rows"

log "validating $spec"
"$ferry" validate "$spec"

log "creating the state table in the emulator"
"$ferry" local init

log "what a run of $spec would do:"
"$ferry" plan "$spec"

cat <<MSG

Done. PostgreSQL and the emulator are still running:
  eval "\$(scripts/local-stack.sh env)"       # point your shell at them
  psql "\$FERRY_DATABASE_URL" -c '\\l'          # the sample databases
  psql "\${FERRY_DATABASE_URL%/*}/dailydatadb-partition-01" -c 'SELECT * FROM base_rate LIMIT 5'
  aws --endpoint-url "\$AWS_ENDPOINT_URL" dynamodb scan --table-name ferry-state
  scripts/local-stack.sh stop                 # stop them
MSG
