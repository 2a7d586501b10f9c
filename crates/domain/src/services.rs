//! Service ports: what the edge (gateway) needs from the business layer. Implemented in-process
//! by `service` and over gRPC by its client adapters. Inputs arrive raw (as typed by the caller)
//! and are validated by the service, so REST and gRPC share every rule.
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditPage, RawAuditQuery};
use crate::error::Result;
use crate::machines::{
    IssuedServiceAccount, SecretRotationInput, ServiceAccount, ServiceAccountInput,
};
use crate::mfa::{
    LoginOutcome, MfaCodeInput, MfaStatus, MfaVerifyInput, PasskeyChallenge, PasskeyInfo,
    PasskeyLoginInput, PasskeyRegistrationInput, PasskeyRename, RecoveryCodes, TotpDisableInput,
    TotpSetup, TotpSetupInput,
};
use crate::model::{Role, SessionId, Timestamp, User, UserId};
use crate::oidc::{
    ClientPage, IssuedClient, OidcClient, OidcClientInput, OidcClientPatch, RawClientQuery,
};
use crate::pagination::{RawUserQuery, UserPage};
use crate::tokens::{AccessTokenInfo, AccessTokenInput, IssuedAccessToken, Scopes};

/// Facts about the call that the audit log and sessions record. Never used for authorization.
/// Built with [`RequestContext::new`], which applies the rules every entry point shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The longest user agent recorded (characters); a longer one is cut.
pub const MAX_USER_AGENT: usize = 255;

/// A request id a caller may choose: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub fn is_sane_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl RequestContext {
    /// The facts of one request as every entry point (REST, public gRPC, the internal port)
    /// records them: the request id only when sane, the client address, the user agent cut at
    /// [`MAX_USER_AGENT`] characters.
    pub fn new(request_id: Option<String>, ip: Option<String>, user_agent: Option<&str>) -> Self {
        Self {
            request_id: request_id.filter(|id| is_sane_request_id(id)),
            ip,
            user_agent: user_agent.map(|s| s.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

/// An authenticated caller, taken from a verified access token whose session is live, or from
/// a live personal access token (then `session_id` is the token's id and `scopes` narrow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub role: Role,
    /// [`Scopes::SESSION`] for a signed-in session.
    pub scopes: Scopes,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The access token a caller presented. A gRPC client adapter forwards it so that a service
/// layer in another process verifies the caller itself instead of believing the edge. Never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// An authenticated call: who asks, the facts about the request they asked with, and the
/// token that proved who (absent for callers inside the service layer's own process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub who: Principal,
    pub ctx: RequestContext,
    pub token: Option<AccessToken>,
}

/// `POST /auth/register`. The password needs 8–128 characters with at least one upper-case
/// letter, one lower-case letter and one digit.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterInput {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 80,
            pattern = "^[A-Za-z0-9_-]+$",
            example = "alice"
        )
    )]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r#"^(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$"#, example = "alice@example.com"))]
    pub email: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])",
            example = "Secret123"
        )
    )]
    pub password: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub first_name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub last_name: Option<String>,
}

/// `POST /auth/login`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginInput {
    /// Username or email address.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, pattern = r"\S", example = "alice")
    )]
    pub username_or_email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, example = "Secret123"))]
    pub password: String,
}

/// Admin-created user (`POST /users`): the register fields plus optional role/status/verification.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUserInput {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 80,
            pattern = "^[A-Za-z0-9_-]+$",
            example = "alice"
        )
    )]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r#"^(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$"#, example = "alice@example.com"))]
    pub email: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])",
            example = "Secret123"
        )
    )]
    pub password: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub first_name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub last_name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 20, pattern = "^[0-9 +().-]*$", example = "+1 555 0100")
    )]
    pub phone: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 255,
            pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/\\s\\u0000-\\u001F\\u007F-\\u009F][^\\s\\u0000-\\u001F\\u007F-\\u009F]*$",
            example = "https://example.com/a.png"
        )
    )]
    pub avatar_url: Option<String>,
    /// Default `user`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Role>))]
    pub role: Option<String>,
    /// Default `active` (`deleted` only through delete).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<SettableStatus>))]
    pub status: Option<String>,
    pub is_verified: Option<bool>,
}

/// The statuses an admin may set (`deleted` only through delete): a schema, never a value.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum SettableStatus {
    Active,
    Inactive,
    Suspended,
}

/// Profile change (`PATCH /users/{id}`): `None` leaves a field alone; `Some(None)` (JSON
/// `null`, or an empty string) clears it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    /// Required when changing your own email address (not when an admin changes someone
    /// else's): a stolen access token alone must not be enough to take the account over.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub current_password: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r#"^(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$"#, example = "alice@example.com"))]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 50, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"))]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 50, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"))]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 20, pattern = "^[0-9 +().-]*$"))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 255, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/\\s\\u0000-\\u001F\\u007F-\\u009F][^\\s\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub avatar_url: Option<Option<String>>,
}

/// The full profile (`PUT /users/{id}`): omitted optional fields are cleared.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserProfile {
    /// Required when this changes your own email address.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub current_password: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r#"^(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$"#, example = "alice@example.com"))]
    pub email: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub first_name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada"
        )
    )]
    pub last_name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 20, pattern = "^[0-9 +().-]*$", example = "+1 555 0100")
    )]
    pub phone: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 255,
            pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/\\s\\u0000-\\u001F\\u007F-\\u009F][^\\s\\u0000-\\u001F\\u007F-\\u009F]*$",
            example = "https://example.com/a.png"
        )
    )]
    pub avatar_url: Option<String>,
}

/// `PUT /users/{id}/password`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordInput {
    /// Required when changing your own password.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub current_password: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])",
            example = "Secret123"
        )
    )]
    pub new_password: String,
}

/// `POST /auth/password/forgot`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgotPasswordInput {
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, example = "alice@example.com"))]
    pub email: String,
}

/// `POST /auth/password/reset`: the token from the mailed link and the new password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetPasswordInput {
    /// The token of the link (`#token=…`): 43 characters of base64url (256 random bits).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")
    )]
    pub token: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])",
            example = "Secret123"
        )
    )]
    pub new_password: String,
}

/// `POST /auth/email/verify`: the token from the mailed link.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyEmailInput {
    /// The token of the link (`#token=…`): 43 characters of base64url (256 random bits).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")
    )]
    pub token: String,
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Deserialize::deserialize(de).map(Some)
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($t))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use redacted_debug;
redacted_debug!(RegisterInput, username, email);
redacted_debug!(LoginInput, username_or_email);
redacted_debug!(CreateUserInput, username, email, role, status);
redacted_debug!(PasswordInput,);
redacted_debug!(ForgotPasswordInput, email);
redacted_debug!(ResetPasswordInput,);
redacted_debug!(VerifyEmailInput,);
redacted_debug!(UserPatch, email, first_name, last_name, phone, avatar_url);
redacted_debug!(UserProfile, email, first_name, last_name, phone, avatar_url);

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What register, login and refresh return: the token pair and the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthSession {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub user: User,
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: SessionId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_used_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session of the access token that asked.
    pub current: bool,
}

#[async_trait]
pub trait AuthService: Send + Sync {
    /// The layer and everything below it answer.
    async fn ready(&self) -> Result<()>;
    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession>;
    /// A right password opens a session, or, when the account has a second factor, answers
    /// the pending second step (no tokens).
    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<LoginOutcome>;
    /// The second step of a login: the `mfa_token` and a TOTP code or a recovery code.
    async fn mfa_verify(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<AuthSession>;
    /// The caller's second factors.
    async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus>;
    /// A new TOTP secret for the caller (current password required), pending until confirmed.
    async fn totp_setup(&self, caller: &Caller, input: TotpSetupInput) -> Result<TotpSetup>;
    /// Turn the pending secret on with a first code; answers the first recovery codes.
    async fn totp_confirm(&self, caller: &Caller, input: MfaCodeInput) -> Result<RecoveryCodes>;
    /// Turn TOTP off (current password and a code): every second factor goes.
    async fn totp_disable(&self, caller: &Caller, input: TotpDisableInput) -> Result<()>;
    /// A new set of recovery codes (a TOTP code required); the old set dies.
    async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes>;
    /// Passkeys (WebAuthn): register (start, finish), list, rename, delete; and a sign-in with
    /// a passkey alone (a discoverable credential: start, finish).
    async fn passkey_register_start(&self, caller: &Caller) -> Result<PasskeyChallenge>;
    async fn passkey_register_finish(
        &self,
        caller: &Caller,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyInfo>;
    async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>>;
    async fn rename_passkey(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: PasskeyRename,
    ) -> Result<PasskeyInfo>;
    async fn delete_passkey(&self, caller: &Caller, id: uuid::Uuid) -> Result<()>;
    async fn passkey_login_start(&self, ctx: &RequestContext) -> Result<PasskeyChallenge>;
    async fn passkey_login_finish(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<AuthSession>;
    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession>;
    async fn logout(&self, caller: &Caller) -> Result<()>;
    async fn logout_all(&self, caller: &Caller) -> Result<u64>;
    async fn me(&self, caller: &Caller) -> Result<User>;
    async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>>;
    async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<()>;
    /// Whether the token of `who` is still good: its session is live (not revoked, not expired,
    /// opened with the current credentials), the user is active and still has the token's role.
    /// Token verifiers call this (through a short cache) so revocation takes effect within seconds.
    async fn session_live(&self, who: &Principal) -> Result<bool>;
    /// A new personal access token of the caller (a signed-in session only), shown once.
    async fn create_access_token(
        &self,
        caller: &Caller,
        input: AccessTokenInput,
    ) -> Result<IssuedAccessToken>;
    /// The caller's unrevoked, unexpired personal access tokens, newest first.
    async fn list_access_tokens(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>>;
    /// Revoke one of the caller's tokens (another's, or none: `NotFound`).
    async fn revoke_access_token(&self, caller: &Caller, id: uuid::Uuid) -> Result<()>;
    /// The caller a personal access token (`arc_pat_…`) makes while it is live: its owner with
    /// the owner's current role, narrowed by its scopes; `Ok(None)` for any other token. Token
    /// verifiers call this (through a short cache) as they call [`Self::session_live`].
    async fn token_principal(&self, token: &AccessToken) -> Result<Option<Principal>>;
    /// Mail a password-reset link to the account with this address, if there is one. Answers
    /// the same, in comparable time, whether there is or not.
    async fn forgot_password(&self, ctx: &RequestContext, input: ForgotPasswordInput)
    -> Result<()>;
    /// Set a new password with a reset token: every session ends, a lockout is cleared.
    /// Answers whose password it was (for the edge's revocation listener).
    async fn reset_password(
        &self,
        ctx: &RequestContext,
        input: ResetPasswordInput,
    ) -> Result<UserId>;
    /// Mark the account's address verified with a verification token.
    async fn verify_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User>;
    /// Mail the caller a new verification link (throttled; nothing when already verified).
    async fn resend_verification(&self, caller: &Caller) -> Result<()>;
    /// Undo an email change with the link mailed to the replaced address: that address is
    /// restored (verified) and every session of the account ends. Answers the user as restored.
    async fn revert_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User>;
}

#[async_trait]
pub trait UserService: Send + Sync {
    async fn ready(&self) -> Result<()>;
    async fn list_users(&self, caller: &Caller, query: RawUserQuery) -> Result<UserPage>;
    async fn create_user(&self, caller: &Caller, input: CreateUserInput) -> Result<User>;
    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User>;
    async fn update_user(&self, caller: &Caller, id: UserId, patch: UserPatch) -> Result<User>;
    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()>;
    async fn change_password(&self, caller: &Caller, id: UserId, pw: PasswordInput) -> Result<()>;
    async fn verify_user(&self, caller: &Caller, id: UserId) -> Result<User>;
    async fn set_status(&self, caller: &Caller, id: UserId, status: &str) -> Result<User>;
    async fn set_role(&self, caller: &Caller, id: UserId, role: &str) -> Result<User>;
    /// Admin: end every login lockout of the user (all networks), audited as `user.unlocked`.
    async fn unlock_user(&self, caller: &Caller, id: UserId) -> Result<User>;
    /// Admin: the user's live sessions (`current` marks the caller's own).
    async fn list_user_sessions(&self, caller: &Caller, id: UserId) -> Result<Vec<SessionInfo>>;
    /// Remove every second factor of the user and end their sessions (admin).
    async fn remove_mfa(&self, caller: &Caller, id: UserId) -> Result<()>;
    /// Read the audit log (admin).
    async fn list_audit_events(&self, caller: &Caller, query: RawAuditQuery) -> Result<AuditPage>;
}

/// Registering the applications that log in through arcana (admin only). A `client_id` that is
/// not a registered client's, malformed ones included, is `NotFound`.
#[async_trait]
pub trait OidcClientService: Send + Sync {
    async fn create_client(&self, caller: &Caller, input: OidcClientInput) -> Result<IssuedClient>;
    async fn list_clients(&self, caller: &Caller, query: RawClientQuery) -> Result<ClientPage>;
    async fn get_client(&self, caller: &Caller, client_id: &str) -> Result<OidcClient>;
    async fn update_client(
        &self,
        caller: &Caller,
        client_id: &str,
        patch: OidcClientPatch,
    ) -> Result<OidcClient>;
    async fn delete_client(&self, caller: &Caller, client_id: &str) -> Result<()>;
    /// A new secret for a confidential client (the old one stops working at once); a public
    /// client has none (`Conflict`).
    async fn rotate_client_secret(&self, caller: &Caller, client_id: &str) -> Result<IssuedClient>;

    /// Service accounts: the machine clients of the `client_credentials` grant (admin only).
    /// The secret is answered once.
    async fn create_service_account(
        &self,
        caller: &Caller,
        input: ServiceAccountInput,
    ) -> Result<IssuedServiceAccount>;
    /// Every service account, oldest first.
    async fn list_service_accounts(&self, caller: &Caller) -> Result<Vec<ServiceAccount>>;
    async fn get_service_account(&self, caller: &Caller, id: uuid::Uuid) -> Result<ServiceAccount>;
    /// A new secret; the previous one keeps working for the overlap asked for.
    async fn rotate_service_account_secret(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: SecretRotationInput,
    ) -> Result<IssuedServiceAccount>;
    /// Delete the account: its tokens stop working within seconds.
    async fn delete_service_account(&self, caller: &Caller, id: uuid::Uuid) -> Result<()>;
}

/// Lifecycle webhooks (admin only): endpoints, their signing secret (answered once), a test
/// delivery, the delivery log and manual retry. An id that names no endpoint is `NotFound`.
#[async_trait]
pub trait WebhookService: Send + Sync {
    async fn create_webhook(
        &self,
        caller: &Caller,
        input: crate::WebhookInput,
    ) -> Result<crate::IssuedWebhook>;
    /// Every endpoint, oldest first.
    async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<crate::Webhook>>;
    async fn get_webhook(&self, caller: &Caller, id: uuid::Uuid) -> Result<crate::Webhook>;
    async fn update_webhook(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        patch: crate::WebhookPatch,
    ) -> Result<crate::Webhook>;
    /// Delete the endpoint and everything queued for it.
    async fn delete_webhook(&self, caller: &Caller, id: uuid::Uuid) -> Result<()>;
    /// Send a `webhook.test` event now and answer how it went.
    async fn test_webhook(&self, caller: &Caller, id: uuid::Uuid)
    -> Result<crate::WebhookDelivery>;
    /// The endpoint's deliveries, newest first.
    async fn list_webhook_deliveries(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        query: crate::RawDeliveryQuery,
    ) -> Result<crate::DeliveryPage>;
    /// Try a delivery again now (a failed one too).
    async fn retry_webhook_delivery(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        delivery: uuid::Uuid,
    ) -> Result<crate::WebhookDelivery>;
}
