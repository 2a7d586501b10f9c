"""Fixtures of the relying-party suite: the provider under test and clients registered on it.

The runner (run.sh) starts arcana, registers the clients with `arcana oidc-client create`, and
passes their JSON in ARCANA_RP_CLIENTS; the admin account signs in through the hosted pages.
"""
import json
import os

import pytest
import requests


@pytest.fixture(scope="session")
def issuer():
    return os.environ["ARCANA_RP_ISSUER"].rstrip("/")


@pytest.fixture(scope="session")
def clients():
    return json.loads(os.environ["ARCANA_RP_CLIENTS"])


@pytest.fixture(scope="session")
def user():
    return os.environ["ARCANA_RP_USER"], os.environ["ARCANA_RP_PASSWORD"]


@pytest.fixture(scope="session")
def metadata(issuer):
    r = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.fixture(scope="session")
def jwks(metadata):
    r = requests.get(metadata["jwks_uri"], timeout=10)
    r.raise_for_status()
    return r.json()
