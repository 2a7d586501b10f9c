#!/usr/bin/env bash
# Creates the secret files the layered and microservices compose files mount (once; existing files
# are kept): the internal credential, the HS256 JWT secret, the PostgreSQL password, the database
# URL built from it, and the bootstrap admin's password. The directory is private to you; the
# files are world-readable because compose bind-mounts them as they are and the containers run as
# uid 10001.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
rand() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
put() { # name value
  if [ ! -s "$dir/$1" ]; then
    printf '%s' "$2" >"$dir/$1"
    chmod 0644 "$dir/$1"
    echo "created secrets/$1"
  fi
}
put internal-token "$(rand 32)"
put jwt-secret "$(rand 48)"
put postgres-password "$(rand 24)"
put database-url "postgres://arcana:$(cat "$dir/postgres-password")@postgres:5432/arcana"
put admin-password "Admin-1$(rand 12)"
echo "bootstrap admin password: $(cat "$dir/admin-password")"
