#!/usr/bin/env bash
# Builds one arcana binary the way its image ships it: release, only the Cargo features of its
# layer (so a layer binary links only its layer), every database backend where a database is
# opened (SQLite bundled, PostgreSQL via libpq, MySQL/MariaDB via libmariadb).
# arcana-healthcheck is the images' HEALTHCHECK program.
# Usage: build-bin.sh BINARY [OUT_DIR]   (run from the workspace root; offline: deps are fetched
# beforehand with `cargo fetch --locked`). With OUT_DIR the binary is copied there.
set -euo pipefail
bin=${1:?usage: build-bin.sh BINARY [OUT_DIR]}
case $bin in
  arcana)              features=monolith,mysql ;;
  arcana-gateway)      features=gateway ;;
  arcana-service)      features=service ;;
  arcana-auth-service) features=auth ;;
  arcana-user-service) features=users ;;
  arcana-repository)   features=repository,mysql ;;
  arcana-healthcheck)  features="" ;;
  *) echo "build-bin.sh: unknown binary $bin" >&2; exit 2 ;;
esac
if [ "$bin" = arcana-healthcheck ]; then
  # The images' HEALTHCHECK (std only: no feature, no dependency).
  cargo build --release --locked --offline -p healthcheck --bin "$bin"
else
  cargo build --release --locked --offline -p arcana --no-default-features --features "$features" --bin "$bin"
fi
if [ -n "${2:-}" ]; then
  mkdir -p "$2"
  cp "target/release/$bin" "$2/$bin"
fi
