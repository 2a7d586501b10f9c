//! Domain ↔ `arcana.v1` (the public API, also the service boundary's contract).
use domain::{
    AccessTokenInfo, AccessTokenInput, AuditEvent, AuditPage, AuthSession, ClientPage,
    CreateUserInput, Error, FieldErrors, ForgotPasswordInput, IssuedAccessToken, IssuedClient,
    IssuedServiceAccount, LoginInput, OidcClient, OidcClientInput, OidcClientPatch, PageInfo,
    RawAuditQuery, RawClientQuery, RawUserQuery, RegisterInput, ResetPasswordInput, Result,
    ServiceAccount, ServiceAccountInput, SessionInfo, TokenPair, User, UserId, UserPage, UserPatch,
    VerifyEmailInput,
};
use domain::{
    LoginOutcome, MfaCodeInput, MfaMethod, MfaPending, MfaStatus, MfaVerifyInput, PasskeyChallenge,
    PasskeyInfo, PasskeyLoginInput, PasskeyRegistrationInput, RecoveryCodes, TotpDisableInput,
    TotpSetup, TotpSetupInput,
};
use uuid::Uuid;

use crate::wire::Wire;
use crate::{message, request, v1, wrapper};

message!(User => v1::User {
    id, username, email, first_name, last_name, phone, avatar_url, role, status, is_verified,
    created_at, updated_at, last_login_at,
});
message!(RegisterInput => v1::RegisterRequest { username, email, password, first_name, last_name });
message!(LoginInput => v1::LoginRequest { username_or_email, password });
message!(SessionInfo => v1::Session {
    id, created_at, last_used_at, expires_at, user_agent, ip, current,
});
message!(RawUserQuery => v1::ListUsersRequest {
    page, per_page, sort, order, role, status, search, created_after, created_before, cursor,
});
message!(CreateUserInput => v1::CreateUserRequest {
    username, email, password, first_name, last_name, phone, avatar_url, role, status,
    is_verified,
});
message!(RawAuditQuery => v1::ListAuditEventsRequest {
    user_id, r#type, outcome, since, until, per_page, cursor,
});
message!(AuditEvent => v1::AuditEvent {
    id, at, actor_id, subject_id, r#type, outcome, ip, request_id, details,
});
message!(ForgotPasswordInput => v1::ForgotPasswordRequest { email });
message!(ResetPasswordInput => v1::ResetPasswordRequest { token, new_password });
message!(VerifyEmailInput => v1::VerifyEmailRequest { token });
// The revert link's token travels like a verification token (one domain input for both).
impl From<VerifyEmailInput> for v1::RevertEmailRequest {
    fn from(i: VerifyEmailInput) -> Self {
        Self { token: i.token }
    }
}
impl From<v1::RevertEmailRequest> for VerifyEmailInput {
    fn from(r: v1::RevertEmailRequest) -> Self {
        Self { token: r.token }
    }
}
wrapper!(v1::ResetPasswordResponse { user_id: Uuid });
wrapper!(v1::ListSessionsResponse { sessions: Vec<SessionInfo> });
wrapper!(v1::LogoutAllResponse { revoked_count: u64 });

request!(v1::RefreshRequest {
    refresh_token: String
});
request!(v1::RevokeSessionRequest { id: Uuid });
request!(v1::GetUserRequest { id: Uuid });
request!(v1::DeleteUserRequest { id: Uuid });
request!(v1::VerifyUserRequest { id: Uuid });
request!(v1::UnlockUserRequest { id: Uuid });
request!(v1::ListUserSessionsRequest { id: Uuid });
request!(v1::SetStatusRequest {
    id: Uuid,
    status: String
});
request!(v1::SetRoleRequest {
    id: Uuid,
    role: String
});
request!(v1::ChangePasswordRequest { id: Uuid, current_password: Option<String>, new_password: String });

impl From<AuthSession> for v1::AuthResponse {
    fn from(s: AuthSession) -> Self {
        Self {
            access_token: s.tokens.access_token,
            refresh_token: s.tokens.refresh_token,
            token_type: s.tokens.token_type,
            expires_in: s.tokens.expires_in,
            user: s.user.to_wire(),
            ..Self::default()
        }
    }
}

impl From<LoginOutcome> for v1::AuthResponse {
    fn from(o: LoginOutcome) -> Self {
        match o {
            LoginOutcome::Session(s) => (*s).into(),
            LoginOutcome::MfaRequired(p) => Self {
                mfa_required: true,
                mfa_token: p.mfa_token,
                mfa_methods: p.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                mfa_passkey_json: p.passkey.map(|v| v.to_string()),
                ..Self::default()
            },
        }
    }
}

impl TryFrom<v1::AuthResponse> for LoginOutcome {
    type Error = Error;
    fn try_from(r: v1::AuthResponse) -> Result<Self> {
        if !r.mfa_required {
            return r.try_into().map(|s| LoginOutcome::Session(Box::new(s)));
        }
        let methods = r
            .mfa_methods
            .iter()
            .map(|m| m.parse::<MfaMethod>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::validation("mfa_methods", e))?;
        Ok(LoginOutcome::MfaRequired(MfaPending {
            mfa_required: true,
            mfa_token: r.mfa_token,
            methods,
            passkey: json_field(r.mfa_passkey_json, "mfa_passkey_json")?,
        }))
    }
}

/// JSON carried as a string field (WebAuthn options and credentials).
pub(crate) fn json_field(s: Option<String>, field: &str) -> Result<Option<serde_json::Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(|_| Error::validation(field, "must be JSON")))
        .transpose()
}

fn json_required(s: String, field: &str) -> Result<serde_json::Value> {
    json_field(Some(s), field)?.ok_or_else(|| Error::validation(field, "is required"))
}

impl From<MfaVerifyInput> for v1::VerifyMfaRequest {
    fn from(i: MfaVerifyInput) -> Self {
        Self {
            mfa_token: i.mfa_token,
            code: i.code,
            recovery_code: i.recovery_code,
            passkey_json: i.passkey.map(|v| v.to_string()),
        }
    }
}
impl TryFrom<v1::VerifyMfaRequest> for MfaVerifyInput {
    type Error = Error;
    fn try_from(r: v1::VerifyMfaRequest) -> Result<Self> {
        Ok(Self {
            mfa_token: r.mfa_token,
            code: r.code,
            recovery_code: r.recovery_code,
            passkey: json_field(r.passkey_json, "passkey_json")?,
        })
    }
}

impl From<PasskeyChallenge> for v1::PasskeyChallenge {
    fn from(c: PasskeyChallenge) -> Self {
        Self {
            public_key_json: serde_json::json!({ "publicKey": c.public_key }).to_string(),
            challenge_id: c.challenge_id.to_string(),
        }
    }
}
impl TryFrom<v1::PasskeyChallenge> for PasskeyChallenge {
    type Error = Error;
    fn try_from(c: v1::PasskeyChallenge) -> Result<Self> {
        let mut options = json_required(c.public_key_json, "public_key_json")?;
        Ok(Self {
            public_key: options
                .get_mut("publicKey")
                .map(serde_json::Value::take)
                .ok_or_else(|| Error::validation("public_key_json", "has no publicKey"))?,
            challenge_id: Wire::from_wire(c.challenge_id, "challenge_id")?,
        })
    }
}
impl From<PasskeyRegistrationInput> for v1::FinishPasskeyRegistrationRequest {
    fn from(i: PasskeyRegistrationInput) -> Self {
        Self {
            name: i.name,
            credential_json: i.credential.to_string(),
            challenge_id: i.challenge_id.map(|id| id.to_string()),
        }
    }
}
impl TryFrom<v1::FinishPasskeyRegistrationRequest> for PasskeyRegistrationInput {
    type Error = Error;
    fn try_from(r: v1::FinishPasskeyRegistrationRequest) -> Result<Self> {
        Ok(Self {
            name: r.name,
            credential: json_required(r.credential_json, "credential_json")?,
            challenge_id: r
                .challenge_id
                .map(|id| Wire::from_wire(id, "challenge_id"))
                .transpose()?,
        })
    }
}
impl From<PasskeyLoginInput> for v1::FinishPasskeyLoginRequest {
    fn from(i: PasskeyLoginInput) -> Self {
        Self {
            challenge_id: i.challenge_id.to_string(),
            credential_json: i.credential.to_string(),
        }
    }
}
impl TryFrom<v1::FinishPasskeyLoginRequest> for PasskeyLoginInput {
    type Error = Error;
    fn try_from(r: v1::FinishPasskeyLoginRequest) -> Result<Self> {
        Ok(Self {
            challenge_id: Wire::from_wire(r.challenge_id, "challenge_id")?,
            credential: json_required(r.credential_json, "credential_json")?,
        })
    }
}
message!(PasskeyInfo => v1::Passkey { id, name, created_at, last_used_at });
wrapper!(v1::ListPasskeysResponse { passkeys: Vec<PasskeyInfo> });
request!(v1::RenamePasskeyRequest {
    id: Uuid,
    name: String
});
request!(v1::DeletePasskeyRequest { id: Uuid });
message!(MfaStatus => v1::MfaStatus { totp, passkeys, recovery_codes_left });
message!(TotpSetupInput => v1::SetupTotpRequest { current_password });
message!(TotpSetup => v1::SetupTotpResponse { secret, otpauth_uri, qr_svg });
message!(RecoveryCodes => v1::RecoveryCodesResponse { recovery_codes });
message!(TotpDisableInput => v1::DisableTotpRequest { current_password, code });
message!(MfaCodeInput => v1::ConfirmTotpRequest { code });
// A code travels the same way to confirm TOTP and to regenerate recovery codes.
impl From<MfaCodeInput> for v1::RegenerateRecoveryCodesRequest {
    fn from(i: MfaCodeInput) -> Self {
        Self { code: i.code }
    }
}
impl From<v1::RegenerateRecoveryCodesRequest> for MfaCodeInput {
    fn from(r: v1::RegenerateRecoveryCodesRequest) -> Self {
        Self { code: r.code }
    }
}
request!(v1::RemoveMfaRequest { id: Uuid });
message!(AccessTokenInput => v1::CreateAccessTokenRequest { name, scopes, expires_in });
message!(AccessTokenInfo => v1::AccessToken {
    id, name, scopes, created_at, last_used_at, expires_at,
});
message!(IssuedAccessToken => v1::IssuedAccessToken { info, token });
wrapper!(v1::ListAccessTokensResponse { tokens: Vec<AccessTokenInfo> });
request!(v1::RevokeAccessTokenRequest { id: Uuid });

impl TryFrom<v1::AuthResponse> for AuthSession {
    type Error = Error;
    fn try_from(r: v1::AuthResponse) -> Result<Self> {
        Ok(Self {
            tokens: TokenPair {
                access_token: r.access_token,
                refresh_token: r.refresh_token,
                token_type: r.token_type,
                expires_in: r.expires_in,
            },
            user: User::from_wire(r.user, "user")?,
        })
    }
}

// ---- paging: offset pages carry totals, keyset pages a cursor ------------------------------

impl From<PageInfo> for v1::Pagination {
    fn from(p: PageInfo) -> Self {
        match p {
            PageInfo::Offset {
                page,
                per_page,
                total,
                pages,
            } => Self {
                per_page,
                page: Some(page),
                total: Some(total),
                pages: Some(pages),
                next_cursor: None,
                keyset: false,
            },
            PageInfo::Keyset {
                per_page,
                next_cursor,
            } => Self {
                per_page,
                next_cursor,
                keyset: true,
                ..Self::default()
            },
        }
    }
}

impl TryFrom<v1::Pagination> for PageInfo {
    type Error = Error;
    fn try_from(p: v1::Pagination) -> Result<Self> {
        if p.keyset {
            return Ok(PageInfo::Keyset {
                per_page: p.per_page,
                next_cursor: p.next_cursor,
            });
        }
        match (p.page, p.total, p.pages) {
            (Some(page), Some(total), Some(pages)) => Ok(PageInfo::Offset {
                page,
                per_page: p.per_page,
                total,
                pages,
            }),
            _ => Err(Error::validation(
                "pagination",
                "page, total and pages are required without keyset",
            )),
        }
    }
}

/// A page ↔ its list response: the items and the pagination.
macro_rules! page {
    ($($domain:ty => $wire:ty),*) => {$(
        impl From<$domain> for $wire {
            fn from(p: $domain) -> Self {
                Self {
                    items: p.items.to_wire(),
                    pagination: Some(p.pagination.into()),
                }
            }
        }
        impl TryFrom<$wire> for $domain {
            type Error = Error;
            fn try_from(r: $wire) -> Result<Self> {
                let pagination = r
                    .pagination
                    .ok_or_else(|| Error::validation("pagination", "is required"))?;
                Ok(Self {
                    items: Vec::from_wire(r.items, "items")?,
                    pagination: pagination.try_into()?,
                })
            }
        }
    )*};
}
page!(
    UserPage => v1::ListUsersResponse,
    AuditPage => v1::ListAuditEventsResponse,
    domain::DeliveryPage => v1::ListWebhookDeliveriesResponse,
    ClientPage => v1::ListClientsResponse
);

// ---- OpenID Connect clients ----------------------------------------------------------------

/// A list that may be absent travels as an optional `StringList`.
impl Wire for Option<Vec<String>> {
    type Wire = Option<v1::StringList>;
    fn to_wire(self) -> Self::Wire {
        self.map(|values| v1::StringList { values })
    }
    fn from_wire(w: Self::Wire, _: &str) -> Result<Self> {
        Ok(w.map(|l| l.values))
    }
}

message!(OidcClient => v1::OidcClient {
    client_id, name, redirect_uris, post_logout_redirect_uris, public, allowed_scopes,
    require_consent, id_token_signed_response_alg, created_at, updated_at,
});
message!(IssuedClient => v1::IssuedClient { client, client_secret });
message!(OidcClientInput => v1::CreateClientRequest {
    name, redirect_uris, post_logout_redirect_uris, public, allowed_scopes, require_consent,
    id_token_signed_response_alg,
});
message!(RawClientQuery => v1::ListClientsRequest { per_page, cursor });
request!(v1::GetClientRequest { client_id: String });
request!(v1::DeleteClientRequest { client_id: String });
request!(v1::RotateClientSecretRequest { client_id: String });
message!(ServiceAccountInput => v1::CreateServiceAccountRequest { name, role, scopes });
message!(ServiceAccount => v1::ServiceAccount {
    id, name, client_id, role, scopes, created_at, secret_rotated_at, previous_secret_expires_at,
});
message!(IssuedServiceAccount => v1::IssuedServiceAccount { account, client_secret });
wrapper!(v1::ListServiceAccountsResponse { accounts: Vec<ServiceAccount> });
request!(v1::GetServiceAccountRequest { id: Uuid });
request!(v1::RotateServiceAccountSecretRequest {
    id: Uuid,
    overlap_seconds: Option<u64>
});
request!(v1::DeleteServiceAccountRequest { id: Uuid });

/// (client id, patch) → `UpdateClientRequest`.
pub fn update_client_request(client_id: &str, p: OidcClientPatch) -> v1::UpdateClientRequest {
    v1::UpdateClientRequest {
        client_id: client_id.to_owned(),
        name: p.name,
        redirect_uris: p.redirect_uris.to_wire(),
        post_logout_redirect_uris: p.post_logout_redirect_uris.to_wire(),
        allowed_scopes: p.allowed_scopes.to_wire(),
        require_consent: p.require_consent,
        id_token_signed_response_alg: p.id_token_signed_response_alg,
    }
}

/// `UpdateClientRequest` → (client id, patch).
pub fn update_client_from_request(r: v1::UpdateClientRequest) -> (String, OidcClientPatch) {
    let list = |l: Option<v1::StringList>| l.map(|l| l.values);
    let patch = OidcClientPatch {
        name: r.name,
        redirect_uris: list(r.redirect_uris),
        post_logout_redirect_uris: list(r.post_logout_redirect_uris),
        allowed_scopes: list(r.allowed_scopes),
        require_consent: r.require_consent,
        id_token_signed_response_alg: r.id_token_signed_response_alg,
    };
    (r.client_id, patch)
}

// ---- profile updates: PUT and PATCH through one message and a field mask -------------------

/// The paths an `UpdateUserRequest.update_mask` may name.
pub const UPDATE_PATHS: &[&str] = domain::PATCHABLE_FIELDS;

/// `UserPatch` → `UpdateUserRequest`. Always sends an `update_mask` naming exactly the fields the
/// patch touches (PATCH semantics), so `Some(None)` (clear) survives the trip: the path is named
/// and its value absent. A patch touching every field is therefore a PUT as well.
pub fn update_user_request(id: UserId, patch: UserPatch) -> v1::UpdateUserRequest {
    let paths = patch.touched().into_iter().map(str::to_owned).collect();
    let values = patch.profile_values();
    macro_rules! update_request {
        ($($field:ident: $parse:path = $sample:literal),* $(,)?) => {
            v1::UpdateUserRequest {
                id: id.to_string(),
                email: patch.email,
                $($field: values.$field,)*
                update_mask: Some(prost_types::FieldMask { paths }),
                current_password: patch.current_password,
            }
        };
    }
    domain::with_profile_fields!(update_request)
}

/// `UpdateUserRequest` → (user id, `UserPatch`).
///
/// - Without `update_mask` (or with the single path `*`): PUT semantics — `email` is required and
///   every other profile field is replaced, an absent one cleared (`Some(None)`).
/// - With an `update_mask`: PATCH semantics — only the named paths change; a named path whose
///   value is absent is cleared (`email` cannot be cleared). Values of unnamed fields are ignored.
///   Unknown paths are a validation error on `update_mask`.
pub fn update_user_from_request(r: v1::UpdateUserRequest) -> Result<(UserId, UserPatch)> {
    let mut errs = FieldErrors::new();
    let id = errs.check(
        "id",
        Uuid::parse_str(&r.id).map_err(|_| "must be a UUID".to_owned()),
    );
    let full = r.update_mask.as_ref().is_none_or(|m| m.paths == ["*"]);
    let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let named = |field: &str| full || paths.iter().any(|p| p == field);
    if !full {
        for p in paths.iter().filter(|p| !UPDATE_PATHS.contains(&p.as_str())) {
            errs.add(
                "update_mask",
                format!("unknown path {p:?}; allowed: {}", UPDATE_PATHS.join(", ")),
            );
        }
    }
    if named("email") && r.email.is_none() {
        errs.add(
            "email",
            if full {
                "is required"
            } else {
                "cannot be cleared"
            },
        );
    }
    macro_rules! values {
        ($($field:ident: $parse:path = $sample:literal),* $(,)?) => {
            domain::ProfileValues { $($field: r.$field,)* }
        };
    }
    let values = domain::with_profile_fields!(values);
    let patch = UserPatch {
        current_password: r.current_password,
        email: r.email.filter(|_| named("email")),
        ..UserPatch::default()
    }
    .masked(named, values);
    errs.into_result()?;
    let id = id.ok_or_else(|| Error::validation("id", "must be a UUID"))?;
    Ok((id, patch))
}
