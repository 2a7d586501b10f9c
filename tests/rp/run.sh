#!/usr/bin/env bash
# The relying-party suite and the browser smoke against arcana in one deployment mode.
#
# usage: tests/rp/run.sh [monolith|layered|microservices] [BIN_DIR]   (default: monolith, target/debug)
#
# Starts the mode's binaries on free loopback ports over a fresh SQLite database, with
# ARCANA_PUBLIC_URL set to the edge (split modes: a key file made by `arcana oidc-keys generate`,
# the auth service signing with it, the gateway publishing its JWK Set), registers the clients
# with `arcana oidc-client create`, runs the Basic OP cases (test_basic_op.py: authlib as the
# relying party), the webhook cases (test_webhooks.py: the standardwebhooks verifier), the Chromium smoke (browser_smoke.py: Playwright on the system's chromium)
# and the consoles' walk (console_smoke.py, with axe-core from npm), whose screenshots go to
# $ARCANA_CI_LOGS/screenshots/<mode> (default target/ci-logs). Python packages go to a venv in
# target/rp-venv, npm packages to target/rp-node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-monolith}
bins=${2:-$root/target/debug}
venv=${RP_VENV:-$root/target/rp-venv}
logs=${ARCANA_CI_LOGS:-$root/target/ci-logs}
case "$mode" in monolith|layered|microservices) ;; *) echo "FATAL: unknown mode $mode" >&2; exit 2;; esac
for b in arcana arcana-gateway arcana-service arcana-auth-service arcana-user-service arcana-repository; do
  [ -x "$bins/$b" ] || { echo "FATAL: $bins/$b is not built" >&2; exit 1; }
done
command -v chromium >/dev/null || { echo "FATAL: chromium is not installed (apt-get install -y chromium)" >&2; exit 1; }
command -v npm >/dev/null || { echo "FATAL: npm is not installed (the consoles' accessibility check needs axe-core)" >&2; exit 1; }

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
http=$(free_port)
# localhost, not 127.0.0.1: a WebAuthn relying party needs a host name (the browser smoke
# registers passkeys), and http://localhost is a secure context.
issuer="http://localhost:$http"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  mkdir -p "$logs"
  for f in "$work"/*.log; do [ -e "$f" ] && cp "$f" "$logs/rp-$mode-$(basename "$f")"; done
  rm -rf "$work"
}
trap cleanup EXIT

# Every process: the same data, issuer, cheap hashes (the suite signs in often), no rate limit.
export ARCANA_DATA_DIR="$work/data" ARCANA_DATABASE_URL="sqlite://$work/data/arcana.db"
export ARCANA_PUBLIC_URL="$issuer" ARCANA_PASSWORD_ITERATIONS=1000 ARCANA_AUTH_RATE_LIMIT=0
export ARCANA_JWT_SECRET="rp-suite-secret-rp-suite-secret-0123456789"
# The webhook receiver of test_webhooks.py listens on loopback: allowed here, refused by default.
export ARCANA_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 ARCANA_WEBHOOK_RETRY_BASE_MS=200 ARCANA_WEBHOOK_POLL_MS=100
admin=(ARCANA_BOOTSTRAP_ADMIN_USERNAME=rp-admin ARCANA_BOOTSTRAP_ADMIN_EMAIL=rp-admin@example.com
       ARCANA_BOOTSTRAP_ADMIN_PASSWORD='RpSuite-Passw0rd')
edge=(ARCANA_HTTP_ADDR="127.0.0.1:$http" ARCANA_GRPC_ADDR="127.0.0.1:$(free_port)"
      ARCANA_METRICS_ADDR="127.0.0.1:$(free_port)")
start() { # name, env..., binary
  local name=$1; shift
  env "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
mkdir -m 700 "$work/data"
if [ "$mode" = monolith ]; then
  start arcana "${edge[@]}" "${admin[@]}" "$bins/arcana"
else
  key=$("$bins/arcana" oidc-keys generate)
  jwks=$(ARCANA_OIDC_SIGNING_KEY="$key" "$bins/arcana" oidc-keys jwks)
  gw=$(openssl rand -hex 24 2>/dev/null || python3 -c 'import secrets; print(secrets.token_hex(24))')
  repo_token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
  repo=$(free_port)
  start repository ARCANA_GRPC_ADDR="127.0.0.1:$repo" ARCANA_METRICS_ADDR="127.0.0.1:$(free_port)" \
    ARCANA_REPOSITORY_TOKEN="$repo_token" "$bins/arcana-repository"
  service() { # name, binary: one service layer on a free port; prints its URL
    local port; port=$(free_port)
    start "$1" "${admin[@]}" ARCANA_GRPC_ADDR="127.0.0.1:$port" ARCANA_METRICS_ADDR="127.0.0.1:$(free_port)" \
      ARCANA_REPOSITORY_URL="http://127.0.0.1:$repo" ARCANA_REPOSITORY_TOKEN="$repo_token" \
      ARCANA_INTERNAL_TOKEN="$gw" ARCANA_OIDC_SIGNING_KEY="$key" ARCANA_OIDC_JWKS="$jwks" "$bins/$2"
    upstream="http://127.0.0.1:$port"
  }
  if [ "$mode" = layered ]; then
    service service arcana-service; upstreams=(ARCANA_SERVICE_URL="$upstream")
  else
    service auth-service arcana-auth-service; auth="$upstream"
    service user-service arcana-user-service
    upstreams=(ARCANA_AUTH_SERVICE_URL="$auth" ARCANA_USER_SERVICE_URL="$upstream")
  fi
  start gateway "${edge[@]}" "${upstreams[@]}" ARCANA_INTERNAL_TOKEN="$gw" ARCANA_OIDC_JWKS="$jwks" \
    "$bins/arcana-gateway"
fi
ready=""
for _ in $(seq 1 150); do
  if curl -fsS "$issuer/.well-known/openid-configuration" >/dev/null 2>&1 &&
     curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
       -d '{"username_or_email":"rp-admin","password":"RpSuite-Passw0rd"}' "$issuer/api/v1/auth/login"; then
    ready=yes; break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { tail -n 20 "$work"/*.log >&2; echo "FATAL: $mode did not come up" >&2; exit 1; }

client() { "$bins/arcana" oidc-client create "$@" 2>>"$work/cli.log"; }
confidential=$(client --name "Basic OP (RS256)" --redirect-uri https://rp.example.com/callback)
eddsa=$(client --name "Basic OP (EdDSA)" --redirect-uri https://rp.example.com/callback --id-token-alg EdDSA --skip-consent)
public=$(client --name "Basic OP (public, PKCE)" --redirect-uri http://localhost:8765/callback --public --skip-consent)
logout=$(client --name "RP-initiated logout" --redirect-uri https://rp.example.com/callback --post-logout-redirect-uri https://rp.example.com/bye --skip-consent)
browser=$(client --name "Browser smoke" --redirect-uri "http://127.0.0.1:$(free_port)/callback")
export ARCANA_RP_ISSUER="$issuer"
export ARCANA_RP_CLIENTS="{\"confidential\": $confidential, \"eddsa\": $eddsa, \"public\": $public, \"logout\": $logout}"
export ARCANA_RP_USER=rp-admin ARCANA_RP_PASSWORD='RpSuite-Passw0rd'
# A service account, made with the CLI, for the client-credentials cases (test_machine.py).
ARCANA_RP_MACHINE=$("$bins/arcana" service-account create --name "rp machine" --role admin \
  --scope users:read 2>>"$work/cli.log")
export ARCANA_RP_MACHINE

echo "relying-party suite: $mode at $issuer"
cd "$here"
"$venv/bin/python" -m pytest -q -rA -p no:cacheprovider test_basic_op.py test_machine.py test_webhooks.py
"$venv/bin/python" browser_smoke.py "$issuer" "$browser" \
  "$ARCANA_RP_USER" "$ARCANA_RP_PASSWORD" "$logs/screenshots/$mode"
# The account and admin consoles: a user's walk, an admin's walk (finding one user among a
# million written into the database first, in the monolith), screenshots at desktop and phone
# widths, axe-core on every page.
node_dir="$root/target/rp-node"
mkdir -p "$node_dir"
cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
(cd "$node_dir" && npm ci --silent --no-audit --no-fund) ||
  { echo "FATAL: npm could not install axe-core" >&2; exit 1; }
seed=()
[ "$mode" = monolith ] && seed=("$work/data/arcana.db" "${ARCANA_CONSOLE_SEED_ROWS:-1000000}")
AXE_JS="$node_dir/node_modules/axe-core/axe.min.js" "$venv/bin/python" console_smoke.py "$issuer" \
  "$ARCANA_RP_USER" "$ARCANA_RP_PASSWORD" "$logs/screenshots/$mode/console" "${seed[@]}"
