"""Browser smoke: headless Chromium (the system's, driven by Playwright) clicks through the
hosted login and consent pages to the client's redirect, and screenshots each page.

usage: browser_smoke.py ISSUER CLIENT_JSON USER PASSWORD SCREENSHOT_DIR
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from playwright.sync_api import sync_playwright


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
    server = HTTPServer((cb.hostname, cb.port), Callback)
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
        page.click("button[value=allow]")
        page.wait_for_load_state()
        for _ in range(50):
            if "url" in landed:
                break
            page.wait_for_timeout(100)
        assert "url" in landed, f"the browser never reached the client: at {page.url}: {page.content()[:600]} {errors}"
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
        browser.close()
    server.shutdown()
    csp_errors = [e for e in errors if "Content Security Policy" in e]
    assert not csp_errors, csp_errors
    print(f"browser smoke: login -> consent -> {redirect} with a code; screenshots in {out}")


if __name__ == "__main__":
    main()
