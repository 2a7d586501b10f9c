"""Lifecycle webhooks as an independent receiver sees them: every delivery is verified with the
reference Standard Webhooks library (PyPI `standardwebhooks`), deduplicated by webhook-id as a
receiver must. A receiver that answers 500 then 200 gets the event on the retry with the same
webhook-id; endpoints on private and link-local addresses are refused; one user's events arrive
in commit order (their sequence increasing) under 8 concurrent writers; payloads carry no
secret. The receiver listens on loopback, which run.sh allows (ARCANA_WEBHOOK_ALLOWED_NETWORKS).
"""
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ALL_EVENTS = [
    "user.created", "user.updated", "user.deleted", "user.status_changed", "user.role_changed",
    "user.email_verified", "user.password_changed", "session.created", "session.revoked",
    "auth.login_failed", "auth.account_locked", "mfa.enabled", "mfa.disabled",
]


class Receiver:
    """Records verified deliveries; answers the scripted statuses first, then 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []  # (webhook-id, parsed body), in arrival order, every attempt
        self.failures = []
        self.script = []
        self.webhook = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                try:
                    parsed = receiver.webhook.verify(body, headers)
                    with receiver.lock:
                        receiver.deliveries.append((headers["webhook-id"], parsed))
                except WebhookVerificationError as e:
                    with receiver.lock:
                        receiver.failures.append(str(e))
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def until(self, pred, within=20):
        deadline = time.time() + within
        while time.time() < deadline:
            with self.lock:
                seen = list(self.deliveries)
            if pred(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"not received within {within}s: {[b['type'] for _, b in seen]}")


@pytest.fixture(scope="module")
def admin(issuer, user):
    r = requests.post(f"{issuer}/api/v1/auth/login",
                      json={"username_or_email": user[0], "password": user[1]}, timeout=10)
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['data']['access_token']}"}


@pytest.fixture(scope="module")
def endpoint(issuer, admin):
    receiver = Receiver()
    r = requests.post(f"{issuer}/api/v1/webhooks", headers=admin, timeout=10,
                      json={"url": receiver.url, "events": ALL_EVENTS, "description": "rp suite"})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["secret"].startswith("whsec_")
    receiver.webhook = Webhook(data["secret"])
    receiver.secret = data["secret"]
    yield receiver, data["id"]
    requests.delete(f"{issuer}/api/v1/webhooks/{data['id']}", headers=admin, timeout=10)
    receiver.server.shutdown()


def register(issuer, name):
    r = requests.post(f"{issuer}/api/v1/auth/register", timeout=10, json={
        "username": name, "email": f"{name}@example.com", "password": "Secret123"})
    assert r.status_code == 201, r.text
    return r.json()["data"]["user"]["id"]


def test_private_and_metadata_addresses_are_refused(issuer, admin):
    for url in ["https://10.0.0.1/hooks", "https://192.168.1.20/hooks",
                "http://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/",
                "http://hooks.example.com/plain-http"]:
        r = requests.post(f"{issuer}/api/v1/webhooks", headers=admin, timeout=10,
                          json={"url": url, "events": ["user.created"]})
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["code"] == "VALIDATION_FAILED"
        assert "url" in r.json()["error"]["details"]["fields"], r.text


def test_every_delivery_verifies_and_a_500_is_retried_with_the_same_id(issuer, endpoint):
    receiver, _ = endpoint
    with receiver.lock:
        receiver.script = [500]
        start = len(receiver.deliveries)
    name = f"wh-{uuid.uuid4().hex[:10]}"
    uid = register(issuer, name)
    seen = receiver.until(lambda s: sum(
        1 for _, b in s[start:] if b["type"] == "user.created" and b["data"]["user_id"] == uid) >= 2)
    created = [(i, b) for i, b in seen[start:]
               if b["type"] == "user.created" and b["data"]["user_id"] == uid]
    assert created[0][0] == created[1][0], "a retry must carry the same webhook-id"
    assert created[0][1] == created[1][1]
    body = created[0][1]
    assert body["data"]["user"]["username"] == name
    assert receiver.failures == []
    text = json.dumps(body)
    for secret in ["Secret123", "pbkdf2", "password_hash", receiver.secret]:
        assert secret not in text


def test_one_users_events_arrive_in_commit_order_under_8_writers(issuer, admin, endpoint):
    receiver, _ = endpoint
    uid = register(issuer, f"wh-{uuid.uuid4().hex[:10]}")
    with receiver.lock:
        start = len(receiver.deliveries)

    def write(w):
        for n in range(5):
            r = requests.patch(f"{issuer}/api/v1/users/{uid}", headers=admin, timeout=10,
                               json={"first_name": f"w{w}n{n}"})
            assert r.status_code == 200, r.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    seen = receiver.until(lambda s: len({i for i, b in s[start:] if b["type"] == "user.updated"
                                         and b["data"]["user_id"] == uid}) >= 40)
    # Deduplicated by webhook-id, as a receiver does: the order of first arrival.
    first = {}
    for i, b in seen[start:]:
        if b["data"].get("user_id") == uid and i not in first:
            first[i] = b
    sequence = [b["data"]["sequence"] for b in first.values()]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), sequence
    final = requests.get(f"{issuer}/api/v1/users/{uid}", headers=admin, timeout=10).json()["data"]
    assert list(first.values())[-1]["data"]["user"]["first_name"] == final["first_name"]
    assert receiver.failures == []
