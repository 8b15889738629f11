#!/usr/bin/env bash
# Starts one migration run of a deployed ferry and follows it to its end: what the
# workflow_dispatch migration workflow runs. The run is recorded in the state table before the
# execution starts (a second start while one runs is refused), each state change is printed
# with its time, and on failure the failing state, error and cause. Exit code 0 only when the
# run SUCCEEDED.
#
# usage: scripts/run-step-functions-workflow.sh --environment test|prod --spec FILE
#          [--domain rates|availability|all] [--parallelism N] [--dry-run]
#
# Names follow the Terraform deployment of the environment: <prefix>-migration and
# <prefix>-state, where <prefix> is name_prefix of infra/<env>.tfvars (FERRY_NAME_PREFIX
# overrides it); FERRY_STATE_MACHINE and FERRY_STATE_TABLE override the names themselves.
# FERRY_BUCKET (terraform output bucket_name) is required. FERRY_BIN is the ferry binary
# (default: ferry on the PATH, else target/release/ferry). AWS credentials and region come from
# the environment.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

environment="" spec="" domain="all" parallelism=8 dry_run=false poll="${FERRY_POLL_SECONDS:-10}"
while [ $# -gt 0 ]; do
  case "$1" in
    --environment) environment="${2:-}"; shift 2 ;;
    --spec) spec="${2:-}"; shift 2 ;;
    --domain) domain="${2:-}"; shift 2 ;;
    --parallelism) parallelism="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case "$environment" in
  test|prod) ;;
  *) die "--environment: expected test or prod, got '${environment}'" ;;
esac
[ -n "$spec" ] || die "--spec: the migration spec file is required"
[ -f "$spec" ] || die "--spec: no file $spec"
case "$parallelism" in
  ''|*[!0-9]*) die "--parallelism: expected a whole number, got '${parallelism}'" ;;
esac

ferry="${FERRY_BIN:-}"
if [ -z "$ferry" ]; then
  ferry="$(command -v ferry || true)"
  [ -n "$ferry" ] || ferry="$FERRY_REPO/target/release/ferry"
fi
[ -x "$ferry" ] || die "no ferry binary at $ferry (build it: cargo build --release -p ferry-cli)"

prefix="${FERRY_NAME_PREFIX:-}"
if [ -z "$prefix" ]; then
  tfvars="$FERRY_REPO/infra/${environment}.tfvars"
  [ -f "$tfvars" ] || die "no $tfvars to read name_prefix from (set FERRY_NAME_PREFIX)"
  prefix="$(sed -n 's/^name_prefix *= *"\([a-z0-9-]*\)".*/\1/p' "$tfvars")"
  [ -n "$prefix" ] || die "$tfvars sets no name_prefix (set FERRY_NAME_PREFIX)"
fi
state_machine="${FERRY_STATE_MACHINE:-${prefix}-migration}"
state_table="${FERRY_STATE_TABLE:-${prefix}-state}"
bucket="${FERRY_BUCKET:-}"
[ -n "$bucket" ] || die "FERRY_BUCKET: the run bucket of the ${environment} deployment is required (terraform output bucket)"

args=(start --spec "$spec" --state-machine "$state_machine" --state-table "$state_table"
  --bucket "$bucket" --parallelism "$parallelism" --watch --poll-seconds "$poll")
[ "$domain" = all ] || args+=(--domain "$domain")
[ "$dry_run" = true ] && args+=(--dry-run)

log "starting ${spec} in ${environment} (domain ${domain}, parallelism ${parallelism}, dry run ${dry_run})"
exec "$ferry" "${args[@]}"
