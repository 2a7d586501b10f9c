"""The OpenID Foundation's Basic OP plan, module by module, against arcana.

Each test is named after the module it follows (`oidcc-server` -> test_oidcc_server). The relying
party is authlib; the person is a Browser posting the hosted forms.
"""
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from rp import RP, Browser, forms


def without(url, name):
    """`url` without the query parameter `name`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    return urlunsplit(parts._replace(query=urlencode(query)))


def sign_in(browser, rp, user, **params):
    """Authorize, sign in on the login page, allow on the consent page if asked: the redirect."""
    page = browser.get(rp.authorization_url(**params))
    if page.status_code in (302, 303):
        return page
    assert page.status_code == 200, page.text[:300]
    f = forms(page.text)[0]
    assert f["autocomplete"] == {"username": "username", "password": "current-password"}
    answer = browser.submit(page, username=user[0], password=user[1])
    if answer.status_code == 200 and "decision" in forms(answer.text)[0]["names"]:
        answer = browser.submit(answer, decision="allow")
    return answer


def code_flow(issuer, metadata, jwks, client, user, browser=None, nonce="n-0S6_WzA2Mj", **params):
    browser = browser or Browser(issuer)
    rp = RP(issuer, metadata, jwks, client)
    if nonce is not None:
        params["nonce"] = nonce
    q = rp.callback_params(sign_in(browser, rp, user, **params))
    assert q["state"] == rp.state
    token = rp.fetch_token(q["code"])
    return rp, browser, q, token


@pytest.fixture
def confidential(clients):
    return clients["confidential"]


def test_oidcc_discovery_endpoint_verification(issuer, metadata):
    assert metadata["issuer"] == issuer
    for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert metadata[k].startswith(issuer), k
    assert metadata["response_types_supported"] == ["code"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["token_endpoint_auth_methods_supported"]) >= {
        "client_secret_basic", "client_secret_post", "none"}


def test_oidcc_server(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user)
    claims = rp.id_token(token, nonce="n-0S6_WzA2Mj")
    assert claims["sub"] and claims["auth_time"] and claims["sid"]
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0


def test_oidcc_idtoken_signature(issuer, metadata, jwks, clients, user):
    for name, alg in (("confidential", "RS256"), ("eddsa", "EdDSA")):
        rp, _, _, token = code_flow(issuer, metadata, jwks, clients[name], user)
        claims = rp.id_token(token, nonce="n-0S6_WzA2Mj")
        assert claims.header["alg"] == alg
        assert claims.header["kid"] in {k["kid"] for k in jwks["keys"]}


def test_oidcc_userinfo_get(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user)
    r = rp.userinfo(token["access_token"])
    assert r.status_code == 200
    assert r.json()["sub"] == rp.id_token(token, nonce="n-0S6_WzA2Mj")["sub"]


def test_oidcc_userinfo_post_header(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user)
    r = rp.userinfo(token["access_token"], method="POST")
    assert r.status_code == 200
    assert r.json()["email"]


def test_oidcc_scope_profile_email_and_all(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user, scope="openid profile")
    info = rp.userinfo(token["access_token"]).json()
    assert "preferred_username" in info and "email" not in info
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user, scope="openid email")
    info = rp.userinfo(token["access_token"]).json()
    assert "email" in info and "email_verified" in info and "preferred_username" not in info
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user,
                                scope="openid profile email roles offline_access")
    info = rp.userinfo(token["access_token"]).json()
    assert {"preferred_username", "email", "roles"} <= set(info)
    assert "refresh_token" in token


def test_oidcc_ensure_other_scope_order_succeeds(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user, scope="email openid")
    assert set(token["scope"].split()) == {"openid", "email"}


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user, nonce=None)
    assert "nonce" not in rp.id_token(token)


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user, extra_parameter="ignored")
    assert token["access_token"]


def test_oidcc_server_client_secret_post(issuer, metadata, jwks, confidential, user):
    browser = Browser(issuer)
    rp = RP(issuer, metadata, jwks, confidential, auth_method="client_secret_post")
    q = rp.callback_params(sign_in(browser, rp, user, nonce="p"))
    token = rp.fetch_token(q["code"])
    assert rp.id_token(token, nonce="p")["aud"] == confidential["client_id"]


def test_oidcc_public_client_with_pkce(issuer, metadata, jwks, clients, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, clients["public"], user)
    assert rp.id_token(token, nonce="n-0S6_WzA2Mj")["aud"] == clients["public"]["client_id"]


def test_oidcc_codereuse(issuer, metadata, jwks, confidential, user):
    browser = Browser(issuer)
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(sign_in(browser, rp, user, nonce="r"))
    token = rp.fetch_token(q["code"])
    assert rp.userinfo(token["access_token"]).status_code == 200
    again = rp.raw_token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": rp.redirect_uri})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert rp.userinfo(token["access_token"]).status_code == 401, "tokens of a reused code are revoked"


def test_oidcc_codereuse_30seconds(issuer, metadata, jwks, confidential, user):
    browser = Browser(issuer)
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(sign_in(browser, rp, user, nonce="r30"))
    token = rp.fetch_token(q["code"])
    time.sleep(30)
    again = rp.raw_token({"grant_type": "authorization_code", "code": q["code"], "redirect_uri": rp.redirect_uri})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert rp.userinfo(token["access_token"]).status_code == 401


def test_oidcc_prompt_none_not_logged_in(issuer, metadata, jwks, confidential):
    browser = Browser(issuer)
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(browser.get(rp.authorization_url(prompt="none", nonce="x")))
    assert q["error"] == "login_required" and q["state"] == rp.state


def test_oidcc_prompt_none_logged_in(issuer, metadata, jwks, confidential, user):
    _, browser, _, _ = code_flow(issuer, metadata, jwks, confidential, user)
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(browser.get(rp.authorization_url(prompt="none", nonce="y")))
    assert "code" in q
    assert rp.id_token(rp.fetch_token(q["code"]), nonce="y")


def test_oidcc_prompt_login(issuer, metadata, jwks, confidential, user):
    _, browser, _, first = code_flow(issuer, metadata, jwks, confidential, user)
    time.sleep(1.1)
    rp = RP(issuer, metadata, jwks, confidential)
    page = browser.get(rp.authorization_url(prompt="login", nonce="z"))
    assert page.status_code == 200 and "password" in forms(page.text)[0]["names"], "asked to sign in again"
    answer = browser.submit(page, username=user[0], password=user[1])
    token = rp.fetch_token(rp.callback_params(answer)["code"])
    before = RP(issuer, metadata, jwks, confidential).id_token(first, nonce="n-0S6_WzA2Mj")["auth_time"]
    assert rp.id_token(token, nonce="z")["auth_time"] > before


def test_oidcc_max_age_1(issuer, metadata, jwks, confidential, user):
    _, browser, _, _ = code_flow(issuer, metadata, jwks, confidential, user)
    time.sleep(2)
    rp = RP(issuer, metadata, jwks, confidential)
    page = browser.get(rp.authorization_url(max_age="1", nonce="m"))
    assert page.status_code == 200 and "password" in forms(page.text)[0]["names"]
    answer = browser.submit(page, username=user[0], password=user[1])
    claims = rp.id_token(rp.fetch_token(rp.callback_params(answer)["code"]), nonce="m")
    assert time.time() - claims["auth_time"] < 10


def test_oidcc_max_age_10000(issuer, metadata, jwks, confidential, user):
    _, browser, _, _ = code_flow(issuer, metadata, jwks, confidential, user)
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(browser.get(rp.authorization_url(max_age="10000", nonce="k")))
    assert "code" in q, "no new sign-in within max_age"


def test_oidcc_ensure_registered_redirect_uri(issuer, metadata, jwks, confidential):
    rp = RP(issuer, metadata, jwks, confidential, redirect_uri="https://attacker.example/cb")
    r = Browser(issuer).get(rp.authorization_url(nonce="e"))
    assert r.status_code == 400 and "Location" not in r.headers
    assert "not registered" in r.text


def test_oidcc_ensure_redirect_uri_in_authorization_request(issuer, metadata, jwks, confidential):
    rp = RP(issuer, metadata, jwks, confidential)
    r = Browser(issuer).get(without(rp.authorization_url(nonce="e"), "redirect_uri"))
    assert r.status_code == 400 and "Location" not in r.headers


def test_oidcc_response_type_missing(issuer, metadata, jwks, confidential):
    rp = RP(issuer, metadata, jwks, confidential)
    q = rp.callback_params(Browser(issuer).get(without(rp.authorization_url(nonce="e"), "response_type")))
    assert q["error"] in ("invalid_request", "unsupported_response_type")


def test_oidcc_refresh_token(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user,
                                scope="openid offline_access email")
    first = token["refresh_token"]
    # A refresh asks for the scopes granted (RFC 6749 §6: never more).
    rp.session.scope = token["scope"]
    new = rp.session.refresh_token(metadata["token_endpoint"], refresh_token=first)
    assert new["refresh_token"] != first and new["access_token"] != token["access_token"]
    assert rp.userinfo(new["access_token"]).status_code == 200
    reuse = rp.raw_token({"grant_type": "refresh_token", "refresh_token": first})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert rp.userinfo(new["access_token"]).status_code == 401, "a reused refresh token ends the family"


def test_token_endpoint_errors_follow_rfc6749(issuer, metadata, jwks, confidential):
    rp = RP(issuer, metadata, jwks, confidential)
    r = requests.post(metadata["token_endpoint"], data={"grant_type": "authorization_code", "code": "x"},
                      auth=(confidential["client_id"], "wrong"), timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = rp.raw_token({"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client", "it is for service accounts"
    r = rp.raw_token({"grant_type": "password", "username": "x", "password": "y"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = rp.raw_token({"grant_type": "authorization_code", "code": "nope", "redirect_uri": rp.redirect_uri})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.headers["Cache-Control"] == "no-store"


def test_rfc7009_revocation_and_rfc7662_introspection(issuer, metadata, jwks, confidential, user):
    rp, _, _, token = code_flow(issuer, metadata, jwks, confidential, user,
                                scope="openid offline_access")
    info = rp.session.introspect_token(metadata["introspection_endpoint"],
                                       token=token["access_token"]).json()
    assert info["active"] is True and info["client_id"] == confidential["client_id"]
    r = rp.session.revoke_token(metadata["revocation_endpoint"], token=token["refresh_token"],
                                token_type_hint="refresh_token")
    assert r.status_code == 200
    info = rp.session.introspect_token(metadata["introspection_endpoint"],
                                       token=token["access_token"]).json()
    assert info == {"active": False}
    assert rp.userinfo(token["access_token"]).status_code == 401


def test_rp_initiated_logout(issuer, metadata, jwks, clients, user):
    client = clients["logout"]
    rp, browser, _, token = code_flow(issuer, metadata, jwks, client, user)
    bye = client["post_logout_redirect_uris"][0]
    r = browser.get(metadata["end_session_endpoint"] + "?" + urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": bye, "state": "s1"}))
    assert r.status_code in (302, 303) and r.headers["Location"] == f"{bye}?state=s1"
    assert rp.userinfo(token["access_token"]).status_code == 401
    page = browser.get(RP(issuer, metadata, jwks, client).authorization_url(nonce="again"))
    assert page.status_code == 200 and "password" in forms(page.text)[0]["names"]
