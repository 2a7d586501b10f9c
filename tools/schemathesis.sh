#!/usr/bin/env bash
# Schemathesis against a fresh monolith: is the OpenAPI document the contract the server keeps?
#
#   tools/schemathesis.sh [ST_RUN_OPTIONS...]      (`just schemathesis`)
#
# Builds the monolith (debug; ARCANA_BIN=path uses that binary instead), starts it on free
# loopback ports with a scratch data directory (SQLite) and a bootstrap admin, registers a user,
# then runs `st run` against the document the server serves (/api-docs/openapi.json): every
# operation with the admin's access token, the default checks (ST202 refined by
# tools/schemathesis_hooks.py), a fixed number of examples per operation, a fixed seed and one
# worker, so a run is reproducible. Exits with Schemathesis's status; the server's log is printed
# when it fails.
#
# Environment: ST_EXAMPLES (default 50), ST_SEED (default 1), ST_PHASES (default
# examples,coverage,fuzzing; the document declares no links, so there is no stateful phase),
# ARCANA_BIN, ARCANA_TOOLS_DIR (where Schemathesis is installed, in a venv: default
# ~/.cache/arcana-tools, as .ci/deploy-checks). Extra arguments go to `st run`.
# Not part of .ci/run: it takes minutes and needs PyPI once.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS=schemathesis==4.32.5
examples=${ST_EXAMPLES:-50}
seed=${ST_SEED:-1}
phases=${ST_PHASES:-examples,coverage,fuzzing}
tools=${ARCANA_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/arcana-tools}

# Schemathesis, pinned, in its own venv.
venv=$tools/schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "${SCHEMATHESIS#*==}"; then
  echo "installing $SCHEMATHESIS into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "$SCHEMATHESIS"
fi

if [ -z "${ARCANA_BIN:-}" ]; then
  cargo build -q -p arcana --bin arcana
  ARCANA_BIN=${CARGO_TARGET_DIR:-target}/debug/arcana
fi

work=$(mktemp -d /tmp/arcana-schemathesis-XXXXXX)
pid=
cleanup() {
  local rc=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ -f "$work/arcana.log" ]; then
    echo "--- monolith log (last 40 lines)" >&2
    tail -n 40 "$work/arcana.log" >&2
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http=$(free_port)
base=http://127.0.0.1:$http
admin_password=$(python3 -c 'import secrets; print("St-" + secrets.token_hex(8) + "Aa1")')

# Rate limits off (the fuzzer would only see 429s), cheap password hashes, tokens that outlive
# the run, mails as files in the scratch directory.
env ARCANA_DATA_DIR="$work/data" ARCANA_MAIL_DIR="$work/mail" \
  ARCANA_HTTP_ADDR="127.0.0.1:$http" ARCANA_GRPC_ADDR="127.0.0.1:$(free_port)" \
  ARCANA_METRICS_ADDR="127.0.0.1:$(free_port)" \
  ARCANA_AUTH_RATE_LIMIT=0 ARCANA_PASSWORD_CHANGE_RATE_LIMIT=0 \
  ARCANA_PASSWORD_ITERATIONS=1000 ARCANA_ACCESS_TTL=86400 ARCANA_DRAIN_DELAY_MS=0 \
  ARCANA_BOOTSTRAP_ADMIN_USERNAME=st-admin ARCANA_BOOTSTRAP_ADMIN_EMAIL=st-admin@example.com \
  ARCANA_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
  ARCANA_LOG_FORMAT=json RUST_LOG=warn \
  "$ARCANA_BIN" serve >"$work/arcana.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$base/api-docs/openapi.json" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "the monolith exited" >&2; exit 1; }
  sleep 0.2
done

# post PATH JSON -> the answer's body (fails on a non-2xx answer)
post() { curl -fsS -X POST "$base$1" -H 'content-type: application/json' --data "$2"; }
post /api/v1/auth/register \
  '{"username":"st-user","email":"st-user@example.com","password":"Secret123"}' >/dev/null

# tools/schemathesis_hooks.py: the admin's access token on every request (logged in again after a
# 401: the fuzzer ends the session of the token it carries, by logging out, deleting the session
# or changing the admin's role), and ST202 refined: refusals for what a fuzzer cannot have or a
# schema cannot state (a made-up link token or cursor, `until` after `since`, "own account")
# pass; any other refusal of a schema-valid request still fails.
echo "schemathesis against $base: $examples examples per operation, seed $seed, phases $phases" >&2
# In the scratch directory: Schemathesis keeps a cache of the failures it found (.schemathesis/)
# and replays them in the next run of its directory; each run here starts without one.
hooks=$PWD/tools/schemathesis_hooks.py
cd "$work"
ST_BASE_URL=$base ST_USERNAME=st-admin ST_PASSWORD=$admin_password SCHEMATHESIS_HOOKS=$hooks \
  "$venv/bin/st" run "$base/api-docs/openapi.json" \
  --max-examples "$examples" --seed "$seed" --workers 1 --phases "$phases" \
  --exclude-checks positive_data_acceptance --output-sanitize false "$@"
