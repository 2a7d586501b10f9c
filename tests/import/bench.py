"""Benchmark of `arcana import`: a Python-era database of N users (made by SQLAlchemy, with
Werkzeug hashes), imported into a fresh arcana database of each backend; prints rows per second
and the peak RSS of the importing process for the first import, a second run (idempotent:
every row unchanged, nothing written: the cost of reading and comparing alone) and a dry run.

usage: python bench.py BIN_DIR [--rows 100000] [--batch-size 2000] [--backends sqlite,postgres,mysql]
PostgreSQL and MariaDB come from ARCANA_TEST_POSTGRES_URL / ARCANA_TEST_MYSQL_URL.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from werkzeug.security import generate_password_hash

import python_era
from python_era import User, UserRole, UserStatus, utcnow


def make_source(path: Path, rows: int) -> str:
    """N users in the Python model's table; 1 in 100 has a username arcana refuses."""
    url = python_era.create_database(None, str(path))
    # Hashing is not what is measured: a pool of real Werkzeug hashes, reused.
    hashes = [generate_password_hash(f"Passw0rd-{i}", method="pbkdf2:sha256:1000") for i in range(200)]
    hashes += [generate_password_hash(f"Passw0rd-{i}", method="scrypt:1024:8:1") for i in range(20)]
    roles = [UserRole.USER] * 18 + [UserRole.ADMIN, UserRole.GUEST]
    statuses = [UserStatus.ACTIVE] * 17 + [UserStatus.INACTIVE, UserStatus.SUSPENDED, UserStatus.DELETED]
    now = utcnow()
    engine = create_engine(url)
    with engine.begin() as c:
        chunk = []
        for i in range(1, rows + 1):
            chunk.append(
                dict(
                    username=f"user {i}" if i % 100 == 0 else f"user{i:07d}",
                    email=f"user{i:07d}@example.com",
                    password_hash=hashes[i % len(hashes)],
                    first_name=f"First{i}",
                    last_name="Last",
                    phone="+1 555 0100" if i % 3 == 0 else None,
                    avatar_url=None,
                    role=roles[i % len(roles)],
                    status=statuses[i % len(statuses)],
                    is_verified=i % 2 == 0,
                    is_active=True,
                    created_at=now - timedelta(days=i % 1000),
                    updated_at=now,
                    last_login_at=now if i % 4 == 0 else None,
                )
            )
            if len(chunk) == 10_000:
                c.execute(insert(User), chunk)
                chunk = []
        if chunk:
            c.execute(insert(User), chunk)
    engine.dispose()
    return url


def target(backend: str, work: Path) -> tuple[str, str | None, str | None]:
    """(arcana database URL, server admin URL, SQLAlchemy URL) of a fresh database."""
    if backend == "sqlite":
        d = work / f"arcana-{uuid.uuid4().hex[:6]}"
        d.mkdir(mode=0o700)
        return f"sqlite://{d}/arcana.db", None, None
    var = {"postgres": "ARCANA_TEST_POSTGRES_URL", "mysql": "ARCANA_TEST_MYSQL_URL"}[backend]
    base = os.environ[var]
    scheme = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}[backend]
    server = scheme + "://" + base.split("://", 1)[1]
    name = f"arcana_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, server, server.rsplit("/", 1)[0] + "/" + name


def run(bins: Path, db: str, source: str, *args: str) -> tuple[float, int, dict]:
    """One `arcana import`: (seconds, peak RSS in KiB of that process, report).

    The peak is the process's own high-water mark (VmHWM, polled every 10 ms): the rusage of a
    child started from this Python process would count the parent's memory from before exec."""
    env = dict(os.environ, ARCANA_DATABASE_URL=db, RUST_LOG="warn")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        p = subprocess.Popen(
            [str(bins / "arcana"), "import", "--from", source, "--json", *args],
            env=env, stdout=out, stderr=err,
        )
        peak = 0
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"import failed ({p.returncode}): {err.read()[-2000:]}")
        out.seek(0)
        return elapsed, peak, json.load(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", type=Path)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--backends", default="sqlite,postgres,mysql")
    a = ap.parse_args()
    bins = a.bins.resolve()
    with tempfile.TemporaryDirectory(prefix="arcana-import-bench-") as work:
        work = Path(work)
        t0 = time.perf_counter()
        source = make_source(work / "python.db", a.rows)
        print(f"source: {a.rows:,} users in a Python-era SQLite database (SQLAlchemy, Werkzeug hashes), "
              f"made in {time.perf_counter() - t0:.1f} s")
        print(f"{'target':<9} {'run':<22} {'seconds':>8} {'rows/s':>9} {'peak RSS':>9}  report")
        for backend in a.backends.split(","):
            db, server, sqla = target(backend, work)
            try:
                for label, args in [
                    ("first import", ()),
                    ("second run (no change)", ()),
                    ("dry run", ("--dry-run",)),
                ]:
                    secs, rss, report = run(bins, db, source, "--batch-size", str(a.batch_size), *args)
                    summary = (f"created {report['created']:,} unchanged {report['unchanged']:,} "
                               f"refused {len(report['refused']):,}")
                    print(f"{backend:<9} {label:<22} {secs:>8.2f} {report['rows'] / secs:>9,.0f} "
                          f"{rss / 1024:>7.1f} MB  {summary}", flush=True)
            finally:
                if server:
                    python_era.drop_database(server, sqla)


if __name__ == "__main__":
    main()
