"""Fixtures of the import suite: arcana binaries, fresh arcana databases on every backend, a
monolith to log in through, and the Python-era source databases (python_era.py)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

import python_era

ROOT = Path(__file__).resolve().parents[2]
BINS = Path(os.environ.get("ARCANA_BIN_DIR", ROOT / "target" / "debug"))
ITERATIONS = 1000
SECRET = "import-suite-secret-import-suite-0123456789"


def server_url(backend: str) -> str | None:
    """The SQLAlchemy URL of the test server of `backend` (its `test` database), or None."""
    var = {"postgres": "ARCANA_TEST_POSTGRES_URL", "mysql": "ARCANA_TEST_MYSQL_URL"}[backend]
    url = os.environ.get(var)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{var} is not set: the {backend} variant must run in CI")
        pytest.skip(f"{var} is not set")
    scheme = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}[backend]
    return scheme + "://" + url.split("://", 1)[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """A fresh arcana database (SQLite file, or a new database on the PostgreSQL/MariaDB
    server) with the arcana binaries pointed at it."""

    def __init__(self, backend: str, tmp: Path):
        self.backend, self.tmp = backend, tmp
        self.data = tmp / "arcana-data"
        self.data.mkdir(mode=0o700)
        if backend == "sqlite":
            self.url = f"sqlite://{self.data}/arcana.db"
            self.sqla = f"sqlite:///{self.data}/arcana.db"
            self.server = None
        else:
            self.server = server_url(backend)
            name = f"arcana_{uuid.uuid4().hex[:12]}"
            admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f"CREATE DATABASE {name}"))
            admin.dispose()
            self.sqla = self.server.rsplit("/", 1)[0] + "/" + name
            self.url = self.sqla.replace("postgresql+psycopg", "postgres").replace(
                "mysql+pymysql", "mysql"
            )

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ARCANA_DATABASE_URL=self.url,
            ARCANA_DATA_DIR=str(self.data),
            ARCANA_PASSWORD_ITERATIONS=str(ITERATIONS),
            ARCANA_AUTH_RATE_LIMIT="0",
            ARCANA_JWT_SECRET=SECRET,
            RUST_LOG="warn",
        )
        env.update(extra)
        return env

    def import_(
        self, source: str, *args: str, binary: str = "arcana", via: str = "flag"
    ) -> tuple[int, dict, str]:
        """`<binary> import --from source --json args…`: (exit code, report, stderr). `via`:
        how the source URL is given: `flag`, `env` (ARCANA_IMPORT_FROM) or `file`
        (ARCANA_IMPORT_FROM_FILE)."""
        out = self.tmp / f"report-{uuid.uuid4().hex[:8]}.json"
        extra: dict[str, str] = {}
        cmd = [str(BINS / binary), "import", "--json", *args]
        if via == "flag":
            cmd[2:2] = ["--from", source]
        elif via == "env":
            extra["ARCANA_IMPORT_FROM"] = source
        else:
            secret = self.tmp / "import-from"
            secret.write_text(source + "\n")
            secret.chmod(0o600)
            extra["ARCANA_IMPORT_FROM_FILE"] = str(secret)
        with open(out, "w") as f:
            p = subprocess.run(
                cmd,
                env=self.env(**extra),
                stdout=f,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )
        body = out.read_text()
        report = json.loads(body) if body.strip() else {}
        return p.returncode, report, p.stderr

    def query(self, sql: str, **params) -> list[tuple]:
        engine = create_engine(self.sqla)
        try:
            with engine.connect() as c:
                return [tuple(r) for r in c.execute(text(sql), params)]
        finally:
            engine.dispose()

    def snapshot(self) -> list[tuple]:
        """Every user row, every column, and the mapping: what an idempotent run leaves alone."""
        return self.query("SELECT * FROM users ORDER BY id") + self.query(
            "SELECT * FROM legacy_users ORDER BY legacy_id"
        )

    @contextmanager
    def serve(self, **extra: str):
        """The monolith over this database (with `extra` environment); yields its REST base
        URL."""
        http = free_port()
        log = open(self.tmp / f"arcana-{http}.log", "w")
        p = subprocess.Popen(
            [str(BINS / "arcana")],
            env=self.env(
                ARCANA_HTTP_ADDR=f"127.0.0.1:{http}",
                ARCANA_GRPC_ADDR=f"127.0.0.1:{free_port()}",
                ARCANA_METRICS_ADDR=f"127.0.0.1:{free_port()}",
                RUST_LOG="info",
                **extra,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{http}/api/v1"
        try:
            for _ in range(300):
                try:
                    requests.get(f"{base}/auth/me", timeout=1)
                    break
                except requests.RequestException:
                    pass
                if p.poll() is not None:
                    raise RuntimeError((self.tmp / f"arcana-{http}.log").read_text()[-2000:])
                time.sleep(0.1)
            else:
                raise RuntimeError("arcana did not come up")
            yield base
        finally:
            p.terminate()
            p.wait(timeout=30)
            log.close()

    def close(self) -> None:
        if self.server:
            python_era.drop_database(self.server, self.sqla)


@pytest.fixture
def target_factory(tmp_path):
    made: list[Target] = []

    def make(backend: str) -> Target:
        tmp = tmp_path / f"target-{len(made)}"
        tmp.mkdir()
        t = Target(backend, tmp)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture
def source_factory(tmp_path):
    made: list[tuple[str, str]] = []

    def make(backend: str) -> str:
        """A fresh Python-era database on `backend`; returns its SQLAlchemy URL."""
        if backend == "sqlite":
            url = python_era.create_database(None, str(tmp_path / f"python-{uuid.uuid4().hex[:6]}.db"))
        else:
            server = server_url(backend)
            url = python_era.create_database(server)
            made.append((server, url))
        return url

    yield make
    for server, url in made:
        python_era.drop_database(server, url)


def login(base: str, who: str, password: str) -> requests.Response:
    return requests.post(
        f"{base}/auth/login", json={"username_or_email": who, "password": password}, timeout=30
    )
