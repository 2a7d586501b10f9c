//! Account recovery and email verification: single-use tokens sent by mail, and the
//! transactional outbox the mails wait in until a delivery worker has handed them to SMTP.
use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::model::{Timestamp, UserId};

/// What a mailed token is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// `POST /auth/password/reset`: set a new password without the old one.
    Reset,
    /// `POST /auth/email/verify`: prove the account's address.
    Verify,
    /// `POST /auth/email/revert`: undo an email change from the link mailed to the address it
    /// replaced (kept with the change itself, see [`EmailChange`]).
    RevertEmail,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Reset => "reset",
            TokenPurpose::Verify => "verify",
            TokenPurpose::RevertEmail => "revert_email",
        }
    }
}

impl std::str::FromStr for TokenPurpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reset" => Ok(TokenPurpose::Reset),
            "verify" => Ok(TokenPurpose::Verify),
            "revert_email" => Ok(TokenPurpose::RevertEmail),
            _ => Err("must be one of: reset, verify, revert_email".into()),
        }
    }
}

/// A token to store: only its SHA-256 is kept. It is good for `email` (a change of the
/// account's address voids it) and, for a reset, for the credentials at `credential_version`
/// (any password change voids it).
#[derive(Clone, PartialEq, Eq)]
pub struct NewAccountToken {
    pub id: Uuid,
    pub user_id: UserId,
    pub purpose: TokenPurpose,
    pub token_hash: String,
    pub email: String,
    pub credential_version: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl fmt::Debug for NewAccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccountToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A mail for the outbox, rendered. Its bodies carry a token link: they are erased once the
/// mail is delivered, and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: Timestamp,
    /// When the link the mail carries dies: still undelivered then, the mail is given up and
    /// its body erased (a late reset link is useless at best). `None`: it carries no link.
    pub expires_at: Option<Timestamp>,
    /// Queue it only while its recipient and the recipient's domain received fewer mails than
    /// this since `limit.since` (mail bombing); a mail over the limit is not queued. `None`:
    /// always queued (the security notice of an email change, which an attacker must not be
    /// able to crowd out).
    pub limit: Option<MailLimit>,
}

/// The most mails queued to one address and to one domain since `since` (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimit {
    pub since: Timestamp,
    pub per_recipient: u32,
    pub per_domain: u32,
}

impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A token and the mail that carries it, stored in one transaction (or neither). With
/// `throttle_max > 0`, nothing is stored when the user already has `throttle_max` tokens of
/// this purpose created at or after `throttle_since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIssue {
    pub token: NewAccountToken,
    /// `None`: the token only (an administrator hands the link over).
    pub mail: Option<OutgoingMail>,
    pub throttle_since: Timestamp,
    pub throttle_max: u32,
}

/// What an email change writes in the transaction of the update that makes it: the record of the
/// change with the revert link's token (SHA-256; the link goes to the replaced address and undoes
/// the change until `revert_expires_at`), a verification token for the new address, and the
/// mails (the notice to the old address, the verification link to the new one).
#[derive(Clone, PartialEq, Eq)]
pub struct EmailChange {
    pub id: Uuid,
    /// The address the caller saw: the update applies only while it is still the stored one.
    pub expected_email: String,
    pub revert_token_hash: String,
    pub revert_expires_at: Timestamp,
    pub verify_token: Option<NewAccountToken>,
    pub mails: Vec<OutgoingMail>,
}

impl fmt::Debug for EmailChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChange")
            .field("id", &self.id)
            .field("revert_expires_at", &self.revert_expires_at)
            .finish_non_exhaustive()
    }
}

/// How long the address an email change replaced keeps receiving reset links (while the new
/// one is unverified) and can undo the change.
pub const EMAIL_REVERT_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Spend a token. For a reset, `new_password_hash` becomes the password: credential version
/// bumped, every session revoked, the lockout cleared. For a verification the account's
/// address becomes verified. For an email revert, the address the change replaced is restored
/// (verified: the link was read there) and every session revoked. One transaction; the token can be spent once.
#[derive(Clone, PartialEq, Eq)]
pub struct Redemption {
    pub token_hash: String,
    pub purpose: TokenPurpose,
    pub new_password_hash: Option<String>,
    pub now: Timestamp,
    /// Written in the redemption's transaction, completed by [`Redemption::audit_records`].
    pub audit: Vec<crate::AuditEvent>,
}

impl Redemption {
    /// The audit events as written for `user`, the account the token was for (as changed):
    /// each names the user as its subject and, where the owner followed a link mailed to their
    /// own address (a verification, a revert), as its actor; an `email` placeholder gets the
    /// account's address, masked.
    pub fn audit_records(&self, user: &crate::User) -> Vec<crate::AuditEvent> {
        let own = matches!(
            self.purpose,
            TokenPurpose::Verify | TokenPurpose::RevertEmail
        );
        self.audit
            .iter()
            .cloned()
            .map(|mut e| {
                e.subject_id = e.subject_id.or(Some(user.id));
                if own {
                    e.actor_id = e.actor_id.or(Some(user.id));
                }
                e.fill("email", crate::mask_email(&user.email).into());
                e
            })
            .collect()
    }
}

impl fmt::Debug for Redemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redemption")
            .field("purpose", &self.purpose)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (the `token` field error of `VALIDATION_FAILED`).
pub const TOKEN_UNKNOWN: &str = "is not a valid link token";
pub const TOKEN_USED: &str = "has already been used";
pub const TOKEN_EXPIRED: &str = "has expired";
pub const TOKEN_SUPERSEDED: &str =
    "is no longer valid: the account's password or email address changed since it was sent";

/// Take up to `limit` mails due at `now` for delivery, each leased to `worker` until
/// `now + lease` (another worker takes it only after that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailClaim {
    pub worker: String,
    pub now: Timestamp,
    pub lease: Duration,
    pub limit: u32,
}

/// A mail leased for delivery. `attempts` counts this one.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: u32,
    pub created_at: Timestamp,
}

impl fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How a delivery attempt ended, reported by the worker that holds the lease: `sent`; or not,
/// and retried at `retry_at`; or not and given up (`retry_at` absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettlement {
    pub id: Uuid,
    pub worker: String,
    pub sent: bool,
    pub retry_at: Option<Timestamp>,
    pub error: Option<String>,
    pub now: Timestamp,
}

/// Mails waiting for delivery (due or backing off) and mails given up on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: u64,
    pub failed: u64,
}
