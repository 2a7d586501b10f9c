"""`arcana import` against databases the Python stack made (SQLAlchemy models of
arcana-cloud-python, Werkzeug hashes), on SQLite, PostgreSQL and MariaDB: the users log in
through REST with their original passwords, the hashes are upgraded at that first login, a
second run changes nothing, conflicts follow --on-conflict."""
from __future__ import annotations

import csv

import pytest
import requests

import python_era
from conftest import ITERATIONS, login
from python_era import User, UserRole, UserStatus, utcnow

PASSWORDS = {
    "alice": "Alice-Passw0rd",
    "bob": "Bob-Passw0rd",
    "dave": "Dave-Passw0rd",
    "erin": "Erin-Passw0rd",
    "gina": "Gina-Passw0rd",
    "hank": "Hank-Passw0rd",
}


def seed(url: str, case_duplicates: bool = True) -> dict[str, int]:
    """The Python deployment's users; returns their ids by username. `case_duplicates`: a
    username that differs from another only in case (MariaDB's default collation ignores
    case, so a Python deployment on it never had one)."""
    with python_era.session(url) as s:
        rows = [
            # Werkzeug 3's default method: scrypt:32768:8:1.
            User("alice", "alice@example.com", PASSWORDS["alice"], role=UserRole.ADMIN,
                 is_verified=True, first_name="Alice", last_name="Liddell", phone="+44 20 7946 0000"),
            # method="pbkdf2:sha256": Werkzeug's default iteration count (1,000,000 in 3.1).
            User("bob", "Bob@Example.com", PASSWORDS["bob"], method="pbkdf2:sha256",
                 last_login_at=utcnow(), avatar_url="https://cdn.example.com/bob.png"),
            User("carol x", "carol@example.com", "Carol-Passw0rd", method="pbkdf2:sha256:1000"),
            User("dave", "dave@example.com", PASSWORDS["dave"], method="pbkdf2:sha256:1000",
                 status=UserStatus.SUSPENDED),
            User("erin", "erin@example.com", PASSWORDS["erin"], method="pbkdf2:sha256:1000",
                 is_active=False),
            User("gina", "gina@example.com", PASSWORDS["gina"], method="pbkdf2:sha256:1000",
                 status=UserStatus.DELETED),
            User("hank", "hank@example.com", PASSWORDS["hank"], method="scrypt:1024:8:1",
                 role=UserRole.GUEST, is_verified=True),
            User("ivan", "ivan@example.com", password=None, password_hash="md5$legacy$0123"),
        ]
        if case_duplicates:
            rows.append(User("ERIN", "erin2@example.com", "Erin-Passw0rd", method="pbkdf2:sha256:1000"))
        s.add_all(rows)
        s.commit()
        return {u.username: u.id for u in rows}


@pytest.mark.parametrize(
    "backend,binary,via",
    [
        ("sqlite", "arcana", "flag"),
        ("postgres", "arcana-repository", "file"),
        ("mysql", "arcana-repository", "env"),
    ],
)
def test_python_users_log_in_with_their_passwords_and_a_second_run_changes_nothing(
    backend, binary, via, source_factory, target_factory, tmp_path
):
    source = source_factory(backend)
    case_duplicates = backend != "mysql"
    ids = seed(source, case_duplicates)
    target = target_factory(backend)

    # A dry run writes nothing (the migrations it applies aside).
    rc, dry, _ = target.import_(source, "--dry-run", binary=binary, via=via)
    assert rc == 0 and dry["dry_run"] and dry["created"] == 6, dry
    assert target.query("SELECT COUNT(*) FROM users") == [(0,)]
    assert target.query("SELECT COUNT(*) FROM legacy_users") == [(0,)]

    mapping_csv = tmp_path / "mapping.csv"
    rc, report, err = target.import_(source, "--mapping-csv", str(mapping_csv), binary=binary, via=via)
    assert rc == 0, err
    rows = 9 if case_duplicates else 8
    assert (report["rows"], report["created"], report["updated"], report["unchanged"]) == (rows, 6, 0, 0)
    assert report["skipped"] == []
    refused = {r["username"]: r["reason"] for r in report["refused"]}
    assert refused.keys() == {"carol x", "ivan"} | ({"ERIN"} if case_duplicates else set()), refused
    assert refused["carol x"].startswith("username:")
    if case_duplicates:
        assert "repeats an earlier row" in refused["ERIN"]
    assert refused["ivan"].startswith("password_hash:")
    # Nothing secret in the report.
    assert "pbkdf2:" not in str(report) and "scrypt:" not in str(report)

    # The mapping: every imported Python id to a new UUID, in the table and the CSV.
    table = dict(target.query("SELECT legacy_id, user_id FROM legacy_users"))
    assert set(table) == {ids[n] for n in ("alice", "bob", "dave", "erin", "gina", "hank")}
    with open(mapping_csv) as f:
        assert {int(r["legacy_id"]): r["user_id"] for r in csv.DictReader(f)} == table
    by_name = dict(target.query("SELECT username, id FROM users"))
    assert table[ids["alice"]] == by_name["alice"]

    # The hashes are kept as they were, byte for byte.
    with python_era.session(source) as s:
        source_hashes = {u.username: u.password_hash for u in s.query(User)}
    kept = dict(target.query("SELECT username, password_hash FROM users"))
    for name in ("alice", "bob", "hank"):
        assert kept[name] == source_hashes[name]

    with target.serve() as base:
        for name in ("alice", "bob", "hank"):
            r = login(base, name, PASSWORDS[name])
            assert r.status_code == 200, (name, r.text)
            upgraded = target.query("SELECT password_hash FROM users WHERE username = :n", n=name)
            assert upgraded[0][0].startswith(f"pbkdf2:sha256:{ITERATIONS}$"), name
            assert upgraded[0][0] != source_hashes[name]
            # The upgraded hash takes the same password; a wrong one is still refused.
            assert login(base, name, PASSWORDS[name]).status_code == 200
            assert login(base, name, PASSWORDS[name] + "x").status_code == 401
        token = login(base, "alice", PASSWORDS["alice"]).json()["data"]["access_token"]
        me = requests.get(f"{base}/auth/me", headers={"authorization": f"Bearer {token}"}, timeout=10)
        me = me.json()["data"]
        assert (me["username"], me["email"], me["role"], me["status"]) == (
            "alice", "alice@example.com", "admin", "active"
        )
        assert me["is_verified"] and me["first_name"] == "Alice" and me["phone"] == "+44 20 7946 0000"
        # Emails are stored lower-case and log in in any case; statuses are kept.
        assert login(base, "BOB@example.com", PASSWORDS["bob"]).status_code == 200
        assert login(base, "dave", PASSWORDS["dave"]).json()["error"]["message"] == "account suspended"
        assert login(base, "erin", PASSWORDS["erin"]).json()["error"]["message"] == "account inactive"
        assert login(base, "gina", PASSWORDS["gina"]).status_code == 401
        statuses = dict(target.query("SELECT username, status FROM users"))
        assert statuses == {
            "alice": "active", "bob": "active", "dave": "suspended", "erin": "inactive",
            "gina": "deleted", "hank": "active",
        }

    # Idempotent: the second run creates nothing and leaves every row as it is (the hashes
    # upgraded at login stay upgraded).
    before = target.snapshot()
    rc, again, err = target.import_(source, binary=binary, via=via)
    assert rc == 0, err
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 6), again
    assert target.snapshot() == before


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_conflicts_follow_the_policy(backend, source_factory, target_factory):
    source = source_factory("sqlite")
    target = target_factory(backend)
    with python_era.session(source) as s:
        s.add(User("carol", "carol@example.com", "Python-Passw0rd1", method="pbkdf2:sha256:1000"))
        s.add(User("zed", "zed@example.com", "Zed-Passw0rd", method="pbkdf2:sha256:1000"))
        s.commit()

    with target.serve() as base:
        # An arcana user registered before the import holds carol's username and email.
        r = requests.post(f"{base}/auth/register", json={
            "username": "Carol", "email": "CAROL@example.com", "password": "Arcana-Passw0rd1"}, timeout=30)
        assert r.status_code == 201, r.text
        refresh = login(base, "carol", "Arcana-Passw0rd1").json()["data"]["refresh_token"]

        # fail: a conflict writes nothing at all, not even the rows without one.
        before = target.snapshot()
        rc, report, err = target.import_(source, "--on-conflict", "fail")
        assert rc != 0 and "nothing was imported" in err, err
        assert [c["username"] for c in report["conflicts"]] == ["carol"]
        assert "username and email" in report["conflicts"][0]["reason"]
        assert target.snapshot() == before

        # update, dry: says what it would do, does nothing.
        rc, report, _ = target.import_(source, "--on-conflict", "update", "--dry-run")
        assert (rc, report["created"], report["updated"]) == (0, 1, 1), report
        assert target.snapshot() == before

        # skip (the default): the arcana user is left alone, the other row imported.
        rc, report, _ = target.import_(source)
        assert (rc, report["created"], report["updated"]) == (0, 1, 0), report
        assert [s["username"] for s in report["skipped"]] == ["carol"]
        assert login(base, "carol", "Arcana-Passw0rd1").status_code == 200
        assert login(base, "carol", "Python-Passw0rd1").status_code == 401

        # update: the source row wins (its password too) and the arcana sessions end.
        rc, report, _ = target.import_(source, "--on-conflict", "update")
        assert (rc, report["created"], report["updated"], report["unchanged"]) == (0, 0, 1, 1), report
        assert login(base, "carol", "Python-Passw0rd1").status_code == 200
        assert login(base, "carol", "Arcana-Passw0rd1").status_code == 401
        r = requests.post(f"{base}/auth/refresh", json={"refresh_token": refresh}, timeout=30)
        assert r.status_code == 401, r.text
        assert target.query("SELECT username, email FROM users WHERE username = 'carol'") == [
            ("carol", "carol@example.com")
        ]

        # A row changed in the source since its import: skipped unless --on-conflict update,
        # which applies it (a new password included).
        with python_era.session(source) as s:
            zed = s.query(User).filter_by(username="zed").one()
            zed.first_name = "Zed"
            zed.setPassword("Zed-NewPassw0rd", "pbkdf2:sha256:1000")
            s.commit()
        rc, report, _ = target.import_(source)
        assert (rc, report["updated"], report["unchanged"]) == (0, 0, 1), report
        assert "changed in the source" in report["skipped"][0]["reason"]
        assert login(base, "zed", "Zed-Passw0rd").status_code == 200
        rc, report, _ = target.import_(source, "--on-conflict", "update")
        assert (rc, report["updated"], report["unchanged"]) == (0, 1, 1), report
        assert login(base, "zed", "Zed-NewPassw0rd").status_code == 200
        assert login(base, "zed", "Zed-Passw0rd").status_code == 401
        assert target.query("SELECT first_name FROM users WHERE username = 'zed'") == [("Zed",)]

        # After it, nothing changes any more; each change was audited.
        before = target.snapshot()
        rc, report, _ = target.import_(source, "--on-conflict", "update")
        assert (rc, report["created"], report["updated"], report["unchanged"]) == (0, 0, 0, 2)
        assert target.snapshot() == before
        actions = target.query(
            "SELECT action, COUNT(*) FROM audit_events WHERE action LIKE 'user.import%' GROUP BY action"
        )
        assert sorted(actions) == [("user.import_updated", 2), ("user.imported", 1)]


def test_the_last_admin_is_never_demoted_by_an_import(source_factory, target_factory):
    source = source_factory("sqlite")
    target = target_factory("sqlite")
    with python_era.session(source) as s:
        s.add(User("root", "root@example.com", "Python-Passw0rd1", method="pbkdf2:sha256:1000"))
        s.commit()
    admin = dict(
        ARCANA_BOOTSTRAP_ADMIN_USERNAME="root",
        ARCANA_BOOTSTRAP_ADMIN_EMAIL="root@example.com",
        ARCANA_BOOTSTRAP_ADMIN_PASSWORD="Arcana-Passw0rd1",
    )
    with target.serve(**admin) as base:
        assert login(base, "root", "Arcana-Passw0rd1").status_code == 200
        rc, report, _ = target.import_(source, "--on-conflict", "update")
        assert (rc, report["updated"]) == (0, 0), report
        assert "last active admin" in report["skipped"][0]["reason"], report
        assert target.query("SELECT role, status FROM users WHERE username = 'root'") == [
            ("admin", "active")
        ]
        assert login(base, "root", "Arcana-Passw0rd1").status_code == 200


def test_a_source_that_is_not_arcana_cloud_python_is_refused(target_factory, tmp_path):
    target = target_factory("sqlite")
    missing = tmp_path / "missing.db"
    rc, _, err = target.import_(f"sqlite://{missing}")
    assert rc != 0 and "is not a SQLite database file" in err, err
    assert not missing.exists(), "the import must not create the source"
    other = tmp_path / "other.db"
    python_era.create_engine(f"sqlite:///{other}").connect().close()
    rc, _, err = target.import_(f"sqlite://{other}")
    assert rc != 0 and "users table of arcana-cloud-python" in err, err
    rc, _, err = target.import_("", via="env")
    assert rc != 0 and "ARCANA_IMPORT_FROM_FILE" in err, err
