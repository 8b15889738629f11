#!/usr/bin/env bash
# Smoke check of the local services (scripts/local-stack.sh, scripts/moto_server.py):
#   - start prints the env file's path as its only stdout line; status/env work;
#   - PostgreSQL answers psql (as the postgres user's cluster when run as root);
#   - through boto3 on the moto endpoint: DynamoDB table + Kinesis stream, then
#     Enable/Describe/Update/Disable KinesisStreamingDestination (and their errors);
#     Step Functions ValidateStateMachineDefinition, ListStateMachineVersions, and two
#     executions of a Pass machine with executions enabled (both must succeed);
#   - two concurrent `start`s make one stack; `stop` stops it all; `start` again works.
#
# It uses its own state dir (FERRY_CHECK_DIR, default ${TMPDIR:-/tmp}/ferry-check-<uid>-<pid>),
# so a stack you have running from this checkout is not touched, and it stops its stack
# on exit. Exit 0 when every check passed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
source "$HERE/lib/common.sh"
# shellcheck disable=SC2034 # read by log() in lib/common.sh
FERRY_LOG_NAME="check-local-stack"

STACK="$HERE/local-stack.sh"
export FERRY_LOCAL_DIR="${FERRY_CHECK_DIR:-${TMPDIR:-/tmp}/ferry-check-$(id -u)-$$}"
unset FERRY_PG_PORT FERRY_MOTO_PORT
WORK="$(mktemp -d)"
PASSED=0

cleanup() {
  "$STACK" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() {
  PASSED=$((PASSED + 1))
  log "ok: $*"
}

fail() {
  die "FAILED: $*"
}

# Run `local-stack.sh start`, check its stdout is the env file's path alone, source it.
start_stack() {
  local out
  out="$("$STACK" start)" || fail "local-stack.sh start exited non-zero"
  [ "$out" = "$FERRY_LOCAL_DIR/env" ] || fail "start printed [$out], expected [$FERRY_LOCAL_DIR/env]"
  # shellcheck disable=SC1090 # the env file local-stack.sh writes at run time
  source "$out"
}

log "state dir: $FERRY_LOCAL_DIR"
"$STACK" stop >/dev/null 2>&1

# --- start, status, env
start_stack
ok "start printed only the env file path"
"$STACK" status >"$WORK/status" || fail "status after start: $(cat "$WORK/status")"
ok "status exits 0 when running"
"$STACK" env | grep -q '^export AWS_ENDPOINT_URL=http://127.0.0.1:[0-9]*$' || fail "env lacks AWS_ENDPOINT_URL"
for var in FERRY_DATABASE_URL AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION FERRY_LOCAL_DIR; do
  [ -n "${!var:-}" ] || fail "the env file does not set $var"
done
ok "env file sets FERRY_DATABASE_URL=$FERRY_DATABASE_URL AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"

# --- PostgreSQL
PSQL="$FERRY_PG_BINDIR/psql"
got="$("$PSQL" "$FERRY_DATABASE_URL" -X -q -At -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE smoke (id int PRIMARY KEY, name text);
INSERT INTO smoke SELECT g, 'n' || g FROM generate_series(1, 1000) g;
SELECT count(*) || ' ' || current_setting('fsync') || ' ' || current_setting('server_encoding')
  || ' ' || current_user FROM smoke;
SQL
)" || fail "psql on $FERRY_DATABASE_URL"
[ "$got" = "1000 off UTF8 postgres" ] || fail "psql answered [$got]"
ok "psql: 1000 rows, fsync off, UTF8, user postgres"
"$PSQL" "$FERRY_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE smoke_clone TEMPLATE postgres' ||
  fail "CREATE DATABASE ... TEMPLATE"
ok "CREATE DATABASE smoke_clone TEMPLATE postgres"

# --- AWS APIs through moto
PY="$(cat "$FERRY_LOCAL_DIR/moto.python")"
n_aws="$(
  "$PY" - <<'PY'

import json
import os
import sys
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["AWS_ENDPOINT_URL"]
cfg = Config(retries={"max_attempts": 1, "mode": "standard"})
ddb = boto3.client("dynamodb", config=cfg)
kinesis = boto3.client("kinesis", config=cfg)
sfn = boto3.client("stepfunctions", config=cfg)


N_OK = 0


def ok(msg):
    global N_OK
    N_OK += 1
    print(f"check-local-stack: ok: {msg}", file=sys.stderr)


def expect_error(code, call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


# DynamoDB + Kinesis streaming destination
ddb.create_table(
    TableName="smoke",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
kinesis.create_stream(StreamName="smoke", ShardCount=1)
stream = kinesis.describe_stream(StreamName="smoke")["StreamDescription"]["StreamARN"]
r = ddb.enable_kinesis_streaming_destination(TableName="smoke", StreamArn=stream)
assert (r["TableName"], r["StreamArn"], r["DestinationStatus"]) == ("smoke", stream, "ENABLING"), r
d = ddb.describe_kinesis_streaming_destination(TableName="smoke")
assert d["TableName"] == "smoke", d
[dest] = d["KinesisDataStreamDestinations"]
assert dest["StreamArn"] == stream and dest["DestinationStatus"] == "ACTIVE", dest
assert dest["ApproximateCreationDateTimePrecision"] == "MILLISECOND", dest
assert dest["DestinationStatusDescription"], dest
ok(f"EnableKinesisStreamingDestination -> ENABLING, Describe -> {dest}")
r = ddb.update_kinesis_streaming_destination(
    TableName="smoke",
    StreamArn=stream,
    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"},
)
assert r["DestinationStatus"] == "UPDATING", r
r = ddb.disable_kinesis_streaming_destination(TableName="smoke", StreamArn=stream)
assert r["DestinationStatus"] == "DISABLING", r
[dest] = ddb.describe_kinesis_streaming_destination(TableName="smoke")["KinesisDataStreamDestinations"]
assert dest["DestinationStatus"] == "DISABLED", dest
assert dest["ApproximateCreationDateTimePrecision"] == "MICROSECOND", dest
ok("Update -> UPDATING, Disable -> DISABLING, Describe -> DISABLED")
expect_error("ResourceNotFoundException", ddb.enable_kinesis_streaming_destination,
             TableName="missing", StreamArn=stream)
expect_error("ValidationException", ddb.enable_kinesis_streaming_destination,
             TableName="smoke", StreamArn=stream + "-missing")
expect_error("ValidationException", ddb.disable_kinesis_streaming_destination,
             TableName="smoke", StreamArn=stream)
expect_error("ResourceNotFoundException", ddb.describe_kinesis_streaming_destination,
             TableName="missing")
ok("errors: missing table, missing stream, disabling a disabled destination")

# Step Functions
definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
r = sfn.validate_state_machine_definition(definition=definition, type="STANDARD")
assert r["result"] == "OK" and r["diagnostics"] == [], r
r = sfn.validate_state_machine_definition(definition="{not json")
assert r["result"] == "FAIL" and r["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION", r
ok("ValidateStateMachineDefinition: OK for a Pass machine, FAIL for invalid JSON")

req = urllib.request.Request(
    endpoint + "/moto-api/config",
    data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
urllib.request.urlopen(req, timeout=10).read()
machine = sfn.create_state_machine(
    name="smoke", definition=definition, roleArn="arn:aws:iam::123456789012:role/smoke"
)["stateMachineArn"]
r = sfn.list_state_machine_versions(stateMachineArn=machine)
assert r["stateMachineVersions"] == [], r
ok("ListStateMachineVersions -> []")
for n in (1, 2):
    arn = sfn.start_execution(
        stateMachineArn=machine, name=f"smoke-{n}", input=json.dumps({"n": n})
    )["executionArn"]
    deadline = time.monotonic() + 30
    while True:
        e = sfn.describe_execution(executionArn=arn)
        if e["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert e["status"] == "SUCCEEDED", e
    assert json.loads(e["output"]) == {"n": n}, e
    ok(f"execution {n} of a Pass machine: SUCCEEDED, output {e['output']}")
print(N_OK)
PY
)" || fail "AWS API checks (see above)"
PASSED=$((PASSED + n_aws))

# --- a second start reuses the running stack
pg_pid="$(head -n 1 "$FERRY_LOCAL_DIR/pgdata/postmaster.pid")"
moto_pid="$(cat "$FERRY_LOCAL_DIR/moto.pid")"
endpoint="$AWS_ENDPOINT_URL"
"$STACK" start >/dev/null 2>"$WORK/restart.err"
if ! grep -q 'PostgreSQL already running' "$WORK/restart.err" ||
  ! grep -q 'moto already running' "$WORK/restart.err"; then
  fail "second start did not reuse the stack: $(cat "$WORK/restart.err")"
fi
if [ "$(head -n 1 "$FERRY_LOCAL_DIR/pgdata/postmaster.pid")" != "$pg_pid" ] ||
  [ "$(cat "$FERRY_LOCAL_DIR/moto.pid")" != "$moto_pid" ]; then
  fail "second start changed the pids"
fi
"$STACK" env | grep -qxF "export AWS_ENDPOINT_URL=$endpoint" || fail "second start changed the endpoint"
ok "a second start reuses both services"

# --- stop
"$STACK" stop
if pid_alive "$pg_pid"; then fail "PostgreSQL (pid $pg_pid) still runs after stop"; fi
if pid_alive "$moto_pid"; then fail "moto (pid $moto_pid) still runs after stop"; fi
[ ! -e "$FERRY_LOCAL_DIR" ] || fail "stop left $FERRY_LOCAL_DIR"
if "$STACK" status >/dev/null; then fail "status exits 0 after stop"; fi
if "$STACK" env >/dev/null 2>&1; then fail "env exits 0 after stop"; fi
"$STACK" stop 2>/dev/null || fail "a second stop failed"
ok "stop: processes gone, state dir removed, status/env fail, stop again is fine"

# --- two concurrent starts make one stack
"$STACK" start >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
"$STACK" start >"$WORK/b.out" 2>"$WORK/b.err" &
b=$!
wait "$a" || fail "concurrent start A: $(cat "$WORK/a.err")"
wait "$b" || fail "concurrent start B: $(cat "$WORK/b.err")"
if [ "$(cat "$WORK/a.out")" != "$FERRY_LOCAL_DIR/env" ] || [ "$(cat "$WORK/b.out")" != "$FERRY_LOCAL_DIR/env" ]; then
  fail "concurrent starts printed [$(cat "$WORK/a.out")] and [$(cat "$WORK/b.out")]"
fi
n_pg="$(cat "$WORK/a.err" "$WORK/b.err" | grep -c 'starting PostgreSQL' || true)"
n_moto="$(cat "$WORK/a.err" "$WORK/b.err" | grep -c 'starting moto' || true)"
n_reuse="$(cat "$WORK/a.err" "$WORK/b.err" | grep -c 'already running' || true)"
if [ "$n_pg" != 1 ] || [ "$n_moto" != 1 ] || [ "$n_reuse" != 2 ]; then
  fail "concurrent starts: $n_pg PostgreSQL starts, $n_moto moto starts, $n_reuse reuses (want 1, 1, 2)"
fi
n_moto_procs="$(pgrep -f -c -- "--pid-file $FERRY_LOCAL_DIR/moto.pid" || true)"
[ "$n_moto_procs" = 1 ] || fail "$n_moto_procs moto processes for $FERRY_LOCAL_DIR"
"$STACK" status >/dev/null || fail "status after concurrent starts"
ok "two concurrent starts: one PostgreSQL, one moto, the other start reused them"

# --- stop, start again
"$STACK" stop
start_stack
"$PSQL" "$FERRY_DATABASE_URL" -X -At -c 'SELECT 1' | grep -qx 1 || fail "psql after restart"
"$PY" -c 'import boto3; boto3.client("dynamodb").list_tables()' || fail "DynamoDB after restart"
ok "stop then start again: both services answer"
"$STACK" stop

log "all $PASSED checks passed"
