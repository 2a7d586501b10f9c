#!/usr/bin/env bash
# Where the monolith's CPU goes on the authenticated read, as real clients call it.
#
#   tools/profile-read.sh [path] [extra wrk args...]
#
# path: default /api/v1/users/{own id}; e.g. /api/v1/auth/me or /health/live.
# Starts the release monolith on a fresh SQLite file (production hash cost is irrelevant here:
# the one registration uses cheap hashes), registers one user, then drives 64 keep-alive
# connections with wrk (one thread) sending `Accept-Encoding: gzip, br` and the bearer token,
# while `perf record -g` samples the server for 8 s. Prints wrk's figures and the hottest
# symbols (self time). Set PLAIN=1 to leave Accept-Encoding out, ARCANA_BIN to profile another
# build; any ARCANA_* variable set reaches the server (e.g. ARCANA_USER_CACHE_SIZE=0).
# Needs: perf, wrk (apt-get install -y linux-perf wrk), curl, a release build
# (cargo build --release -p arcana --bin arcana).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ARCANA_BIN:-target/release/arcana}
[ -x "$bin" ] || { echo "build first: cargo build --release -p arcana --bin arcana" >&2; exit 1; }
for tool in perf wrk curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

dir=$(mktemp -d)
port=${PORT:-18080}
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
ARCANA_DATA_DIR="$dir" ARCANA_HTTP_ADDR="127.0.0.1:$port" ARCANA_GRPC_ADDR="127.0.0.1:$((port + 1))" \
ARCANA_PASSWORD_ITERATIONS=1000 ARCANA_AUTH_RATE_LIMIT=0 ARCANA_LOG_FORMAT=json RUST_LOG=info \
    "$bin" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
    sleep 0.1
done
answer=$(curl -fs -H 'content-type: application/json' \
    -d '{"username":"profiled","email":"profiled@example.com","password":"Secret123"}' \
    "http://127.0.0.1:$port/api/v1/auth/register")
token=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
id=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["user"]["id"])')
path=${1:-/api/v1/users/$id}
shift || true

headers=(-H "Authorization: Bearer $token")
[ "${PLAIN:-0}" = 1 ] || headers+=(-H "Accept-Encoding: gzip, br")
wrk -t1 -c64 -d12s "${headers[@]}" "$@" "http://127.0.0.1:$port$path" > "$dir/wrk" &
wrk_pid=$!
sleep 2
perf record -q -F 1999 -g -o "$dir/perf.data" -p "$pid" -- sleep 8 2>/dev/null
wait "$wrk_pid"
[ -z "${PERF_OUT:-}" ] || cp "$dir/perf.data" "$PERF_OUT"
cat "$dir/wrk"
echo "--- hottest symbols (self time, % of server samples)"
perf report -i "$dir/perf.data" --no-children --sort symbol --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//; s/ +$//' | head -30
echo "--- by where the time is spent (inclusive: a sample counts for every frame on its stack)"
perf report -i "$dir/perf.data" --children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' \
    | sed -E 's/ +- +- *$//; s/ +$//' \
    | grep -E 'deflate|compress|sqlite3_step|spawn_blocking|futex|schedule$|__libc_malloc|cfree|TokenVerifier|verify|serde_json|metrics::|tracing|moka' \
    | head -25
