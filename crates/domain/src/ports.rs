//! Repository ports: what the service layer needs from storage. Two adapters implement each:
//! the diesel one (in-process) and the gRPC client (layered/microservices).
//!
//! Contract shared by every implementation:
//! - username and email are unique case-insensitively among users that are not `deleted`; the
//!   database enforces it (a race between two inserts yields exactly one `Ok` and one
//!   `Error::Conflict`), and soft delete frees both for reuse;
//! - an update or soft delete that would leave no active admin while one exists fails with
//!   `Error::Conflict` (checked and applied in one transaction);
//! - a lost connection or an exhausted pool is `Error::Unavailable`.
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::audit::{AuditPage, AuditQuery};
use crate::error::Result;
use crate::machines::StoredServiceAccount;
use crate::mfa::{
    CeremonyKind, FactorRemoval, MfaChallenge, MfaFactors, PasskeyChange, RecoveryCodeSet,
    StoredPasskey, TotpConfirmation, TotpEnrolment, WebauthnCeremony,
};
use crate::model::*;
use crate::oidc::{
    ClientId, ClientPage, ClientQuery, CodeRedemption, Consent, Grant, NewCode, Redeemed,
    StoredClient, StoredCode,
};
use crate::pagination::{UserPage, UserQuery};
use crate::recovery::*;
use crate::tokens::{AccessTokenOwner, StoredAccessToken};
use crate::webhooks::{
    DeliveryClaim, DeliveryPage, DeliveryQuery, DeliverySettlement, QueuedDelivery, StoredWebhook,
    TestDelivery, Webhook, WebhookDelivery,
};

/// The user port speaks in use cases: each write is one command, applied in one transaction
/// together with the audit events it records (as the outbox's mails are). The short forms
/// (`create`, `update`, `soft_delete`, `record_login_success`) are the same commands without
/// audit events.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Cheap round trip to the database (readiness).
    async fn ping(&self) -> Result<()>;
    /// Insert the user and write `audit` in the same transaction.
    async fn create_user(&self, user: NewUser, audit: Vec<AuditEvent>) -> Result<User>;
    /// Any status, `deleted` included.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>>;
    /// A non-deleted user whose username or email equals `login` case-insensitively.
    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>>;
    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>>;
    async fn list(&self, query: &UserQuery) -> Result<UserPage>;
    /// Apply [`UserChange`] to a non-deleted user; `Ok(None)` when there is none (nothing
    /// written). When `update.email` replaces the stored address (compared case-insensitively
    /// against the locked row) the account becomes unverified and `update.email_change` is
    /// written in the same transaction; `Error::Conflict` (changed meanwhile) when the stored
    /// address is no longer its `expected_email`.
    async fn change_user(&self, change: UserChange) -> Result<Option<User>>;
    /// [`UserDeletion`]: mark deleted, free username/email, revoke every session, audit.
    /// `Ok(false)` when absent or already deleted (nothing written).
    async fn delete_user(&self, deletion: UserDeletion) -> Result<bool>;
    /// [`LoginStart`]: the credentials of the account named `login` and one attempt reserved
    /// for it (see [`LoginAttempt`]), in one transaction; `Ok(None)` when there is no such
    /// account (nothing reserved).
    async fn begin_login(&self, start: LoginStart) -> Result<Option<LoginBegun>>;
    /// Atomically (one transaction) check the lock and take one of the remaining attempts,
    /// BEFORE any password is hashed; see [`LoginAttempt`].
    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt>;
    /// [`LoginCompletion`], in one transaction. The success ([`LoginSuccess`]): set
    /// `last_login_at`, the network's `last_success` and clear the account-wide failure count;
    /// reset the network's failure count and lock only if no other attempt was reserved from
    /// it since (so a lock set meanwhile stays); replace the hash per `rehash` only if the
    /// stored one is still the verified one. Then the session as `SessionRepository::create`
    /// opens it, then the audit events. `Error::NotFound` when there is no such user.
    async fn complete_login(&self, completion: LoginCompletion) -> Result<()>;
    /// Apply a password change in one transaction (see [`PasswordChange`]). `Ok(None)` when
    /// the user is absent or deleted; `Error::Conflict` when `verified_hash` no longer matches;
    /// else the number of sessions revoked.
    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>>;
    /// Number of users with role admin and status active.
    async fn count_active_admins(&self) -> Result<u64>;

    /// [`Self::create_user`] without audit events.
    async fn create(&self, user: NewUser) -> Result<User> {
        self.create_user(user, Vec::new()).await
    }
    /// [`Self::change_user`] of `update` alone (no revocation, no audit events).
    async fn update(&self, id: UserId, update: UserUpdate, now: Timestamp) -> Result<Option<User>> {
        let change = UserChange {
            id,
            update,
            revoke: None,
            audit: Vec::new(),
            now,
        };
        self.change_user(change).await
    }
    /// [`Self::delete_user`] without audit events.
    async fn soft_delete(&self, id: UserId, now: Timestamp) -> Result<bool> {
        let deletion = UserDeletion {
            id,
            audit: Vec::new(),
            now,
        };
        self.delete_user(deletion).await
    }
    /// [`Self::complete_login`] of the success alone (no session, no audit events).
    async fn record_login_success(&self, success: LoginSuccess) -> Result<()> {
        let completion = LoginCompletion {
            success,
            session: None,
            audit: Vec::new(),
        };
        self.complete_login(completion).await
    }
}

/// The most sessions `list_live_for_user` answers (the newest).
pub const MAX_LISTED_SESSIONS: u32 = 100;

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// `Error::NotFound` when the user does not exist; `Error::InvalidCredentials` when the
    /// user's credential version is no longer `session.credential_version` (the password changed
    /// after it was verified). Checked and inserted in one transaction.
    async fn create(&self, session: NewSession) -> Result<Session>;
    async fn find(&self, id: SessionId) -> Result<Option<Session>>;
    /// The session and its owner as they stand, in one read.
    async fn find_with_owner(&self, id: SessionId) -> Result<Option<SessionOwner>>;
    /// Compare-and-swap ([`Rotation`]), in one call: replace the refresh hash only if the
    /// session is live ([`SessionOwner::is_live`] at `now`: unrevoked, unexpired, opened with
    /// the owner's current credentials, owner active) and its hash still equals
    /// `expected_hash`, which becomes the previous hash (`rotated_at` = `now`). Returns the
    /// session (as rotated) with its owner; `Ok(None)` when nothing was swapped: absent, not
    /// live, or another hash is current (someone else rotated first).
    async fn rotate(&self, rotation: Rotation) -> Result<Option<SessionOwner>>;
    /// [`SessionEnd`]: `Ok(true)` when the session matched (its owner, and live when asked):
    /// then it is revoked (if it was not yet) and the audit events are written, in one
    /// transaction. `Ok(false)`: nothing written.
    async fn end_session(&self, end: SessionEnd) -> Result<bool>;
    /// Revoke every unrevoked session of a user except `keep` and write the audit events, in
    /// one transaction; returns how many were revoked.
    async fn revoke_all_for_user(&self, r: UserRevocation) -> Result<u64>;
    /// Unrevoked, unexpired sessions of a user, newest first, at most [`MAX_LISTED_SESSIONS`].
    async fn list_live_for_user(&self, user_id: UserId, now: Timestamp) -> Result<Vec<Session>>;

    /// Revoke one session of any owner, without audit events; `Ok(false)` when absent or
    /// already revoked.
    async fn revoke(&self, id: SessionId, reason: RevokeReason, now: Timestamp) -> Result<bool> {
        if self.find(id).await?.is_none_or(|s| s.revoked_at.is_some()) {
            return Ok(false);
        }
        let end = SessionEnd {
            id,
            user_id: None,
            reason,
            live_only: false,
            audit: Vec::new(),
            now,
        };
        self.end_session(end).await
    }
}

#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Write events that record no change of their own (failed attempts); a change's events
    /// travel with its command.
    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<()>;
    /// The events matching every filter of `query`, newest first (by time, then id), one
    /// keyset page of at most [`MAX_PER_PAGE`](crate::MAX_PER_PAGE).
    async fn list_events(&self, query: &AuditQuery) -> Result<AuditPage>;

    async fn record(&self, event: AuditEvent) -> Result<()> {
        self.record_all(vec![event]).await
    }
}

#[async_trait]
pub trait RecoveryRepository: Send + Sync {
    /// Store the token and its mail in one transaction; `Ok(false)` when the throttle of
    /// [`TokenIssue`] refused (nothing stored).
    async fn issue_token(&self, issue: TokenIssue) -> Result<bool>;
    /// Spend a token ([`Redemption`]) and answer the user as changed. A token that is unknown,
    /// of another purpose, used, expired, or superseded (the user is deleted, or their email or,
    /// for a reset, their credentials changed since it was issued) is `Error::Validation` on the
    /// field `token` with one of the `TOKEN_*` messages.
    async fn redeem_token(&self, redemption: Redemption) -> Result<User>;
    /// Read-only: whether `redemption`'s token could be spent now (`Ok`), else the refusal
    /// `redeem_token` would answer. Lets a caller skip costly work (hashing the new password)
    /// for a bogus token; `redeem_token` checks again.
    async fn check_token(&self, redemption: Redemption) -> Result<()>;
    /// Where a password-reset link for `user_id` may go: its address when verified; else the
    /// verified address that an email change made at or after `changed_since` replaced (and
    /// that was not reverted); else nowhere. Read against the stored row, never a cache.
    async fn reset_recipient(
        &self,
        user_id: UserId,
        changed_since: Timestamp,
    ) -> Result<Option<String>>;
    /// Lease the mails due for delivery ([`MailClaim`]); a mail is leased to one worker at a
    /// time, whatever the number of replicas claiming.
    async fn claim_mail(&self, claim: MailClaim) -> Result<Vec<QueuedMail>>;
    /// Record how a delivery ended; `Ok(false)` when the lease was lost meanwhile (nothing
    /// changed). A sent mail keeps no body.
    async fn settle_mail(&self, settlement: MailSettlement) -> Result<bool>;
    async fn outbox_stats(&self) -> Result<OutboxStats>;
    /// Delete mails delivered or given up on, and tokens used or expired, before `before`;
    /// and the login-failure rows of networks untouched for [`crate::KNOWN_NETWORK_WINDOW`]
    /// before it.
    async fn purge_recovery(&self, before: Timestamp) -> Result<u64>;
}

/// Housekeeping run by one replica at a time: old sessions and audit events go, in bounded
/// batches.
#[async_trait]
pub trait MaintenanceRepository: Send + Sync {
    /// Take (or extend) the lease `name` for `holder` until `until`, if it is free, expired, or
    /// already `holder`'s. `Ok(true)`: the holder may run the job.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;
    /// Delete at most `limit` sessions that expired or were revoked before `before`; how many.
    async fn purge_sessions(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// Delete at most `limit` audit events recorded before `before`; how many.
    async fn purge_audit(&self, before: Timestamp, limit: u32) -> Result<u64>;
}

/// The OpenID Connect provider's storage: registered clients, authorization codes, the grants
/// of token sessions, and consents. Every change is one transaction together with its audit
/// events.
#[async_trait]
pub trait OidcRepository: Send + Sync {
    /// `Error::Conflict` (duplicate) when the id is taken.
    async fn create_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<()>;
    async fn find_client(&self, id: ClientId) -> Result<Option<StoredClient>>;
    /// Clients in id order after `query.after`, one keyset page.
    async fn list_clients(&self, query: &ClientQuery) -> Result<ClientPage>;
    /// Replace every setting and the secret hash of the client `client.client.client_id`
    /// (`created_at` stays); `Ok(false)` when there is none (nothing written).
    async fn update_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<bool>;
    /// Delete the client, its consents and codes, and revoke every session issued to it
    /// (`client_deleted`). `Ok(false)` when there is none (nothing written).
    async fn delete_client(
        &self,
        id: ClientId,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Result<bool>;

    async fn create_code(&self, code: NewCode) -> Result<()>;
    async fn find_code(&self, code_hash: &str) -> Result<Option<StoredCode>>;
    /// [`CodeRedemption`]; the session is opened as `SessionRepository::create` opens one.
    async fn redeem_code(&self, redemption: CodeRedemption) -> Result<Redeemed>;
    async fn find_grant(&self, session_id: SessionId) -> Result<Option<Grant>>;
    async fn find_consent(&self, user_id: UserId, client_id: ClientId) -> Result<Option<Consent>>;
    /// Replace the user's consent to the client.
    async fn save_consent(&self, consent: Consent, audit: Vec<AuditEvent>) -> Result<()>;
    /// End an SSO session (`end.id`, of `end.user_id` when given) and every token session
    /// issued from it, with `end.audit`, in one transaction; how many sessions were revoked
    /// (0: nothing matched, nothing written).
    async fn end_sso_session(&self, end: SessionEnd) -> Result<u64>;

    /// Store a service account with `audit`, unless there are [`crate::MAX_SERVICE_ACCOUNTS`]
    /// already (`Error::Conflict`, `NotApplicable`).
    async fn create_service_account(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<()>;
    async fn find_service_account(&self, id: Uuid) -> Result<Option<StoredServiceAccount>>;
    /// Every service account, oldest first.
    async fn list_service_accounts(&self) -> Result<Vec<StoredServiceAccount>>;
    /// Replace the secrets of account `account.id` (hash, previous hash and its expiry, rotation
    /// time) with `audit`; `Ok(false)` when there is none (nothing written).
    async fn rotate_service_account_secret(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<bool>;
    /// Delete account `id` with `audit`; `Ok(false)` when there is none (nothing written).
    async fn delete_service_account(&self, id: Uuid, audit: Vec<AuditEvent>) -> Result<bool>;
}

/// Second factors and the pending second step of logins. Every change is one transaction
/// together with its audit events (and mail, where it has one).
#[async_trait]
pub trait MfaRepository: Send + Sync {
    /// The account's factors (none: the default).
    async fn find_factors(&self, user_id: UserId) -> Result<MfaFactors>;
    /// [`TotpEnrolment`]; `Error::Conflict` (`NotApplicable`) when a confirmed secret exists,
    /// `Error::NotFound` when the user does not.
    async fn begin_totp(&self, enrolment: TotpEnrolment) -> Result<()>;
    /// [`TotpConfirmation`]; `Ok(false)` (nothing written) when the pending secret is no longer
    /// `secret_enc` or already confirmed.
    async fn confirm_totp(&self, confirmation: TotpConfirmation) -> Result<bool>;
    /// Accept the time step `step` of the confirmed secret: `Ok(true)` when it is newer than
    /// the last one accepted (it becomes the last one), `Ok(false)` otherwise (a replay, or no
    /// confirmed secret). Compare-and-set: of two concurrent calls with one step, one wins.
    async fn use_totp_step(&self, user_id: UserId, step: i64) -> Result<bool>;
    /// [`RecoveryCodeSet`]; `Ok(false)` (nothing written) without a confirmed TOTP secret.
    async fn replace_recovery_codes(&self, set: RecoveryCodeSet) -> Result<bool>;
    /// Spend the unused recovery code of `user_id` whose SHA-256 is `code_hash`; `Ok(false)`
    /// when there is none (unknown, or used).
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// [`FactorRemoval`]: TOTP, recovery codes, passkeys, pending challenges and ceremonies;
    /// `Ok(false)` (nothing written) when the account had no factor at all (pending secrets
    /// included).
    async fn remove_factors(&self, removal: FactorRemoval) -> Result<bool>;
    /// Store a pending second step (and delete the expired ones of the account).
    async fn create_mfa_challenge(&self, challenge: MfaChallenge) -> Result<()>;
    async fn find_mfa_challenge(&self, token_hash: &str) -> Result<Option<MfaChallenge>>;
    /// Mark the challenge used if it is unused and unexpired at `now`: `Ok(true)` once.
    async fn spend_mfa_challenge(&self, token_hash: &str, now: Timestamp) -> Result<bool>;

    /// The account's passkeys, oldest first.
    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<StoredPasskey>>;
    /// The passkey with this WebAuthn credential id (base64url), whoever owns it.
    async fn find_passkey(&self, credential_id: &str) -> Result<Option<StoredPasskey>>;
    /// Add `passkey` (of `change.user_id`) with the change's audit and mail; `Error::Conflict`
    /// (`Duplicate`) when its credential id is registered already, `Error::NotFound` when the
    /// user does not exist (or is deleted).
    async fn add_passkey(&self, passkey: StoredPasskey, change: PasskeyChange) -> Result<()>;
    /// Rename passkey `id` of `change.user_id`; `Ok(false)` (nothing written) when it has none.
    async fn rename_passkey(&self, id: Uuid, name: &str, change: PasskeyChange) -> Result<bool>;
    /// Delete passkey `id` of `change.user_id`; `Ok(false)` (nothing written) when it has none.
    async fn delete_passkey(&self, id: Uuid, change: PasskeyChange) -> Result<bool>;
    /// After a sign-in with passkey `id`: its updated record (counter) and `last_used_at`.
    /// `Ok(false)` when it is gone.
    async fn record_passkey_use(
        &self,
        id: Uuid,
        credential: String,
        now: Timestamp,
    ) -> Result<bool>;
    /// Store a ceremony in flight (and delete the expired ones).
    async fn create_ceremony(&self, ceremony: WebauthnCeremony) -> Result<()>;
    /// Take ceremony `id` of `kind`: mark it used and answer it, if it is unused and unexpired at
    /// `now` — once; `Ok(None)` otherwise.
    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        now: Timestamp,
    ) -> Result<Option<WebauthnCeremony>>;
}

/// Personal access tokens. Every change is one transaction together with its audit events.
#[async_trait]
pub trait AccessTokenRepository: Send + Sync {
    /// Store `token` (of `token.user_id`, who must exist and not be deleted: else
    /// `Error::NotFound`) with its audit events and the owner's security notice, unless its
    /// owner already holds [`crate::MAX_LIVE_PATS`] live ones at `token.created_at`
    /// (`Error::Conflict`, `NotApplicable`).
    async fn create_access_token(
        &self,
        token: StoredAccessToken,
        audit: Vec<AuditEvent>,
        mail: Option<OutgoingMail>,
    ) -> Result<()>;
    /// The user's unrevoked tokens unexpired at `now`, newest first.
    async fn list_access_tokens(
        &self,
        user_id: UserId,
        now: Timestamp,
    ) -> Result<Vec<StoredAccessToken>>;
    /// The token whose SHA-256 (hex) is `token_hash`, with its owner, in one read.
    async fn find_access_token(&self, token_hash: &str) -> Result<Option<AccessTokenOwner>>;
    /// Revoke token `id` of `user_id` if it is unrevoked, with `audit`; `Ok(false)` (nothing
    /// written) when the user has no such token.
    async fn revoke_access_token(
        &self,
        user_id: UserId,
        id: Uuid,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Record a use at `now`: `last_used_at` is written only when it is older than
    /// [`crate::PAT_USE_GRANULARITY`] (so not once per request).
    async fn touch_access_token(&self, id: Uuid, now: Timestamp) -> Result<()>;
}

/// Webhook endpoints and their deliveries (the events themselves are queued by the commands
/// that carry their audit records: see [`crate::webhook_event`]).
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Store a new endpoint; `Conflict` when [`crate::MAX_WEBHOOKS`] exist.
    async fn create_webhook(&self, webhook: StoredWebhook, audit: Vec<AuditEvent>) -> Result<()>;
    async fn find_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>>;
    /// Every endpoint, oldest first.
    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>>;
    /// Replace an endpoint's fields (not its secret); false when it is gone.
    async fn update_webhook(&self, webhook: Webhook, audit: Vec<AuditEvent>) -> Result<bool>;
    /// Delete an endpoint and its deliveries; false when it was not there.
    async fn delete_webhook(&self, id: Uuid, audit: Vec<AuditEvent>) -> Result<bool>;
    /// The endpoint's deliveries, newest first.
    async fn list_deliveries(&self, webhook_id: Uuid, query: DeliveryQuery)
    -> Result<DeliveryPage>;
    /// Make a delivery of the endpoint due now (a failed one pending again, its three days
    /// starting over); `None` when there is no such delivery.
    async fn retry_delivery(
        &self,
        webhook_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<Option<WebhookDelivery>>;
    /// Queue a test event for the endpoint, already leased to the caller; `None`: no endpoint.
    async fn queue_test_delivery(&self, test: TestDelivery) -> Result<Option<QueuedDelivery>>;
    async fn find_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<WebhookDelivery>>;
    /// Lease due deliveries (see [`DeliveryClaim`]).
    async fn claim_deliveries(&self, claim: DeliveryClaim) -> Result<Vec<QueuedDelivery>>;
    /// Record an attempt's outcome; false when the lease was lost meanwhile.
    async fn settle_delivery(&self, settlement: DeliverySettlement) -> Result<bool>;
    /// Delete delivered and failed deliveries older than `before`; how many.
    async fn purge_deliveries(&self, before: Timestamp) -> Result<u64>;
}

/// Every repository port, as one value: what the service layer works through and what the
/// repository's gRPC server serves (the diesel adapter behind each, or the gRPC clients, or a
/// test's stand-in for one of them).
#[derive(Clone)]
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub audit: Arc<dyn AuditRepository>,
    pub recovery: Arc<dyn RecoveryRepository>,
    pub maintenance: Arc<dyn MaintenanceRepository>,
    pub oidc: Arc<dyn OidcRepository>,
    pub mfa: Arc<dyn MfaRepository>,
    pub tokens: Arc<dyn AccessTokenRepository>,
    pub webhooks: Arc<dyn WebhookRepository>,
}

impl Repositories {
    /// Every port from one adapter (e.g. `repository::Database`).
    pub fn from_one<R>(repo: R) -> Self
    where
        R: UserRepository
            + SessionRepository
            + AuditRepository
            + RecoveryRepository
            + MaintenanceRepository
            + OidcRepository
            + MfaRepository
            + AccessTokenRepository
            + WebhookRepository
            + Clone
            + 'static,
    {
        Self {
            users: Arc::new(repo.clone()),
            sessions: Arc::new(repo.clone()),
            audit: Arc::new(repo.clone()),
            recovery: Arc::new(repo.clone()),
            maintenance: Arc::new(repo.clone()),
            oidc: Arc::new(repo.clone()),
            mfa: Arc::new(repo.clone()),
            tokens: Arc::new(repo.clone()),
            webhooks: Arc::new(repo),
        }
    }
}
