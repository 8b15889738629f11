#!/usr/bin/env bash
# Local services for ferry's local mode: a throwaway PostgreSQL cluster and the moto AWS
# emulator (scripts/moto_server.py), both on free loopback ports.
#
#   scripts/local-stack.sh start    start what is not running (idempotent, safe to run
#                                   concurrently); prints the env file's path, alone, on
#                                   stdout; progress goes to stderr
#   scripts/local-stack.sh env      print the env file (fails when the stack is not running)
#   scripts/local-stack.sh status   say what runs where (exit 1 unless both run)
#   scripts/local-stack.sh stop     stop both and remove the state dir (idempotent)
#
# Typical use:  source "$(scripts/local-stack.sh start)"
#
# Environment:
#   FERRY_LOCAL_DIR    state dir (default ${TMPDIR:-/tmp}/ferry-local-<uid>-<hash of repo path>)
#   FERRY_PG_PORT      PostgreSQL port (default: a free one)
#   FERRY_MOTO_PORT    moto port (default: a free one)
#   FERRY_MOTO_PYTHON  python to run moto with (default: see ensure_python_moto in lib/common.sh)
#
# State dir: env, lock, pgdata/, pgsock/ (unix socket), tls/ (a throwaway CA and the
# server's certificate), postgres.log, initdb.log, moto.log, moto.pid, pg.port, moto.port,
# pg.bindir, moto.python.
# PostgreSQL accepts TLS (ssl = on) with a certificate for localhost and 127.0.0.1 signed by
# the CA in tls/ca.crt, which the env file names as FERRY_PG_CA_FILE; plain connections
# work as before.
# As root, PostgreSQL runs as the `postgres` user (it refuses to run as root).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
source "$HERE/lib/common.sh"
# shellcheck disable=SC2034 # read by log() in lib/common.sh
FERRY_LOG_NAME=local-stack

STATE="${FERRY_LOCAL_DIR:-$(ferry_default_local_dir)}"
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
ENV_FILE="$STATE/env"
PG_DATA="$STATE/pgdata"
PG_SOCK="$STATE/pgsock"
PG_LOG="$STATE/postgres.log"
PG_TLS="$STATE/tls"
MOTO_LOG="$STATE/moto.log"
MOTO_PID_FILE="$STATE/moto.pid"
# The lock is held on fd 9. Every long-lived child (postgres, moto) is started with fd 9
# and fd 3 (start's real stdout) closed, or it would keep the lock, or keep a caller's
# $(scripts/local-stack.sh start) waiting for end of file.

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

check_port_value() {
  case "$2" in
    '') ;;
    *[!0-9]*) die "$1=$2 is not a port number" ;;
    *) if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then die "$1=$2 is not a port number"; fi ;;
  esac
}

# True when nothing accepts TCP connections on 127.0.0.1:$1.
port_free() {
  ! (exec 8<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# $1: override (may be empty), $2: file with the port used last time.
choose_port() {
  local last
  if [ -n "$1" ]; then
    printf '%s\n' "$1"
    return 0
  fi
  if [ -s "$2" ]; then
    last="$(cat "$2")"
    if port_free "$last"; then
      printf '%s\n' "$last"
      return 0
    fi
  fi
  free_port
}

# True when 127.0.0.1:$1 answers GET $2 with HTTP 2xx (within 5 s).
http_ok() {
  (
    exec 8<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&8
    IFS= read -r -t 5 line <&8
    [[ $line == HTTP/1.[01]\ 2* ]]
  ) 2>/dev/null
}

# Show on stderr what $1 got after byte offset $2 (at most 40 lines).
show_log_since() {
  printf -- '----- %s (this attempt) -----\n' "$1" >&2
  log_since "$1" "$2" | tail -n 40 >&2
  printf -- '-----\n' >&2
}

file_size() {
  if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}

# Lines of $1 written after byte offset $2.
log_since() {
  tail -c "+$(($2 + 1))" "$1" 2>/dev/null || true
}

make_state_dir() {
  if [ -e "$STATE" ] && [ ! -O "$STATE" ]; then
    die "$STATE exists and belongs to another user; set FERRY_LOCAL_DIR to another path"
  fi
  mkdir -p "$STATE"
  chmod 755 "$STATE" # the postgres user must reach pgsock/ and pgdata/ when we are root
}

# Exclusive lock on $STATE/lock (fd 9). `stop` deletes the state dir, lock file included,
# while others may wait on it: after getting the lock, check the file is still the one
# at the path, else try again on the new one.
lock_state() {
  while :; do
    make_state_dir
    exec 9>>"$STATE/lock"
    flock -w 600 9 || die "timed out waiting for the lock $STATE/lock"
    if [ "$STATE/lock" -ef /dev/fd/9 ]; then
      return 0
    fi
    exec 9>&-
  done
}

# ---------------------------------------------------------------- PostgreSQL

as_pg_user() {
  if have runuser; then
    runuser -u postgres -- "$@"
  else
    # shellcheck disable=SC2016 # $0/$@ are expanded by the postgres user's shell
    su -s /bin/sh postgres -c 'exec "$0" "$@"' "$@"
  fi
}

# Run a PostgreSQL program: as `postgres` when we are root, else as ourselves.
run_pg() {
  if is_root; then
    (cd "$STATE" && as_pg_user "$@") 3>&- 9>&-
  else
    "$@" 3>&- 9>&-
  fi
}

pg_bindir() {
  if [ -s "$STATE/pg.bindir" ]; then cat "$STATE/pg.bindir"; else find_pg_bindir; fi
}

# The port of the recorded postmaster (line 4 of postmaster.pid), else the one used last.
pg_port() {
  local port=""
  if [ -r "$PG_DATA/postmaster.pid" ]; then port="$(sed -n 4p "$PG_DATA/postmaster.pid")"; fi
  if [ -n "$port" ]; then printf '%s\n' "$port"; else cat "$STATE/pg.port" 2>/dev/null; fi
}

pg_pid() {
  [ -r "$PG_DATA/postmaster.pid" ] && head -n 1 "$PG_DATA/postmaster.pid"
}

# True when process $1 runs and its command line contains $2 (so a pid from a stale
# file that now belongs to an unrelated process is never taken for ours).
proc_is() {
  pid_alive "$1" || return 1
  [ -r "/proc/$1/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# True when the recorded postmaster is alive and accepts connections on its port.
pg_running() {
  local pid port bindir
  pid="$(pg_pid)" && [ -n "$pid" ] && proc_is "$pid" "$PG_DATA" || return 1
  port="$(pg_port)" || return 1
  if bindir="$(pg_bindir 2>/dev/null)" && [ -x "$bindir/pg_isready" ]; then
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres
  elif port_free "$port"; then
    return 1
  fi
}

pg_version() {
  "$1/pg_ctl" --version | sed -n 's/.*(PostgreSQL) \([0-9]*\).*/\1/p'
}

init_pg() {
  local bindir="$1" version="$2" locale=C
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C.UTF-8; fi
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  if is_root; then chown postgres: "$PG_DATA"; fi
  log "initialising a PostgreSQL $version cluster in $PG_DATA (locale $locale)"
  if ! run_pg "$bindir/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
    --locale="$locale" >"$STATE/initdb.log" 2>&1; then
    tail_log "$STATE/initdb.log"
    die "initdb failed"
  fi
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- ferry local stack: a throwaway test server (durability off) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
# Room for the benchmark table (2,000,000 rows, 180 MB): ferry reads TID ranges, which do not
# get the small ring buffer PostgreSQL gives sequential scans of large tables, so with
# PostgreSQL's default 128MB they evict pages on every chunk. RDS sizes this at a quarter of
# the instance's memory, Aurora at about three quarters.
shared_buffers = 512MB
timezone = 'UTC'
log_timezone = 'UTC'
EOF
}

# A CA and a server certificate for localhost / 127.0.0.1 (EC P-256, 10 years), made once
# per state dir, and `ssl = on` in the cluster's configuration (also for a cluster that was
# initialised before TLS was added here).
ensure_pg_tls() {
  local conf="$PG_DATA/postgresql.conf" ext
  if [ ! -s "$PG_TLS/ca.crt" ] || [ ! -s "$PG_TLS/server.crt" ] || [ ! -s "$PG_TLS/server.key" ]; then
    have openssl || apt_install openssl
    log "making a throwaway CA and a server certificate in $PG_TLS"
    rm -rf "$PG_TLS"
    mkdir -p "$PG_TLS"
    chmod 755 "$PG_TLS"
    ext="$PG_TLS/server.ext"
    printf '%s\n' 'subjectAltName = DNS:localhost, IP:127.0.0.1' 'basicConstraints = critical, CA:FALSE' \
      'keyUsage = critical, digitalSignature' 'extendedKeyUsage = serverAuth' >"$ext"
    if ! {
      openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$PG_TLS/ca.key" -out "$PG_TLS/ca.crt" -days 3650 -subj '/CN=ferry local test CA' \
        -addext 'basicConstraints = critical, CA:TRUE' -addext 'keyUsage = critical, keyCertSign, cRLSign' &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
          -keyout "$PG_TLS/server.key" -out "$PG_TLS/server.csr" -subj '/CN=localhost' &&
        openssl x509 -req -in "$PG_TLS/server.csr" -CA "$PG_TLS/ca.crt" -CAkey "$PG_TLS/ca.key" \
          -CAcreateserial -days 3650 -extfile "$ext" -out "$PG_TLS/server.crt"
    } >"$PG_TLS/openssl.log" 2>&1; then
      tail_log "$PG_TLS/openssl.log"
      die "making the TLS certificates failed"
    fi
    chmod 644 "$PG_TLS/ca.crt" "$PG_TLS/server.crt"
    chmod 600 "$PG_TLS/server.key" "$PG_TLS/ca.key"
    if is_root; then chown postgres: "$PG_TLS/server.key" "$PG_TLS/server.crt"; fi
  fi
  if ! grep -q '^# --- ferry local stack: TLS' "$conf"; then
    cat >>"$conf" <<EOF

# --- ferry local stack: TLS (certificates in $PG_TLS) ---
ssl = on
ssl_cert_file = '$PG_TLS/server.crt'
ssl_key_file = '$PG_TLS/server.key'
EOF
  fi
}

# A postmaster recorded in pgdata that is not (yet) answering: if it is alive (starting,
# recovering), wait up to 60 s for it and return 1 when it became ready (reuse it); if it
# has exited but not been reaped yet, wait up to 10 s for it to go (else the new
# postmaster refuses the data dir). Return 0 when a new postmaster should be started.
wait_for_old_postmaster() {
  local bindir="$1" pid port
  pid="$(pg_pid)" && [ -n "$pid" ] || return 0
  if proc_is "$pid" "$PG_DATA" && port="$(pg_port)"; then
    log "PostgreSQL (pid $pid) runs but does not answer on port $port; waiting for it"
    if "$bindir/pg_isready" -q -t 60 -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      return 1
    fi
    tail_log "$PG_LOG"
    die "PostgreSQL (pid $pid) runs but does not answer; stop it with scripts/local-stack.sh stop"
  fi
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 0
    sleep 0.2
  done
  return 0
}

start_pg() {
  local bindir version port attempt offset
  bindir="$(ensure_pg_bindir)"
  printf '%s\n' "$bindir" >"$STATE/pg.bindir"
  version="$(pg_version "$bindir")"
  if is_root && ! id postgres >/dev/null 2>&1; then
    log "creating the system user postgres (PostgreSQL refuses to run as root)"
    useradd --system --user-group --no-create-home --shell /bin/bash postgres
  fi
  mkdir -p "$PG_SOCK"
  touch "$PG_LOG"
  if is_root; then
    chown postgres: "$PG_SOCK" "$PG_LOG"
    as_pg_user test -w "$PG_SOCK" ||
      die "the postgres user cannot reach $STATE (is a parent directory private?); set FERRY_LOCAL_DIR, e.g. under /tmp"
  fi
  if ! wait_for_old_postmaster "$bindir"; then
    log "PostgreSQL (pid $(pg_pid)) became ready on 127.0.0.1:$(pg_port); reusing it"
    return 0
  fi
  if [ -f "$PG_DATA/PG_VERSION" ] && [ "$(cat "$PG_DATA/PG_VERSION")" = "$version" ]; then
    log "reusing the PostgreSQL $version cluster in $PG_DATA"
  else
    init_pg "$bindir" "$version"
  fi
  ensure_pg_tls
  for attempt in 1 2 3; do
    port="$(choose_port "${FERRY_PG_PORT:-}" "$STATE/pg.port")"
    offset="$(file_size "$PG_LOG")"
    log "starting PostgreSQL $version on 127.0.0.1:$port (log: $PG_LOG)"
    if run_pg "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -o "-p $port" start >&2 &&
      "$bindir/pg_isready" -q -t 30 -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      printf '%s\n' "$port" >"$STATE/pg.port"
      return 0
    fi
    if [ -z "${FERRY_PG_PORT:-}" ] && [ "$attempt" -lt 3 ] &&
      log_since "$PG_LOG" "$offset" | grep -q 'Address already in use'; then
      log "port $port was taken meanwhile; trying another"
      rm -f "$STATE/pg.port"
      continue
    fi
    break
  done
  show_log_since "$PG_LOG" "$offset"
  die "PostgreSQL did not start"
}

stop_pg() {
  local pid bindir
  pid="$(pg_pid)" || return 0
  proc_is "$pid" "$PG_DATA" || return 0
  log "stopping PostgreSQL (pid $pid)"
  if bindir="$(pg_bindir 2>/dev/null)"; then
    run_pg "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >&2 || warn "pg_ctl stop failed"
  fi
  if pid_alive "$pid"; then
    kill -INT "$pid" 2>/dev/null || true # SIGINT = fast shutdown
    for _ in $(seq 1 50); do
      pid_alive "$pid" || return 0
      sleep 0.2
    done
    warn "PostgreSQL (pid $pid) ignored SIGINT; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- moto

moto_port() { cat "$STATE/moto.port" 2>/dev/null; }

moto_pid() {
  [ -s "$MOTO_PID_FILE" ] && cat "$MOTO_PID_FILE"
}

moto_alive() {
  local pid
  pid="$(moto_pid)" && proc_is "$pid" "$MOTO_PID_FILE"
}

moto_running() {
  local port
  moto_alive && port="$(moto_port)" && http_ok "$port" /moto-api/config
}

start_moto() {
  local py port attempt offset launcher
  local -a detach=()
  py="$(ensure_python_moto)"
  printf '%s\n' "$py" >"$STATE/moto.python"
  have setsid && detach=(setsid -w)
  for attempt in 1 2 3; do
    port="$(choose_port "${FERRY_MOTO_PORT:-}" "$STATE/moto.port")"
    offset="$(file_size "$MOTO_LOG")"
    rm -f "$MOTO_PID_FILE"
    log "starting moto (AWS emulator) on 127.0.0.1:$port (log: $MOTO_LOG)"
    (cd "$STATE" && exec "${detach[@]}" "$py" "$HERE/moto_server.py" \
      --host 127.0.0.1 --port "$port" --pid-file "$MOTO_PID_FILE") \
      </dev/null >>"$MOTO_LOG" 2>&1 3>&- 9>&- &
    launcher=$!
    for _ in $(seq 1 600); do # up to about 2 minutes (a cold venv imports slowly)
      if [ -s "$MOTO_PID_FILE" ] && http_ok "$port" /moto-api/config; then
        printf '%s\n' "$port" >"$STATE/moto.port"
        return 0
      fi
      pid_alive "$launcher" || break
      sleep 0.2
    done
    if pid_alive "$launcher"; then
      kill "$(moto_pid || echo "$launcher")" "$launcher" 2>/dev/null || true
      show_log_since "$MOTO_LOG" "$offset"
      die "moto did not answer on 127.0.0.1:$port in time"
    fi
    if [ -z "${FERRY_MOTO_PORT:-}" ] && [ "$attempt" -lt 3 ] &&
      log_since "$MOTO_LOG" "$offset" | grep -q 'Address already in use'; then
      log "port $port was taken meanwhile; trying another"
      rm -f "$STATE/moto.port"
      continue
    fi
    break
  done
  show_log_since "$MOTO_LOG" "$offset"
  die "moto did not start"
}

stop_moto() {
  local pid
  moto_alive || return 0
  pid="$(moto_pid)"
  log "stopping moto (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    pid_alive "$pid" || return 0
    sleep 0.2
  done
  warn "moto (pid $pid) ignored SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- commands

write_env() {
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "# ferry local stack, written by scripts/local-stack.sh start; source this file"
    echo "export FERRY_DATABASE_URL=postgres://postgres@127.0.0.1:$(pg_port)/postgres"
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$(moto_port)"
    echo "export AWS_ACCESS_KEY_ID=test"
    echo "export AWS_SECRET_ACCESS_KEY=test"
    echo "export AWS_REGION=us-east-1"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    printf 'export FERRY_LOCAL_DIR=%q\n' "$STATE"
    printf 'export FERRY_PG_BINDIR=%q\n' "$(pg_bindir)"
    printf 'export FERRY_PG_CA_FILE=%q\n' "$PG_TLS/ca.crt"
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

cmd_start() {
  check_port_value FERRY_PG_PORT "${FERRY_PG_PORT:-}"
  check_port_value FERRY_MOTO_PORT "${FERRY_MOTO_PORT:-}"
  lock_state
  if pg_running; then
    if [ -n "${FERRY_PG_PORT:-}" ] && [ "$FERRY_PG_PORT" != "$(pg_port)" ]; then
      log "PostgreSQL runs on port $(pg_port), FERRY_PG_PORT=$FERRY_PG_PORT: restarting it"
      stop_pg
      start_pg
    else
      log "PostgreSQL already running on 127.0.0.1:$(pg_port) (pid $(pg_pid))"
    fi
  else
    start_pg
  fi
  if moto_running; then
    if [ -n "${FERRY_MOTO_PORT:-}" ] && [ "$FERRY_MOTO_PORT" != "$(moto_port)" ]; then
      log "moto runs on port $(moto_port), FERRY_MOTO_PORT=$FERRY_MOTO_PORT: restarting it"
      stop_moto
      start_moto
    else
      log "moto already running on 127.0.0.1:$(moto_port) (pid $(moto_pid))"
    fi
  else
    stop_moto # a live but unresponsive one
    start_moto
  fi
  write_env
  log "ready; env file: $ENV_FILE"
  printf '%s\n' "$ENV_FILE" >&3
}

cmd_env() {
  if [ ! -f "$ENV_FILE" ] || ! pg_running || ! moto_running; then
    die "the local stack is not running (state dir $STATE); start it with scripts/local-stack.sh start"
  fi
  cat "$ENV_FILE"
}

cmd_status() {
  local rc=0
  echo "state dir: $STATE"
  if pg_running; then
    echo "postgresql: running, pid $(pg_pid), postgres://postgres@127.0.0.1:$(pg_port)/postgres (socket dir $PG_SOCK, log $PG_LOG)"
  else
    echo "postgresql: not running"
    rc=1
  fi
  if moto_running; then
    echo "moto: running, pid $(moto_pid), http://127.0.0.1:$(moto_port) (log $MOTO_LOG)"
  else
    echo "moto: not running"
    rc=1
  fi
  if [ "$rc" -eq 0 ] && [ -f "$ENV_FILE" ]; then
    echo "env file: $ENV_FILE"
  fi
  return "$rc"
}

cmd_stop() {
  if [ ! -d "$STATE" ]; then
    log "not running (no state dir $STATE)"
    return 0
  fi
  lock_state
  stop_moto
  stop_pg
  log "removing $STATE"
  rm -rf "$STATE"
}

[ "$#" -eq 1 ] || usage
case "$1" in
  start) cmd_start 3>&1 >&2 ;;
  env) cmd_env ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
