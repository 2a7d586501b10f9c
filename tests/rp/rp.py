"""A relying party and a browser, as the OpenID Foundation's Basic OP tests drive a provider.

The OAuth/OIDC side is authlib (an independent implementation: authorization URL, PKCE, token
request with client_secret_basic / client_secret_post / none, ID token signature and claims
validation). The browser side is requests with a cookie jar that reads the hosted pages' forms
(html.parser) and posts them as a person would.
"""
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


class Forms(HTMLParser):
    """Every form of a page: action and fields (inputs with values, submit buttons)."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "names": []})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["names"].append(a["name"])
            if a.get("value") is not None:
                self.forms[-1]["fields"].setdefault(a["name"], a["value"])
            if tag == "input" and a.get("autocomplete"):
                self.forms[-1].setdefault("autocomplete", {})[a["name"]] = a["autocomplete"]


def forms(html):
    p = Forms()
    p.feed(html)
    return p.forms


class Browser:
    """A browser: a cookie jar, no automatic redirects (the test looks at each hop)."""

    def __init__(self, issuer):
        self.issuer = issuer
        self.http = requests.Session()

    def get(self, url):
        return self.http.get(urljoin(self.issuer, url), allow_redirects=False, timeout=10)

    def submit(self, page, **fields):
        f = forms(page.text)
        assert f, f"no form on the page ({page.status_code}): {page.text[:300]}"
        form = f[0]
        data = dict(form["fields"])
        data.update(fields)
        # A browser sends its Origin on a form post; the provider checks it (CSRF).
        return self.http.post(
            urljoin(page.url, form["action"]),
            data=data,
            allow_redirects=False,
            timeout=10,
            headers={"Origin": self.issuer},
        )


class RP:
    """One registered client: authlib's session, the provider's metadata and keys."""

    def __init__(self, issuer, metadata, jwks, client, auth_method=None, redirect_uri=None):
        self.issuer = issuer
        self.metadata = metadata
        self.jwks = JsonWebKey.import_key_set(jwks)
        self.client = client
        self.redirect_uri = redirect_uri or client["redirect_uris"][0]
        method = auth_method or ("none" if client["public"] else "client_secret_basic")
        self.session = OAuth2Session(
            client_id=client["client_id"],
            client_secret=client.get("client_secret"),
            token_endpoint_auth_method=method,
            redirect_uri=self.redirect_uri,
            scope="openid profile email",
            code_challenge_method="S256" if client["public"] else None,
        )

    def authorization_url(self, **params):
        self.code_verifier = None
        extra = dict(params)
        if self.client["public"]:
            from authlib.common.security import generate_token

            self.code_verifier = generate_token(48)
            extra["code_verifier"] = self.code_verifier
        url, state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], **extra
        )
        self.state = state
        return url

    def callback_params(self, response):
        assert response.status_code in (302, 303), f"{response.status_code}: {response.text[:300]}"
        location = response.headers["Location"]
        assert location.startswith(self.redirect_uri), location
        q = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        assert q.get("iss") == self.issuer, q
        return q

    def fetch_token(self, code, **extra):
        kwargs = dict(extra)
        if self.code_verifier:
            kwargs.setdefault("code_verifier", self.code_verifier)
        return self.session.fetch_token(
            self.metadata["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            **kwargs,
        )

    def raw_token(self, data, auth=True):
        """The token endpoint's raw answer (for refusals authlib would raise on)."""
        data = dict(data)
        basic = None
        if auth and not self.client["public"]:
            basic = (self.client["client_id"], self.client["client_secret"])
        else:
            data["client_id"] = self.client["client_id"]
        return requests.post(self.metadata["token_endpoint"], data=data, auth=basic, timeout=10)

    def id_token(self, token, nonce=None):
        """The ID token's claims after authlib checked signature, iss, aud, exp, iat, nonce
        and at_hash (CodeIDToken)."""
        claims = jwt.decode(
            token["id_token"],
            self.jwks,
            claims_cls=CodeIDToken,
            claims_options={"iss": {"values": [self.issuer]}},
            claims_params={"nonce": nonce, "client_id": self.client["client_id"], "access_token": token["access_token"]},
        )
        claims.validate(leeway=5)
        return claims

    def userinfo(self, access_token, method="GET"):
        headers = {"Authorization": f"Bearer {access_token}"}
        url = self.metadata["userinfo_endpoint"]
        if method == "GET":
            return requests.get(url, headers=headers, timeout=10)
        return requests.post(url, headers=headers, timeout=10)
