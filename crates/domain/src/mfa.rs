//! Second factors: TOTP (RFC 6238), single-use recovery codes, and the pending second step of a
//! login (`mfa_token`). The repository stores what the service layer hands it: TOTP secrets
//! already encrypted (it never holds the key), recovery codes and challenge tokens as SHA-256.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{AuditEvent, Timestamp, UserId};
use crate::recovery::OutgoingMail;
use crate::services::AuthSession;

/// How long the `mfa_token` of a login waiting for its second factor lives.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How many recovery codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// A way to complete the second step of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MfaMethod {
    Totp,
    RecoveryCode,
    Passkey,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::RecoveryCode => "recovery_code",
            MfaMethod::Passkey => "passkey",
        }
    }
}

impl std::str::FromStr for MfaMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "totp" => Ok(MfaMethod::Totp),
            "recovery_code" => Ok(MfaMethod::RecoveryCode),
            "passkey" => Ok(MfaMethod::Passkey),
            other => Err(format!("unknown second factor {other:?}")),
        }
    }
}

/// A TOTP secret as stored. `secret_enc` is the secret encrypted with the service layer's data
/// key (bound to the account); `confirmed_at` is `None` until a first code confirmed it;
/// `last_step` is the newest time step accepted (a step at or before it is a replay).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTotp {
    pub secret_enc: String,
    pub created_at: Timestamp,
    pub confirmed_at: Option<Timestamp>,
    pub last_step: Option<i64>,
}

impl fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTotp")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// The second factors of one account as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MfaFactors {
    /// Enrolled or pending (unconfirmed).
    pub totp: Option<StoredTotp>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// Registered passkeys.
    pub passkeys: u32,
}

impl MfaFactors {
    /// A confirmed TOTP secret.
    pub fn totp_enabled(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed_at.is_some())
    }
    /// Whether a login needs a second step.
    pub fn any(&self) -> bool {
        self.totp_enabled() || self.passkeys > 0
    }
    /// The methods a second step may use, in the order offered.
    pub fn methods(&self) -> Vec<MfaMethod> {
        let mut m = Vec::new();
        if self.totp_enabled() {
            m.push(MfaMethod::Totp);
        }
        if self.passkeys > 0 {
            m.push(MfaMethod::Passkey);
        }
        if self.recovery_codes_left > 0 {
            m.push(MfaMethod::RecoveryCode);
        }
        m
    }
}

/// A passkey (a WebAuthn credential) of an account, as stored. `credential` is the
/// relying-party library's record of it (public key, signature counter, backup flags), as JSON:
/// public material only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    /// The WebAuthn credential id, base64url without padding; unique.
    pub credential_id: String,
    /// The owner's name for it ("YubiKey 5", "work laptop"): 1 to 64 characters.
    pub name: String,
    pub credential: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl fmt::Debug for StoredPasskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPasskey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a WebAuthn ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a passkey for a signed-in account.
    Registration,
    /// A passkey as the second step of a login (`user_id` set).
    SecondFactor,
    /// Signing in with a passkey alone (discoverable credential; no `user_id`).
    Passwordless,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::SecondFactor => "second_factor",
            CeremonyKind::Passwordless => "passwordless",
        }
    }
}

impl std::str::FromStr for CeremonyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "registration" => Ok(CeremonyKind::Registration),
            "second_factor" => Ok(CeremonyKind::SecondFactor),
            "passwordless" => Ok(CeremonyKind::Passwordless),
            other => Err(format!("unknown ceremony {other:?}")),
        }
    }
}

/// A WebAuthn ceremony in flight, stored so that any replica finishes what another started:
/// `state` is the relying-party library's state of it (its challenge), as JSON. Single use,
/// until `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebauthnCeremony {
    pub id: uuid::Uuid,
    pub kind: CeremonyKind,
    pub user_id: Option<UserId>,
    pub state: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

impl fmt::Debug for WebauthnCeremony {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebauthnCeremony")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A change to one passkey of `user_id` with its audit events and notice mail, in one
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyChange {
    pub user_id: UserId,
    pub audit: Vec<AuditEvent>,
    pub mail: Option<OutgoingMail>,
    pub now: Timestamp,
}

/// Store a new, unconfirmed TOTP secret for `user_id` (`MfaRepository::begin_totp`), replacing an
/// unconfirmed one, with the audit events, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    pub user_id: UserId,
    pub totp: StoredTotp,
    pub audit: Vec<AuditEvent>,
}

/// Confirm the pending secret of `user_id` with the code of `step` (`MfaRepository::confirm_totp`):
/// it becomes enabled with `step` as its last used step, `recovery_code_hashes` replace any
/// recovery codes, the audit events and the notice mail are written, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpConfirmation {
    pub user_id: UserId,
    /// The pending secret that was checked: confirmed only while it is still the stored one.
    pub secret_enc: String,
    pub step: i64,
    pub recovery_code_hashes: Vec<String>,
    pub audit: Vec<AuditEvent>,
    pub mail: Option<OutgoingMail>,
    pub now: Timestamp,
}

/// A new set of recovery codes for `user_id` (`MfaRepository::replace_recovery_codes`): the old
/// set dies, in one transaction with the audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCodeSet {
    pub user_id: UserId,
    pub code_hashes: Vec<String>,
    pub audit: Vec<AuditEvent>,
    pub now: Timestamp,
}

/// Remove every second factor of `user_id` (`MfaRepository::remove_factors`), revoke its sessions
/// when `revoke_sessions` (with `reason`), write the audit events (completed with
/// `sessions_revoked`) and the notice mail, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRemoval {
    pub user_id: UserId,
    pub revoke_sessions: bool,
    pub audit: Vec<AuditEvent>,
    pub mail: Option<OutgoingMail>,
    pub now: Timestamp,
}

/// A login whose password was right, waiting for its second factor: stored by the SHA-256 of
/// its `mfa_token`, bound to the account, the client network and the credentials verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub token_hash: String,
    pub user_id: UserId,
    pub network: String,
    pub credential_version: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// `POST /auth/login` when the account has a second factor: no tokens, a single-use
/// `mfa_token` for `POST /auth/mfa/verify`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaPending {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, 5 minutes, bound to the account and the client network.
    pub mfa_token: String,
    pub methods: Vec<MfaMethod>,
    /// With a passkey among the methods: the options for `navigator.credentials.get`
    /// (`{"publicKey": …}`, binary fields base64url); the assertion goes to
    /// `POST /auth/mfa/verify` as `passkey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub passkey: Option<serde_json::Value>,
}

impl fmt::Debug for MfaPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaPending")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// What a right password answers: the session, or the second step it still needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LoginOutcome {
    Session(Box<AuthSession>),
    MfaRequired(MfaPending),
}

impl LoginOutcome {
    /// The session, when no second step is needed.
    pub fn session(self) -> Option<AuthSession> {
        match self {
            LoginOutcome::Session(s) => Some(*s),
            LoginOutcome::MfaRequired(_) => None,
        }
    }
}

/// `GET /auth/mfa`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaStatus {
    pub totp: bool,
    pub passkeys: u32,
    pub recovery_codes_left: u32,
}

/// `POST /auth/mfa/totp/setup`: the new secret, pending until confirmed with a first code.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpSetup {
    /// The secret, base32 (RFC 4648, no padding), for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…` (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

impl fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSetup(<redacted>)")
    }
}

/// A fresh set of recovery codes, shown once.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodes {
    /// 10 single-use codes of 80 random bits (`XXXX-XXXX-XXXX-XXXX`, base32).
    pub recovery_codes: Vec<String>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodes(<redacted>)")
    }
}

/// `POST /auth/mfa/totp/setup`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpSetupInput {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub current_password: String,
}

/// `POST /auth/mfa/totp/confirm` and `POST /auth/mfa/recovery-codes`: a current code.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaCodeInput {
    /// The 6 digits the authenticator app shows.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\s*[0-9]{3}\s?[0-9]{3}\s*$", example = "123456")
    )]
    pub code: String,
}

/// `DELETE /auth/mfa/totp`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpDisableInput {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub current_password: String,
    #[cfg_attr(feature = "openapi", schema(example = "123456"))]
    pub code: String,
}

/// `POST /auth/mfa/verify`: the `mfa_token` of the login and exactly one of `code` (TOTP) or
/// `recovery_code`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaVerifyInput {
    #[cfg_attr(feature = "openapi", schema(min_length = 43, max_length = 43))]
    pub mfa_token: String,
    #[cfg_attr(feature = "openapi", schema(example = "123456"))]
    pub code: Option<String>,
    #[cfg_attr(feature = "openapi", schema(example = "ABCD-EFGH-JKLM-NPQR"))]
    pub recovery_code: Option<String>,
    /// The `PublicKeyCredential` of `navigator.credentials.get` for the login's passkey options,
    /// as JSON (binary fields base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub passkey: Option<serde_json::Value>,
}

/// A WebAuthn ceremony begun: the options for the browser (`{"publicKey": …}`, binary fields
/// base64url) and the id to finish it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyChallenge {
    #[serde(rename = "publicKey")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub public_key: serde_json::Value,
    /// Single use, 5 minutes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub challenge_id: uuid::Uuid,
}

/// `POST /auth/mfa/passkeys/register/finish`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRegistrationInput {
    /// 1 to 64 characters, e.g. "work laptop".
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    /// The `PublicKeyCredential` of `navigator.credentials.create`, as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
    /// The start's `challenge_id` (optional: the credential names its challenge).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub challenge_id: Option<uuid::Uuid>,
}

/// `PATCH /auth/mfa/passkeys/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRename {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
}

/// `POST /auth/passkeys/login/finish`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyLoginInput {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub challenge_id: uuid::Uuid,
    /// The `PublicKeyCredential` of `navigator.credentials.get`, as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyInfo {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: uuid::Uuid,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
}

macro_rules! secret_debug {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "(<redacted>)"))
            }
        }
    )*};
}
secret_debug!(
    TotpSetupInput,
    MfaCodeInput,
    TotpDisableInput,
    MfaVerifyInput
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_the_factors() {
        let mut f = MfaFactors::default();
        assert!(!f.any());
        assert!(f.methods().is_empty());
        let now = chrono::Utc::now();
        f.totp = Some(StoredTotp {
            secret_enc: "x".into(),
            created_at: now,
            confirmed_at: None,
            last_step: None,
        });
        assert!(!f.any(), "a pending secret is no factor");
        if let Some(t) = f.totp.as_mut() {
            t.confirmed_at = Some(now);
        }
        f.recovery_codes_left = 3;
        assert!(f.any());
        assert_eq!(f.methods(), [MfaMethod::Totp, MfaMethod::RecoveryCode]);
        for m in f.methods() {
            assert_eq!(m.as_str().parse::<MfaMethod>(), Ok(m));
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let v = MfaVerifyInput {
            mfa_token: "tok".into(),
            code: Some("123456".into()),
            recovery_code: None,
            passkey: None,
        };
        let p = MfaPending {
            mfa_required: true,
            mfa_token: "tok".into(),
            methods: vec![MfaMethod::Totp],
            passkey: None,
        };
        let s = TotpSetup {
            secret: "JBSWY3DPEHPK3PXP".into(),
            otpauth_uri: "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP".into(),
            qr_svg: String::new(),
        };
        let all = format!("{v:?}{p:?}{s:?}");
        assert!(
            !all.contains("tok") && !all.contains("123456") && !all.contains("JBSW"),
            "{all}"
        );
    }
}
