"""The account and admin consoles in Chromium (Playwright on the system's chromium).

usage: console_smoke.py ISSUER ADMIN ADMIN_PASSWORD OUT_DIR [SQLITE_DB SEED_ROWS]

Walks what people do: a user signs in on the hosted login and lands on the account console,
changes their name, sees their sessions and signs one out, sets up the authenticator app (pyotp
computes the codes) and reads their security events; an administrator finds a user (among
SEED_ROWS users written straight into the SQLite database, when given), suspends them, reads the
audit event, and registers an OIDC client. Every page is screenshotted at desktop and phone
widths into OUT_DIR, and axe-core (npm, run in the same browser) checks every page: the run fails
on any serious or critical violation.
"""
import json
import os
import sqlite3
import sys
import time
import urllib.request
import uuid

import pyotp
from playwright.sync_api import sync_playwright

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = os.environ.get("AXE_JS", "")


def api(issuer, path, body=None, token=None, method=None):
    req = urllib.request.Request(f"{issuer}{path}", method=method or ("POST" if body is not None else "GET"))
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def seed(db, rows):
    """SEED_ROWS users as a bulk load would write them (the search index follows by trigger)."""
    con = sqlite3.connect(db, timeout=60)
    con.execute("PRAGMA synchronous = OFF")
    have = con.execute("SELECT count(*) FROM users").fetchone()[0]
    base = 1_600_000_000_000_000
    start = time.time()
    batch = []
    for n in range(have, rows):
        name = f"seeded_{n:07d}"
        created = base + n * 1_000_000
        batch.append((str(uuid.uuid4()), name, name, f"{name}@example.com", f"{name}@example.com",
                      "pbkdf2:sha256:600000$salt$hash", "Seed", f"Person{n % 97}", "user", "active",
                      n % 2 == 0, 0, created, created, None))
        if len(batch) == 50_000:
            con.executemany("INSERT INTO users (id, username, username_key, email, email_key, "
                            "password_hash, first_name, last_name, role, status, is_verified, "
                            "failed_login_count, created_at, updated_at, last_login_at) VALUES "
                            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            con.commit()
            batch = []
    if batch:
        con.executemany("INSERT INTO users (id, username, username_key, email, email_key, "
                        "password_hash, first_name, last_name, role, status, is_verified, "
                        "failed_login_count, created_at, updated_at, last_login_at) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
        con.commit()
    con.execute("INSERT INTO users_search(users_search) VALUES ('optimize')")
    con.execute("ANALYZE")
    con.commit()
    total = con.execute("SELECT count(*) FROM users").fetchone()[0]
    con.close()
    print(f"console smoke: {total} users in the database (seeded in {time.time() - start:.1f} s)")
    return total


class Walk:
    def __init__(self, browser, issuer, out):
        self.browser, self.issuer, self.out = browser, issuer, out
        self.shots, self.axe = [], []
        self.errors = []
        self.twin = None

    def context(self, viewport, authenticator=False):
        # Two contexts per page: axe-core needs its script added (the console's CSP allows only
        # its own), so it runs in a CSP-bypassing twin; the walk itself runs under the real
        # policy, whose violations show up as console errors.
        ctx = self.browser.new_context(viewport=viewport)
        page = ctx.new_page()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        if authenticator:
            # Chromium's DevTools virtual authenticator (user verification on, discoverable).
            cdp = ctx.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True,
                "automaticPresenceSimulation": True}})
        return ctx, page

    def shot(self, page, name):
        path = f"{self.out}/{name}.png"
        page.screenshot(path=path, full_page=True)
        self.shots.append(path)
        self.check(page, name)

    def check(self, page, name):
        if not AXE:
            return
        # The page's HTML as the browser has it, at the same origin (so the stylesheet loads)
        # in a twin context that lets the axe script in: the walk keeps the real CSP.
        if self.twin is None:
            self.twin_ctx = self.browser.new_context(bypass_csp=True)
            self.twin = self.twin_ctx.new_page()
        twin = self.twin
        twin.set_viewport_size(page.viewport_size)
        twin.goto(f"{self.issuer}/assets/arcana.css")
        twin.set_content(page.content(), wait_until="load")
        twin.add_script_tag(path=AXE)
        result = twin.evaluate(
            "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
        )
        bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert len(result["passes"]) > 10, f"axe-core checked nothing on {name}"
        self.axe.append((name, len(result["violations"]), bad, len(result["passes"])))

    def sign_in(self, page, user, password, path):
        page.goto(f"{self.issuer}{path}")
        page.wait_for_selector("input[autocomplete=username]")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.issuer}{path}*")


def main():
    issuer, admin, admin_password, out = sys.argv[1:5]
    db, rows = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else (None, 0)
    os.makedirs(out, exist_ok=True)
    total = seed(db, rows) if db else None
    suffix = uuid.uuid4().hex[:6]
    user, password = f"ada_{suffix}", "Console-Passw0rd"
    api(issuer, "/api/v1/auth/register",
        {"username": user, "email": f"{user}@example.com", "password": password})
    other = api(issuer, "/api/v1/auth/login", {"username_or_email": user, "password": password})["data"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox"])
        w = Walk(browser, issuer, out)

        # ---- the account console, desktop ----
        ctx, page = w.context(DESKTOP, authenticator=True)
        page.goto(f"{issuer}/account")
        assert "/login?next=" in page.url, page.url
        w.sign_in(page, user, password, "/account")
        page.wait_for_selector("h1:has-text('Profile')")
        w.shot(page, "20-account-profile")
        page.fill("#first_name", "Ada")
        page.fill("#last_name", "Lovelace")
        page.click("button:has-text('Save profile')")
        page.wait_for_selector(".alert.ok")
        assert page.input_value("#last_name") == "Lovelace"
        w.shot(page, "21-account-profile-saved")
        page.fill("#current_password", password)
        page.fill("#new_password", "Another-Passw0rd")
        page.fill("#confirm_password", "Different-Passw0rd")
        page.click("button:has-text('Change password')")
        page.wait_for_selector("#confirm_password-err")
        assert page.get_attribute("#confirm_password", "aria-invalid") == "true"
        w.shot(page, "22-account-password-error")

        page.click("nav.tabs a:has-text('Sessions')")
        page.wait_for_selector("h1:has-text('Sessions')")
        sessions = page.locator("ul.items > li").count()
        assert sessions == 3, page.content()  # registration, the API login, this browser
        w.shot(page, "23-account-sessions")
        mine = [s for s in api(issuer, "/api/v1/auth/sessions", token=other["access_token"])["data"]
                if s["current"]][0]["id"]
        page.click(f"form[action='/account/sessions/{mine}/revoke'] button")
        page.wait_for_selector(".alert.ok")
        assert page.locator("ul.items > li").count() == sessions - 1
        w.shot(page, "24-account-session-signed-out")
        deadline = time.time() + 5
        while True:
            try:
                api(issuer, "/api/v1/auth/me", token=other["access_token"])
            except urllib.error.HTTPError as e:
                assert e.code == 401
                break
            assert time.time() < deadline, "the signed-out session still works"
            time.sleep(0.2)

        page.click("nav.tabs a:has-text('Security')")
        page.wait_for_selector("h1:has-text('Security')")
        w.shot(page, "25-account-security")
        page.fill("#setup_password", password)
        page.click("button:has-text('Set up the authenticator app')")
        page.wait_for_selector(".qr svg")
        secret = page.inner_text(".secret code").strip()
        w.shot(page, "26-account-totp-setup")
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("button:has-text('Turn on')")
        page.wait_for_selector("ul.codes")
        assert page.locator("ul.codes li").count() == 10
        w.shot(page, "27-account-recovery-codes")
        page.goto(f"{issuer}/account/security")
        assert page.locator(".badge.on").count() >= 1
        # A passkey, through the page's one script and the browser's WebAuthn prompt.
        page.fill("#passkey_name", "This laptop")
        page.click("button:has-text('Add a passkey')")
        page.wait_for_selector(".alert.ok")
        assert page.locator("ul.items strong:has-text('This laptop')").count() == 1, page.content()
        w.shot(page, "28-account-security-on")
        page.click("nav.tabs a:has-text('Activity')")
        page.wait_for_selector("h1:has-text('Recent security events')")
        for what in ("Sign-in", "Profile changed", "Session signed out", "Authenticator app turned on",
                     "Passkey added"):
            assert page.locator(f"td:has-text('{what}')").count() >= 1, what
        w.shot(page, "29-account-activity")
        # A personal access token: made on the page, shown once, works on the API, revoked.
        page.click("nav.tabs a:has-text('Access tokens')")
        page.wait_for_selector("h1:has-text('Access tokens')")
        w.shot(page, "38-account-tokens")
        page.fill("#name", "Nightly export")
        page.click("button:has-text('Create token')")
        page.wait_for_selector(".secret code")
        pat = page.inner_text(".secret code").strip()
        assert pat.startswith("arc_pat_"), pat
        w.shot(page, "39-account-token-created")
        assert api(issuer, "/api/v1/auth/me", token=pat)["data"]["username"] == user
        page.check("form[action$='/revoke'] input[name=confirm]")
        page.click("form[action$='/revoke'] button")
        page.wait_for_selector(".alert.ok")
        assert "Nightly export" not in page.inner_text("main"), page.content()
        # Keyboard: the skip link is the first stop and lands on the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        ctx.close()

        # ---- the admin console, desktop ----
        ctx, page = w.context(DESKTOP)
        w.sign_in(page, admin, admin_password, "/admin/users")
        page.wait_for_selector("h1:has-text('Users')")
        w.shot(page, "30-admin-users")
        target = "seeded_0777777" if total and total > 777_777 else user
        started = time.time()
        page.fill("#search", target)
        page.click("button:has-text('Find')")
        page.wait_for_selector(f"td a:has-text('{target}')")
        found_in = time.time() - started
        w.shot(page, "31-admin-users-search")
        page.click(f"td a:has-text('{target}')")
        page.wait_for_selector(f"h1:has-text('{target}')")
        user_page = page.url
        w.shot(page, "32-admin-user")
        page.select_option("#status", "suspended")
        page.click("button:has-text('Set status')")
        page.wait_for_selector("#status-confirm-err")
        w.shot(page, "33-admin-user-confirm-error")
        page.select_option("#status", "suspended")
        page.check("form[action$='/status'] input[name=confirm]")
        page.click("button:has-text('Set status')")
        page.wait_for_selector(".alert.ok")
        assert "suspended" in page.inner_text("main")
        page.click("a:has-text('All events of')")
        page.wait_for_selector("h1:has-text('Audit log')")
        assert page.locator("td:has-text('Status changed')").count() >= 1
        w.shot(page, "34-admin-audit-user")
        page.goto(f"{issuer}/admin/audit?type=auth.login")
        w.shot(page, "35-admin-audit")
        page.click("nav.tabs a:has-text('OIDC clients')")
        page.wait_for_selector("h1:has-text('OpenID Connect clients')")
        page.fill("#name", "Console smoke")
        page.fill("#redirect_uris", "https://app.example/callback")
        page.click("button:has-text('Register')")
        page.wait_for_selector("dd.secret code")
        w.shot(page, "36-admin-client-secret")
        page.goto(f"{issuer}/admin/clients")
        w.shot(page, "37-admin-clients")
        ctx.close()

        # ---- phone width: every page again ----
        ctx, page = w.context(PHONE)
        page.goto(f"{issuer}/account")
        page.wait_for_selector("input[autocomplete=username]")
        w.shot(page, "40-phone-login")
        w.sign_in(page, admin, admin_password, "/account")
        w.shot(page, "41-phone-account")
        for path, name in [("/account/security", "42-phone-account-security"),
                           ("/account/sessions", "43-phone-account-sessions"),
                           ("/account/activity", "44-phone-account-activity"),
                           ("/account/tokens", "51-phone-account-tokens"),
                           ("/admin/users", "45-phone-admin-users"),
                           (user_page[len(issuer):], "46-phone-admin-user"),
                           ("/admin/audit", "47-phone-admin-audit"),
                           ("/admin/clients", "48-phone-admin-clients")]:
            page.goto(f"{issuer}{path}")
            page.wait_for_selector("main h1")
            w.shot(page, name)
        page.goto(f"{issuer}/account/security")
        page.fill("#setup_password", admin_password)
        page.click("button:has-text('Set up the authenticator app')")
        page.wait_for_selector(".qr svg")
        w.shot(page, "49-phone-totp-setup")
        page.fill("#code", pyotp.TOTP(page.inner_text(".secret code").strip()).now())
        page.click("button:has-text('Turn on')")
        page.wait_for_selector("ul.codes")
        w.shot(page, "50-phone-recovery-codes")
        ctx.close()
        browser.close()

    csp = [e for e in w.errors if "Content Security Policy" in e]
    assert not csp, csp
    serious = [(n, v["id"], v["impact"], v["help"], len(v["nodes"])) for n, _, bad, _ in w.axe for v in bad]
    for name, count, bad, passed in w.axe:
        print(f"  axe {name}: {passed} rules passed, {count} violation(s), {len(bad)} serious or critical")
    assert not serious, f"accessibility: {serious}"
    scale = f" among {total} users" if total else ""
    print(f"console smoke: {len(w.shots)} screenshots in {out}; axe-core on {len(w.axe)} pages: "
          f"0 serious or critical violations; admin found {target}{scale} in {found_in * 1000:.0f} ms "
          f"(search submitted -> result rendered)")


if __name__ == "__main__":
    main()
