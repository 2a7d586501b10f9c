"""Schemathesis hooks of tools/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS): the login
(`AdminLogin`, below) and a refined ST202 check.

`positive_data_acceptance` (ST202) asks that every schema-valid request is accepted. A few
requests cannot be, whatever the schema says, because their validity is state the fuzzer cannot
have or a rule between parameters that a parameter's schema cannot state:
  - the token of a mailed link: a well-formed token the fuzzer makes up is unknown (400
    VALIDATION_FAILED "is not a valid link token", by contract);
  - a list cursor: opaque, issued by the server for one sort and order (and none for
    sort=last_login_at);
  - `until` must be after `since`;
  - the current password that changing one's own password or email address needs (the schema
    cannot tell "own" from the path), and the lockout (423, documented) that the fuzzer's wrong
    current passwords earn that account.
The script turns the built-in check off and runs this one instead: the built-in check, except
for a 400 whose field errors are all such refusals, and a 423. Any other 400 to a schema-valid
request (a format the schema does not state, say) still fails.
"""

import base64
import json
import os
import urllib.request

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

# The `token` field errors of crates/domain/src/recovery.rs (TOKEN_UNKNOWN, TOKEN_USED, ...).
TOKEN_REFUSALS = {
    "is not a valid link token",
    "has already been used",
    "has expired",
    "is no longer valid: the account's password or email address changed since it was sent",
}
# What a change of one's own account without `current_password` answers (crates/service/src/users.rs).
OWN_ACCOUNT_REFUSALS = {
    "is required",
    "is required to change your own email address",
}
# Field errors of the list queries (crates/domain/src/pagination.rs, audit.rs) for a made-up cursor
# or a rule between parameters.
QUERY_REFUSALS = {
    "cursor": {
        "is not a valid cursor",
        "was issued for a different sort or order",
        "is not supported with sort=last_login_at; use page",
    },
    "until": {"must be after since"},
}


def _caller(response):
    """The user id (`sub`) of the bearer token the request carried, if any."""
    auth = response.request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    try:
        payload = auth[len("Bearer ") :].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims.get("sub")
    except (IndexError, ValueError):
        return None


def _refused_for_state(response, case):
    try:
        fields = response.json()["error"]["details"]["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    if not fields:
        return False
    own = (case.path_parameters or {}).get("id") == _caller(response)
    for field, messages in fields.items():
        for message in messages:
            if field == "token" and message in TOKEN_REFUSALS:
                continue
            if field == "current_password" and own and message in OWN_ACCOUNT_REFUSALS:
                continue
            if message in QUERY_REFUSALS.get(field, ()):
                continue
            return False
    return True


@schemathesis.check
def positive_data_acceptance_but_state(ctx, response, case):
    """Schema-valid requests are accepted, unless refused for server state (see the module doc)."""
    if response.status_code == 400 and _refused_for_state(response, case):
        return None
    if response.status_code == 423:
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.auth()
class AdminLogin:
    """The access token of ST_USERNAME / ST_PASSWORD at ST_BASE_URL (set by the script).

    Fetched again after a 401 (Schemathesis then replays the request): the fuzzer ends the
    session of the token it carries now and then (logout, deleting the session, a role change).
    """

    def get(self, case, ctx):
        body = json.dumps(
            {"username_or_email": os.environ["ST_USERNAME"], "password": os.environ["ST_PASSWORD"]}
        ).encode()
        request = urllib.request.Request(
            os.environ["ST_BASE_URL"] + "/api/v1/auth/login",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)["data"]["access_token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
