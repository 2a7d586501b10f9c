//! Domain ↔ `arcana.internal.v1` for personal access tokens (`domain::AccessTokenRepository`
//! at the repository boundary).
use domain::{
    AccessTokenOwner, AuditEvent, Error, OutgoingMail, Principal, Result, Scopes,
    StoredAccessToken, StoredServiceAccount, Timestamp,
};
use uuid::Uuid;

use crate::internal as pb;
use crate::wire::Wire;
use crate::{message, request, wrapper};

/// Scopes travel as their bit set (markers included: a session's, a service account's).
impl Wire for Scopes {
    type Wire = u32;
    fn to_wire(self) -> u32 {
        self.bits()
    }
    fn from_wire(w: u32, field: &str) -> Result<Self> {
        Scopes::from_bits(w).ok_or_else(|| Error::validation(field, "names an unknown scope"))
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
    audit: Vec<AuditEvent>,
    mail: Option<OutgoingMail>
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

message!(StoredServiceAccount => pb::StoredServiceAccount {
    id, name, role, scopes, secret_hash, previous_secret_hash, previous_secret_expires_at,
    created_at, secret_rotated_at,
});
wrapper!(pb::OptionalServiceAccount { account: Option<StoredServiceAccount> });
wrapper!(pb::ServiceAccountList { accounts: Vec<StoredServiceAccount> });
request!(pb::ServiceAccountWrite {
    account: StoredServiceAccount,
    audit: Vec<AuditEvent>
});
request!(pb::ServiceAccountDeletion {
    id: Uuid,
    audit: Vec<AuditEvent>
});
