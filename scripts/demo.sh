#!/usr/bin/env bash
# The demo: starts a throwaway PostgreSQL and the AWS emulator, generates the rates & availability
# sample databases, validates the example migration spec and runs the migration of both domains
# end to end on this machine (`ferry local run`: clone, bootstrap, import, export, verify,
# cleanup, through the project's own state machines). Everything it starts keeps running
# afterwards so you can look around; `scripts/local-stack.sh stop` stops it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$FERRY_REPO"

partitions="${FERRY_DEMO_PARTITIONS:-2}"
rows="${FERRY_DEMO_ROWS_PER_PARTITION:-12500}"
spec=examples/rates-availability.toml

have cargo || die "cargo not found: install Rust first (https://rustup.rs)"
log "building ferry (the first build takes a few minutes)"
cargo build --locked -p ferry-cli
ferry="${CARGO_TARGET_DIR:-$FERRY_REPO/target}/debug/ferry"

log "starting PostgreSQL and the AWS emulator"
env_file="$(scripts/local-stack.sh start)"
set -a
# shellcheck disable=SC1090 # the env file local-stack.sh writes at run time
source "$env_file"
set +a

log "generating sample data: lipsdb and ${partitions} partition databases, ${rows} rows per table each"
"$ferry" sample-data --partitions "$partitions" --rows-per-partition "$rows"

log "validating $spec"
"$ferry" validate "$spec"

log "what a run of $spec does:"
"$ferry" plan "$spec"

# Each demo run imports into new tables (ImportTable always creates its table).
prefix="ferry-demo-$(date +%Y%m%d%H%M%S)-"
report="${FERRY_LOCAL_DIR:-$(dirname "$env_file")}/demo-report.json"
log "migrating both domains (tables ${prefix}*)"
"$ferry" local run "$spec" --table-prefix "$prefix" --report-json "$report"

cat <<MSG

Done. PostgreSQL and the emulator are still running:
  eval "\$(scripts/local-stack.sh env)"       # point your shell at them
  psql "\$FERRY_DATABASE_URL" -c '\\l'          # the sample databases
  psql "\${FERRY_DATABASE_URL%/*}/dailydatadb-partition-01" -c 'SELECT * FROM base_rate LIMIT 5'
  less "$report"   # the run record and the verification report
  aws --endpoint-url "\$AWS_ENDPOINT_URL" dynamodb scan --table-name ${prefix}BaseRate --max-items 3
  aws --endpoint-url "\$AWS_ENDPOINT_URL" dynamodb scan --table-name ferry-state
  scripts/local-stack.sh stop                 # stop them
MSG
