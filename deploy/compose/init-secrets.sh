#!/usr/bin/env bash
# Creates the secret files the layered and microservices compose files mount (once; existing files
# are kept):
#   internal-token     the gateway's credential towards the service layer (ARCANA_INTERNAL_TOKEN)
#   repository-token   the service layer's credential towards the repository (ARCANA_REPOSITORY_TOKEN;
#                      the repository accepts nothing else, and the gateway never gets it)
#   jwt-private-key    Ed25519 signing key, PKCS#8 PEM (only the service / auth-service mount it)
#   jwt-public-keys    its public key, PEM (what the gateway verifies with); append the previous
#                      public key here while rotating
#   data-key           the key that seals TOTP secrets at rest (ARCANA_DATA_KEY_FILE; the service
#                      layers only): one base64 AES-256 key
#   postgres-password, database-url, admin-password (the bootstrap admin's), smtp-url (may be empty)
# Needs OpenSSL >= 1.1.1 for the Ed25519 key pair. The directory is private to you; the files are
# world-readable because compose bind-mounts them as they are and the containers run as uid 10001.
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
put repository-token "$(rand 32)"
put postgres-password "$(rand 24)"
put data-key "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
put database-url "postgres://arcana:$(cat "$dir/postgres-password")@postgres:5432/arcana"
put admin-password "Admin-1$(rand 12)"
# The SMTP URL (smtp://user:pass@host:587 or smtps://…) from ARCANA_SMTP_URL when this runs;
# empty: mails are written as .eml files inside the container and never sent.
if [ ! -e "$dir/smtp-url" ]; then
  printf '%s' "${ARCANA_SMTP_URL:-}" >"$dir/smtp-url"
  chmod 0644 "$dir/smtp-url"
  echo "created secrets/smtp-url${ARCANA_SMTP_URL:+ (from ARCANA_SMTP_URL)}"
fi

# EdDSA: the service layer signs with the private key; the gateway holds only the public keys.
command -v openssl >/dev/null || { echo "init-secrets.sh: openssl (>= 1.1.1) is needed for the Ed25519 key pair" >&2; exit 1; }
if [ ! -s "$dir/jwt-private-key" ]; then
  openssl genpkey -algorithm ed25519 -out "$dir/jwt-private-key.tmp"
  chmod 0644 "$dir/jwt-private-key.tmp"
  mv "$dir/jwt-private-key.tmp" "$dir/jwt-private-key"
  rm -f "$dir/jwt-public-keys"
  echo "created secrets/jwt-private-key"
fi
if [ ! -s "$dir/jwt-public-keys" ]; then
  openssl pkey -in "$dir/jwt-private-key" -pubout -out "$dir/jwt-public-keys"
  chmod 0644 "$dir/jwt-public-keys"
  echo "created secrets/jwt-public-keys"
fi
echo "bootstrap admin password: $(cat "$dir/admin-password")"
