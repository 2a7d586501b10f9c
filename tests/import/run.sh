#!/usr/bin/env bash
# The import suite: `arcana import` (and `arcana-repository import`) against databases made by
# arcana-cloud-python's own stack, on SQLite, PostgreSQL and MariaDB.
#
# usage: tests/import/run.sh [BIN_DIR] [pytest args...]   (default: target/debug)
#        IMPORT_BENCH=1 tests/import/run.sh BIN_DIR [bench.py args...]   (the benchmark instead)
#
# PostgreSQL and MariaDB come from ARCANA_TEST_POSTGRES_URL / ARCANA_TEST_MYSQL_URL (their
# variants are skipped without them, and fail instead when CI=true). Python packages go to a
# venv in target/import-venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bins=$(cd "${1:-$root/target/debug}" && pwd)
shift || true
venv=${IMPORT_VENV:-$root/target/import-venv}
for b in arcana arcana-repository; do
  [ -x "$bins/$b" ] || { echo "FATAL: $bins/$b is not built" >&2; exit 1; }
done
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
cd "$here"
if [ -n "${IMPORT_BENCH:-}" ]; then
  backends=sqlite
  [ -n "${ARCANA_TEST_POSTGRES_URL:-}" ] && backends+=,postgres
  [ -n "${ARCANA_TEST_MYSQL_URL:-}" ] && backends+=,mysql
  exec "$venv/bin/python" bench.py "$bins" --backends "$backends" "$@"
fi
ARCANA_BIN_DIR="$bins" "$venv/bin/python" -m pytest -q -rA -p no:cacheprovider test_import.py "$@"
