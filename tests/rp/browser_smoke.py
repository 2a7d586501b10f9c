"""Browser smoke: headless Chromium (the system's, driven by Playwright) clicks through the
hosted login and consent pages to the client's redirect, and screenshots each page; then an
account enrols TOTP through the API (codes computed by pyotp from the otpauth URI, an
independent implementation) and signs in on the hosted page with its second factor.

usage: browser_smoke.py ISSUER CLIENT_JSON USER PASSWORD SCREENSHOT_DIR
"""
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import pyotp
import requests
from playwright.sync_api import sync_playwright


CREATE_JS = """async (pk) => {
  const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0));
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  pk.challenge = b64(pk.challenge);
  pk.user.id = b64(pk.user.id);
  (pk.excludeCredentials || []).forEach(c => { c.id = b64(c.id); });
  const cred = await navigator.credentials.create({ publicKey: pk });
  return { id: cred.id, rawId: enc(cred.rawId), type: cred.type,
           response: { attestationObject: enc(cred.response.attestationObject),
                       clientDataJSON: enc(cred.response.clientDataJSON) },
           extensions: cred.getClientExtensionResults() };
}"""


def with_authenticator(browser, issuer, errors):
    """A browser context with a DevTools virtual authenticator (CTAP2, user verification on,
    discoverable credentials), its page at arcana's origin: (context, page, cdp, authenticator id)."""
    context = browser.new_context(viewport={"width": 900, "height": 760})
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    auth_id = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})["authenticatorId"]
    page.goto(f"{issuer}/login")
    return context, page, cdp, auth_id


def register_passkey(issuer, page):
    """An account whose only second factor is a passkey of the browser's virtual authenticator
    (registered through the API, the WebAuthn call made by the page at arcana's origin)."""
    user = f"smoke-pk-{uuid.uuid4().hex[:12]}"
    r = requests.post(f"{issuer}/api/v1/auth/register", timeout=10, json={
        "username": user, "email": f"{user}@example.com", "password": "Smoke-Passw0rd"})
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['data']['access_token']}"}
    r = requests.post(f"{issuer}/api/v1/auth/mfa/passkeys/register/start", headers=auth, timeout=10, json={})
    assert r.status_code == 200, r.text
    start = r.json()["data"]
    credential = page.evaluate(CREATE_JS, start["publicKey"])
    r = requests.post(f"{issuer}/api/v1/auth/mfa/passkeys/register/finish", headers=auth, timeout=10,
                      json={"name": "Chromium virtual authenticator", "credential": credential,
                            "challenge_id": start["challenge_id"]})
    assert r.status_code == 201, r.text
    return user


def enrol_totp(issuer, out, browser):
    """Register an account and turn TOTP on through the API: its username and pyotp's TOTP."""
    user = f"smoke-mfa-{uuid.uuid4().hex[:12]}"
    r = requests.post(f"{issuer}/api/v1/auth/register", timeout=10, json={
        "username": user, "email": f"{user}@example.com", "password": "Smoke-Passw0rd"})
    assert r.status_code == 201, r.text
    access = r.json()["data"]["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    r = requests.post(f"{issuer}/api/v1/auth/mfa/totp/setup", headers=auth, timeout=10,
                      json={"current_password": "Smoke-Passw0rd"})
    assert r.status_code == 200, r.text
    setup = r.json()["data"]
    totp = pyotp.parse_uri(setup["otpauth_uri"])
    assert totp.secret == setup["secret"] and totp.digits == 6 and totp.interval == 30
    # The enrolment's QR code as an authenticator app's camera would see it (a blank page of
    # its own: none of arcana's pages carries it).
    page = browser.new_page(viewport={"width": 900, "height": 760})
    page.set_content("<!doctype html><title>enrol</title><body style='margin:24px'>"
                     "<h3 style='font-family:sans-serif'>Scan with your authenticator app</h3>"
                     f"{setup['qr_svg'].split('?>', 1)[-1]}"
                     f"<p style='font-family:monospace'>{setup['secret']}</p></body>")
    page.screenshot(path=f"{out}/9-totp-enrolment-qr.png", full_page=True)
    page.close()
    r = requests.post(f"{issuer}/api/v1/auth/mfa/totp/confirm", headers=auth, timeout=10,
                      json={"code": totp.now()})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]["recovery_codes"]) == 10
    return user, totp


def allow_and_land(page, landed, what, errors):
    """Allow on the consent page and wait (5 s) until the browser is back at the client."""
    page.click("button[value=allow]")
    page.wait_for_load_state()
    for _ in range(50):
        if "url" in landed:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{what}: at {page.url}: {page.content()[:600]} {errors}")


def main():
    issuer, client, user, password, out = sys.argv[1:6]
    client = json.loads(client)
    os.makedirs(out, exist_ok=True)
    redirect = client["redirect_uris"][0]
    params = {
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "browser-smoke",
        "nonce": "browser-nonce",
    }
    landed = {}

    class Callback(BaseHTTPRequestHandler):
        """The client's redirect URI: records where the browser landed."""

        def do_GET(self):
            if self.path.startswith(cb.path):
                landed["url"] = f"http://{self.headers['Host']}{self.path}"
            body = b"<!doctype html><title>client</title><p>back at the client</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    cb = urlparse(redirect)
    # Threaded: Chromium may open a connection it sends nothing on (a preconnect), which would
    # block a one-connection-at-a-time server and leave the real navigation hanging.
    server = ThreadingHTTPServer((cb.hostname, cb.port), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 760})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        page.goto(f"{issuer}/oauth2/authorize?{urlencode(params)}")
        assert page.locator("input[autocomplete=username]").count() == 1
        page.screenshot(path=f"{out}/1-login.png", full_page=True)
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "not-the-password-1A")
        page.click("button[type=submit]")
        page.wait_for_selector(".alert.error")
        page.screenshot(path=f"{out}/2-login-wrong-password.png", full_page=True)
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_selector("button[value=allow]")
        page.screenshot(path=f"{out}/3-consent.png", full_page=True)
        allow_and_land(page, landed, "the browser never reached the client", errors)
        q = {k: v[0] for k, v in parse_qs(urlparse(landed["url"]).query).items()}
        assert q["state"] == "browser-smoke" and q["code"] and q["iss"] == issuer, landed
        page.goto(f"{issuer}/logout")
        page.screenshot(path=f"{out}/4-logout.png", full_page=True)
        page.click("button[type=submit]")
        page.wait_for_selector("h1")
        page.screenshot(path=f"{out}/5-signed-out.png", full_page=True)
        page.goto(f"{issuer}/oauth2/authorize?{urlencode(dict(params, redirect_uri='https://attacker.example/cb'))}")
        page.screenshot(path=f"{out}/6-unregistered-redirect.png", full_page=True)
        page.goto(f"{issuer}/forgot-password")
        page.screenshot(path=f"{out}/7-forgot-password.png", full_page=True)
        page.fill("input[name=email]", "someone@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector(".alert.ok")
        page.screenshot(path=f"{out}/8-forgot-password-sent.png", full_page=True)

        # Second factor: enrolment through the API, then the hosted login's code step.
        mfa_user, totp = enrol_totp(issuer, out, browser)
        landed.clear()
        context = browser.new_context(viewport={"width": 900, "height": 760})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{issuer}/oauth2/authorize?{urlencode(params)}")
        page.fill("input[name=username]", mfa_user)
        page.fill("input[name=password]", "Smoke-Passw0rd")
        page.click("button[type=submit]")
        page.wait_for_selector("input[autocomplete=one-time-code]")
        page.screenshot(path=f"{out}/10-second-factor.png", full_page=True)
        page.fill("input[name=code]", "000000")
        page.locator("button:has-text('Verify')").click()
        page.wait_for_selector(".alert.error")
        page.screenshot(path=f"{out}/11-second-factor-wrong-code.png", full_page=True)
        page.click("details.alternative summary")
        page.screenshot(path=f"{out}/12-second-factor-recovery-code.png", full_page=True)
        # The next step's code (the confirmation spent the current one).
        page.fill("input[name=code]", totp.at(time.time() + 30))
        page.locator("button:has-text('Verify')").click()
        page.wait_for_selector("button[value=allow]")
        allow_and_land(page, landed, "no code after the second factor", errors)
        q = {k: v[0] for k, v in parse_qs(urlparse(landed["url"]).query).items()}
        assert q["state"] == "browser-smoke" and q["code"], landed
        context.close()

        # Passkeys: the DevTools virtual authenticator (user verification on, discoverable
        # credentials) on http://localhost (a secure context).
        landed.clear()
        context, page, _, _ = with_authenticator(browser, issuer, errors)
        register_passkey(issuer, page)
        # A passkey alone: "Sign in with a passkey" on the login page.
        page.goto(f"{issuer}/oauth2/authorize?{urlencode(params)}")
        page.wait_for_selector("button[data-start]:not([hidden])")
        page.screenshot(path=f"{out}/13-login-with-passkey-button.png", full_page=True)
        page.click("button[data-start]")
        page.wait_for_selector("button[value=allow]")
        page.screenshot(path=f"{out}/14-passkey-signed-in-consent.png", full_page=True)
        allow_and_land(page, landed, "no code after the passkey sign-in", errors)
        context.close()
        # Another account, its passkey as the second step after the password (a new browser
        # context, with an authenticator of its own).
        landed.clear()
        context2, page, cdp, auth_id = with_authenticator(browser, issuer, errors)
        second_user = register_passkey(issuer, page)
        page.goto(f"{issuer}/oauth2/authorize?{urlencode(params)}")
        page.fill("input[name=username]", second_user)
        page.fill("input[name=password]", "Smoke-Passw0rd")
        page.click("button[type=submit]")
        page.wait_for_selector("button[data-passkey]:not([hidden])")
        page.screenshot(path=f"{out}/15-second-factor-passkey.png", full_page=True)
        page.click("button[data-passkey]")
        page.wait_for_selector("button[value=allow]")
        allow_and_land(page, landed, "no code after the passkey second step", errors)
        creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"]
        assert len(creds) == 1 and creds[0]["isResidentCredential"], creds
        context2.close()
        browser.close()
    server.shutdown()
    csp_errors = [e for e in errors if "Content Security Policy" in e]
    assert not csp_errors, csp_errors
    print(f"browser smoke: login -> consent -> {redirect} with a code; TOTP (pyotp) on the "
          f"hosted page -> a code; passkeys (virtual authenticator) alone and as the second "
          f"step -> a code; screenshots in {out}")


if __name__ == "__main__":
    main()
