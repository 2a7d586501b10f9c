"""Service accounts as an independent OAuth2 client sees them: requests-oauthlib's
BackendApplicationClient fetches a token with the client-credentials grant (RFC 6749 §4.4),
authlib checks it is an RFC 9068 access token signed with the published keys, and the token
reads users (its scope) and is refused writes. The account was made with the CLI
(`arcana service-account create`) by run.sh.
"""
import json
import os

import pytest
import requests
from authlib.jose import JsonWebKey, jwt
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

# The suite's provider listens on loopback over plain HTTP; oauthlib refuses that by default.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


@pytest.fixture(scope="session")
def machine():
    return json.loads(os.environ["ARCANA_RP_MACHINE"])


def session_for(machine, metadata):
    s = OAuth2Session(client=BackendApplicationClient(client_id=machine["client_id"]))
    token = s.fetch_token(
        token_url=metadata["token_endpoint"],
        client_id=machine["client_id"],
        client_secret=machine["client_secret"],
    )
    return s, token


def test_client_credentials_token_is_an_rfc9068_access_token(issuer, metadata, jwks, machine):
    assert "client_credentials" in metadata["grant_types_supported"]
    _, token = session_for(machine, metadata)
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ["users:read"] or token["scope"] == "users:read"
    assert "refresh_token" not in token and "id_token" not in token
    claims = jwt.decode(token["access_token"], JsonWebKey.import_key_set(jwks))
    claims.validate()
    assert claims.header["typ"] == "at+jwt"
    assert claims["iss"] == issuer
    assert claims["client_id"] == machine["client_id"]
    assert claims["sub"] == machine["id"]
    for name in ("aud", "exp", "iat", "jti"):
        assert name in claims, name


def test_the_token_reads_users_and_is_refused_writes(issuer, metadata, machine):
    s, _ = session_for(machine, metadata)
    r = s.get(f"{issuer}/api/v1/users")
    assert r.status_code == 200, r.text
    users = r.json()["data"]["items"]
    assert users, "the bootstrap admin at least"
    r = s.patch(f"{issuer}/api/v1/users/{users[0]['id']}", json={"first_name": "Mallory"})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "FORBIDDEN"
    assert "users:write" in r.json()["error"]["message"]


def test_a_wrong_secret_is_invalid_client(metadata, machine):
    r = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(machine["client_id"], "not-the-secret"),
        timeout=10,
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_introspection_reports_the_token(metadata, clients, machine):
    _, token = session_for(machine, metadata)
    rs = clients["confidential"]
    r = requests.post(
        metadata["introspection_endpoint"],
        data={"token": token["access_token"]},
        auth=(rs["client_id"], rs["client_secret"]),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["active"] is True
    assert report["client_id"] == machine["client_id"]
    assert report["scope"] == "users:read"
