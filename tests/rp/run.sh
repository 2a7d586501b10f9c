#!/usr/bin/env bash
# The relying-party suite and the browser smoke against a monolith started here.
#
# usage: tests/rp/run.sh [path/to/arcana]   (default: target/debug/arcana)
#
# Starts the binary on free loopback ports with a fresh SQLite data dir and ARCANA_PUBLIC_URL set to
# itself, registers the clients with `arcana oidc-client create`, runs the Basic OP cases
# (test_basic_op.py: authlib as the relying party) and the Chromium smoke (browser_smoke.py:
# Playwright on the system's chromium), whose screenshots go to $ARCANA_CI_LOGS/screenshots
# (default target/ci-logs). Python packages go to a venv in target/rp-venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/target/debug/arcana}
venv=${RP_VENV:-$root/target/rp-venv}
logs=${ARCANA_CI_LOGS:-$root/target/ci-logs}
[ -x "$bin" ] || { echo "FATAL: $bin is not built" >&2; exit 1; }
command -v chromium >/dev/null || { echo "FATAL: chromium is not installed (apt-get install -y chromium)" >&2; exit 1; }

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
http=$(free_port)
export ARCANA_DATA_DIR="$work/data"
export ARCANA_HTTP_ADDR="127.0.0.1:$http" ARCANA_GRPC_ADDR="127.0.0.1:$(free_port)"
export ARCANA_METRICS_ADDR="127.0.0.1:$(free_port)"
export ARCANA_PUBLIC_URL="http://127.0.0.1:$http"
export ARCANA_PASSWORD_ITERATIONS=1000 ARCANA_AUTH_RATE_LIMIT=0
export ARCANA_BOOTSTRAP_ADMIN_USERNAME=rp-admin ARCANA_BOOTSTRAP_ADMIN_EMAIL=rp-admin@example.com
export ARCANA_BOOTSTRAP_ADMIN_PASSWORD='RpSuite-Passw0rd'
"$bin" >"$work/arcana.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  mkdir -p "$logs" && cp "$work/arcana.log" "$logs/rp-suite-arcana.log" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$ARCANA_PUBLIC_URL/.well-known/openid-configuration" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/arcana.log" >&2; echo "FATAL: arcana exited" >&2; exit 1; }
  sleep 0.2
done

client() { "$bin" oidc-client create "$@" 2>>"$work/cli.log"; }
confidential=$(client --name "Basic OP (RS256)" --redirect-uri https://rp.example.com/callback)
eddsa=$(client --name "Basic OP (EdDSA)" --redirect-uri https://rp.example.com/callback --id-token-alg EdDSA --skip-consent)
public=$(client --name "Basic OP (public, PKCE)" --redirect-uri http://localhost:8765/callback --public --skip-consent)
browser=$(client --name "Browser smoke" --redirect-uri "http://127.0.0.1:$(free_port)/callback")
export ARCANA_RP_ISSUER="$ARCANA_PUBLIC_URL"
export ARCANA_RP_CLIENTS="{\"confidential\": $confidential, \"eddsa\": $eddsa, \"public\": $public}"
export ARCANA_RP_USER="$ARCANA_BOOTSTRAP_ADMIN_USERNAME" ARCANA_RP_PASSWORD="$ARCANA_BOOTSTRAP_ADMIN_PASSWORD"

cd "$here"
"$venv/bin/python" -m pytest -q -rA -p no:cacheprovider test_basic_op.py
"$venv/bin/python" browser_smoke.py "$ARCANA_PUBLIC_URL" "$browser" \
  "$ARCANA_RP_USER" "$ARCANA_RP_PASSWORD" "$logs/screenshots"
