//! Domain ↔ `arcana.internal.v1` for personal access tokens (`domain::AccessTokenRepository`
//! at the repository boundary).
use domain::{
    AccessTokenOwner, AuditEvent, Error, Principal, Result, Scopes, StoredAccessToken, Timestamp,
};
use uuid::Uuid;

use crate::internal as pb;
use crate::wire::Wire;
use crate::{message, request, wrapper};

/// Scopes travel as their stored text (space-separated names).
impl Wire for Scopes {
    type Wire = String;
    fn to_wire(self) -> String {
        self.to_text()
    }
    fn from_wire(w: String, field: &str) -> Result<Self> {
        Scopes::parse_text(&w).ok_or_else(|| Error::validation(field, "names an unknown scope"))
    }
}

message!(StoredAccessToken => pb::StoredAccessToken {
    id, user_id, name, token_hash, scopes, credential_version, created_at, expires_at,
    last_used_at, revoked_at,
});
message!(AccessTokenOwner => pb::AccessTokenOwner { token, user, credential_version });
wrapper!(pb::AccessTokenList { tokens: Vec<StoredAccessToken> });
wrapper!(pb::OptionalAccessTokenOwner { owner: Option<AccessTokenOwner> });
request!(pb::CreateAccessTokenRequest {
    token: StoredAccessToken,
    audit: Vec<AuditEvent>
});
request!(pb::FindAccessTokenRequest { token_hash: String });
request!(pb::RevokeAccessTokenRequest {
    user_id: Uuid,
    id: Uuid,
    audit: Vec<AuditEvent>,
    now: Timestamp
});

// The caller a personal access token makes, for the gateway's token check.
message!(Principal => pb::TokenPrincipal { user_id, session_id, role, scopes });
wrapper!(pb::TokenPrincipalResponse { principal: Option<Principal> });
request!(pb::TokenPrincipalRequest { token: String });
