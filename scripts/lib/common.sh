# shellcheck shell=bash
# Shared helpers for ferry's scripts. Source it from a bash script:
#
#   # shellcheck source-path=SCRIPTDIR source=lib/common.sh disable=SC1091 # SC1091 comes only without -x (editors); scripts/test.sh runs shellcheck -x, which follows it
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# It defines functions and a few variables only (no `set` options, no traps):
#   FERRY_REPO             absolute path of the repository (physical, symlinks resolved)
#   FERRY_MOTO_VERSION     moto version the venv gets (default 5.2.1; env overrides)
#   log MSG...             progress line on stderr, prefixed with the script name
#   warn MSG...            "warning:" line on stderr
#   die MSG...             error line on stderr, exit 1
#   have CMD               true when CMD is on PATH
#   as_root CMD...         run CMD as root: directly when root, else through sudo
#   need_root_or_sudo      die unless as_root can work (root, or sudo is installed)
#   apt_install PKG...     install missing Debian packages (noninteractive, apt-get update
#                          once if needed); installed ones are skipped
#   ensure_python_moto     print the path of a python with moto[server] $FERRY_MOTO_VERSION
#                          (system python3 when it has exactly that version, else
#                          $FERRY_REPO/.venv, created and pip-installed on first use);
#                          FERRY_MOTO_PYTHON=/path/to/python skips the search
#   find_pg_bindir         print the directory with initdb and pg_ctl (initdb on PATH,
#                          else the newest /usr/lib/postgresql/*/bin); fails if none
#   ensure_pg_bindir       same, installing Debian's `postgresql` package if none
#   free_port              print a TCP port free on 127.0.0.1 right now
#   pid_alive PID          true when process PID runs (exited zombies count as gone)
#   ferry_default_local_dir  print the default state dir of scripts/local-stack.sh
#   ensure_checkov         print the path of a checkov $FERRY_CHECKOV_VERSION (default 3.3.30;
#                          env overrides) in $FERRY_REPO/.venv, pip-installing it on first use
#   ensure_openapi_validator  the same for openapi-spec-validator $FERRY_OPENAPI_VALIDATOR_VERSION
#   ensure_cargo_lambda    print the path of `cargo-lambda` $FERRY_CARGO_LAMBDA_VERSION (default
#                          1.9.2) in $FERRY_REPO/.venv, pip-installing it on first use
#   ensure_schemathesis    print the path of `st` (schemathesis $FERRY_SCHEMATHESIS_VERSION,
#                          default 4.32.5) in $FERRY_REPO/.venv-schemathesis, pip-installing it on first use
#   tail_log FILE [N]      print the last N (40) lines of FILE on stderr, framed
#   local_api_token GROUP...  print an HS256 JWT (1 h) for the api function served locally,
#                          signed with $FERRY_API_LOCAL_JWT_SECRET, naming GROUPs in
#                          `cognito:groups` (python3's standard library only)

FERRY_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
FERRY_MOTO_VERSION="${FERRY_MOTO_VERSION:-5.2.1}"
FERRY_CHECKOV_VERSION="${FERRY_CHECKOV_VERSION:-3.3.30}"
FERRY_OPENAPI_VALIDATOR_VERSION="${FERRY_OPENAPI_VALIDATOR_VERSION:-0.9.0}"
FERRY_CARGO_LAMBDA_VERSION="${FERRY_CARGO_LAMBDA_VERSION:-1.9.2}"
FERRY_SCHEMATHESIS_VERSION="${FERRY_SCHEMATHESIS_VERSION:-4.32.5}"

log() {
  printf '%s: %s\n' "${FERRY_LOG_NAME:-$(basename "$0")}" "$*" >&2
}

warn() {
  log "warning: $*"
}

die() {
  log "error: $*"
  exit 1
}

have() {
  command -v "$1" >/dev/null 2>&1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "need root to run: $* (install sudo or run as root)"
  fi
}

need_root_or_sudo() {
  [ "$(id -u)" -eq 0 ] || have sudo || die "root or sudo is needed to install system packages"
}

_ferry_apt_updated=0

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  have apt-get || die "cannot install ${missing[*]}: apt-get not found (install them by hand)"
  need_root_or_sudo
  log "installing Debian packages: ${missing[*]}"
  local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
  if ! as_root "${install[@]}" >&2; then
    [ "$_ferry_apt_updated" -eq 0 ] || die "apt-get install ${missing[*]} failed"
    log "apt-get install failed; running apt-get update and retrying"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
    _ferry_apt_updated=1
    as_root "${install[@]}" >&2 || die "apt-get install ${missing[*]} failed"
  fi
}

# True when python $1 imports moto's server and has moto $FERRY_MOTO_VERSION.
_ferry_python_has_moto() {
  "$1" - "$FERRY_MOTO_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import flask, werkzeug, moto.server  # noqa: F401
import moto
sys.exit(0 if moto.__version__ == sys.argv[1] else 1)
PY
}

ensure_python_moto() {
  if [ -n "${FERRY_MOTO_PYTHON:-}" ]; then
    _ferry_python_has_moto "$FERRY_MOTO_PYTHON" ||
      die "FERRY_MOTO_PYTHON=$FERRY_MOTO_PYTHON cannot import moto.server $FERRY_MOTO_VERSION, flask, werkzeug"
    printf '%s\n' "$FERRY_MOTO_PYTHON"
    return 0
  fi
  local venv="$FERRY_REPO/.venv" sys_py
  sys_py="$(command -v python3 || true)"
  if [ -n "$sys_py" ] && _ferry_python_has_moto "$sys_py"; then
    printf '%s\n' "$sys_py"
    return 0
  fi
  if [ -x "$venv/bin/python" ] && _ferry_python_has_moto "$venv/bin/python"; then
    printf '%s\n' "$venv/bin/python"
    return 0
  fi
  _ferry_venv_install _ferry_venv_has_moto "moto[server]==$FERRY_MOTO_VERSION"
  printf '%s\n' "$venv/bin/python"
}

# True when $1 is a checkov of version $FERRY_CHECKOV_VERSION.
_ferry_checkov_ok() {
  [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "$FERRY_CHECKOV_VERSION" ]
}

ensure_checkov() {
  _ferry_checkov_ok "$FERRY_REPO/.venv/bin/checkov" ||
    _ferry_venv_install _ferry_venv_has_checkov "checkov==$FERRY_CHECKOV_VERSION"
  printf '%s\n' "$FERRY_REPO/.venv/bin/checkov"
}

# True when the venv's openapi-spec-validator is $FERRY_OPENAPI_VALIDATOR_VERSION.
_ferry_venv_has_openapi_validator() {
  [ -x "$FERRY_REPO/.venv/bin/openapi-spec-validator" ] &&
    [ "$("$FERRY_REPO/.venv/bin/python" -c \
      'import importlib.metadata as m; print(m.version("openapi-spec-validator"))' 2>/dev/null)" \
      = "$FERRY_OPENAPI_VALIDATOR_VERSION" ]
}

ensure_openapi_validator() {
  _ferry_venv_has_openapi_validator ||
    _ferry_venv_install _ferry_venv_has_openapi_validator "openapi-spec-validator==$FERRY_OPENAPI_VALIDATOR_VERSION"
  printf '%s\n' "$FERRY_REPO/.venv/bin/openapi-spec-validator"
}

# True when the Python distribution $1 is installed at version $2 in the venv whose bin/ holds
# the executable $3.
_ferry_venv_has_dist() {
  [ -x "$3" ] &&
    [ "$("$(dirname "$3")/python" -c \
      'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null)" = "$2" ]
}

_ferry_venv_has_cargo_lambda() {
  _ferry_venv_has_dist cargo-lambda "$FERRY_CARGO_LAMBDA_VERSION" "$FERRY_REPO/.venv/bin/cargo-lambda"
}

ensure_cargo_lambda() {
  _ferry_venv_has_cargo_lambda ||
    _ferry_venv_install _ferry_venv_has_cargo_lambda "cargo-lambda==$FERRY_CARGO_LAMBDA_VERSION"
  printf '%s\n' "$FERRY_REPO/.venv/bin/cargo-lambda"
}

# schemathesis has a venv of its own: it brings pytest, which needs packaging >= 24, and checkov
# needs packaging < 24.
FERRY_SCHEMATHESIS_VENV="$FERRY_REPO/.venv-schemathesis"

_ferry_venv_has_schemathesis() {
  _ferry_venv_has_dist schemathesis "$FERRY_SCHEMATHESIS_VERSION" "$FERRY_SCHEMATHESIS_VENV/bin/st"
}

ensure_schemathesis() {
  _ferry_venv_has_schemathesis ||
    _ferry_venv_install _ferry_venv_has_schemathesis "schemathesis==$FERRY_SCHEMATHESIS_VERSION" \
      "$FERRY_SCHEMATHESIS_VENV"
  printf '%s\n' "$FERRY_SCHEMATHESIS_VENV/bin/st"
}

_ferry_venv_has_moto() {
  [ -x "$FERRY_REPO/.venv/bin/python" ] && _ferry_python_has_moto "$FERRY_REPO/.venv/bin/python"
}

_ferry_venv_has_checkov() {
  _ferry_checkov_ok "$FERRY_REPO/.venv/bin/checkov"
}

# _ferry_venv_install CHECK REQUIREMENT [VENV]: pip-installs REQUIREMENT into VENV (default
# $FERRY_REPO/.venv; created first) unless the function CHECK says it is there. One installer at
# a time: several scripts and test processes may ask at once.
_ferry_venv_install() {
  local check="$1" requirement="$2" venv="${3:-$FERRY_REPO/.venv}" sys_py
  sys_py="$(command -v python3 || true)"
  if [ -z "$sys_py" ]; then
    apt_install python3 python3-venv
    sys_py="$(command -v python3)" || die "python3 not found after installing it"
  fi
  (
    exec 8>"${TMPDIR:-/tmp}/ferry-venv-$(id -u)-$(_ferry_repo_hash).lock" || die "cannot open the venv lock file"
    flock 8 || die "flock on the venv lock file failed"
    "$check" && exit 0
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
      log "creating a Python virtualenv at $venv"
      rm -rf "$venv"
      if ! "$sys_py" -m venv "$venv" >&2; then
        rm -rf "$venv"
        apt_install python3-venv
        "$sys_py" -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
      fi
    fi
    log "installing $requirement into $venv (pip)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement" >&2 ||
      die "pip install $requirement failed"
    "$check" || die "$requirement in $venv does not work after installing it"
  ) || exit 1
}

find_pg_bindir() {
  local initdb dir
  if initdb="$(command -v initdb 2>/dev/null)"; then
    dir="$(dirname "$(readlink -f "$initdb")")"
    if [ -x "$dir/pg_ctl" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    printf '%s\n' "$dir"
    return 0
  fi
  return 1
}

ensure_pg_bindir() {
  find_pg_bindir && return 0
  log "no PostgreSQL server binaries found (initdb, pg_ctl)"
  apt_install postgresql
  find_pg_bindir || die "PostgreSQL installed but initdb/pg_ctl not found under /usr/lib/postgresql/*/bin"
}

free_port() {
  local py port
  py="$(command -v python3 || true)"
  if [ -n "$py" ]; then
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return 0
  fi
  # No python: probe random ports until one refuses connections.
  local i
  for i in $(seq 1 50); do
    port=$((20000 + (RANDOM * 32768 + RANDOM + i) % 40000))
    if ! (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "found no free TCP port on 127.0.0.1"
}

# 8 hex digits identifying this checkout (hash of FERRY_REPO).
_ferry_repo_hash() {
  if have sha256sum; then
    printf '%s' "$FERRY_REPO" | sha256sum | cut -c1-8
  else
    printf '%08x\n' "$(printf '%s' "$FERRY_REPO" | cksum | cut -d' ' -f1)"
  fi
}

pid_alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  # An exited process stays a zombie (state Z) until its parent (often init) reaps it.
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  [ "${stat:0:1}" != Z ]
}

ferry_default_local_dir() {
  printf '%s/ferry-local-%s-%s\n' "${TMPDIR:-/tmp}" "$(id -u)" "$(_ferry_repo_hash)"
}

tail_log() {
  local file="$1" lines="${2:-40}"
  if [ -s "$file" ]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2
    printf -- '-----\n' >&2
  else
    printf -- '(%s is empty or missing)\n' "$file" >&2
  fi
}

local_api_token() {
  [ -n "${FERRY_API_LOCAL_JWT_SECRET:-}" ] || die "local_api_token: FERRY_API_LOCAL_JWT_SECRET is not set"
  have python3 || die "local_api_token: python3 not found"
  FERRY_API_LOCAL_JWT_SECRET="$FERRY_API_LOCAL_JWT_SECRET" python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, os, sys, time

def part(data):
    text = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

claims = {"sub": "local-developer", "cognito:groups": sys.argv[1:], "exp": int(time.time()) + 3600}
signed = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
key = os.environ["FERRY_API_LOCAL_JWT_SECRET"].encode()
tag = hmac.new(key, signed.encode(), hashlib.sha256).digest()
print(signed + "." + base64.urlsafe_b64encode(tag).rstrip(b"=").decode())
PY
}
