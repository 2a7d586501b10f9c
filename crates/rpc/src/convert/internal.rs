//! Domain ↔ `arcana.internal.v1` (the repository boundary). Users and pages of users travel as
//! their `arcana.v1` messages (see [`super::v1`]).
use domain::{
    AttemptReservation, AuditCursor, AuditEvent, AuditQuery, ClientQuery, CodeRedemption, Consent,
    Cursor, EmailChange, Error, Grant, LockoutPolicy, LoginAttempt, LoginBegun, LoginCompletion,
    LoginStart, LoginSuccess, MailClaim, MailLimit, MailSettlement, NewAccountToken, NewCode,
    NewSession, NewUser, OutboxStats, OutgoingMail, PageRequest, PasswordChange, QueuedMail,
    Redeemed, Redemption, Rehash, Result, RevokeReason, Role, Rotation, Session, SessionEnd,
    SessionOwner, SortOrder, StoredClient, StoredCode, Timestamp, TokenIssue, User, UserChange,
    UserCredentials, UserDeletion, UserQuery, UserRevocation, UserSort, UserUpdate,
};
use uuid::Uuid;

use crate::internal as pb;
use crate::wire::Wire;
use crate::{message, request, wrapper};
use pb::login_attempt_response::Outcome;

message!(NewUser => pb::NewUser {
    id, username, email, password_hash, first_name, last_name, phone, avatar_url, role, status,
    is_verified, created_at,
});
message!(UserCredentials => pb::Credentials {
    user, password_hash, failed_login_count, locked_until, credential_version,
});
message!(UserUpdate => pb::UserUpdate {
    email, first_name, last_name, phone, avatar_url, role, status, is_verified, password_hash,
    email_change, release_attempt, release_network, clear_lockout,
});
message!(EmailChange => pb::EmailChange {
    id, expected_email, revert_token_hash, revert_expires_at, verify_token, mails,
});
message!(LockoutPolicy => pb::LockoutPolicy { max_failures, base_lock, max_lock });
message!(Rehash => pb::Rehash { verified_hash, new_hash });
message!(AttemptReservation => pb::AttemptReservation { user_id, network, policy, now });
message!(UserRevocation => pb::UserRevocation { user_id, reason, now, keep, audit });
message!(UserChange => pb::UserChange { id, update, revoke, audit, now });
message!(UserDeletion => pb::UserDeletion { id, audit, now });
message!(LoginStart => pb::LoginStart { login, network, policy, now });
// `factors` is absent from a repository of the release before second factors (which stores
// none): read as none.
impl From<LoginBegun> for pb::LoginBegun {
    fn from(b: LoginBegun) -> Self {
        Self {
            credentials: b.credentials.to_wire(),
            attempt: b.attempt.to_wire(),
            factors: Some(b.factors.into()),
        }
    }
}
impl TryFrom<pb::LoginBegun> for LoginBegun {
    type Error = Error;
    fn try_from(w: pb::LoginBegun) -> Result<Self> {
        Ok(Self {
            credentials: Wire::from_wire(w.credentials, "credentials")?,
            attempt: Wire::from_wire(w.attempt, "attempt")?,
            factors: w
                .factors
                .map(TryInto::try_into)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}
impl Wire for Option<LoginBegun> {
    type Wire = Option<pb::LoginBegun>;
    fn to_wire(self) -> Self::Wire {
        self.map(Into::into)
    }
    fn from_wire(w: Self::Wire, _: &str) -> Result<Self> {
        w.map(TryInto::try_into).transpose()
    }
}
message!(LoginCompletion => pb::LoginCompletion { success, session, audit });
message!(SessionEnd => pb::SessionEnd { id, user_id, reason, live_only, audit, now });
wrapper!(pb::OptionalLoginBegun { begun: Option<LoginBegun> });
wrapper!(pb::AuditEvents { events: Vec<AuditEvent> });
request!(pb::CreateAccountRequest {
    user: NewUser,
    audit: Vec<AuditEvent>
});
message!(LoginSuccess => pb::LoginSuccess { user_id, network, attempt, rehash, now });
message!(Rotation => pb::Rotation { id, expected_hash, new_hash, now });
message!(PasswordChange => pb::PasswordChange {
    user_id, new_hash, verified_hash, attempt, attempt_network, keep_session, now, audit,
});
message!(Session => pb::Session {
    id, user_id, refresh_token_hash, previous_refresh_hash, rotated_at, generation,
    credential_version, user_agent, ip, created_at, last_used_at, expires_at, revoked_at,
    revoked_reason, amr,
});
message!(SessionOwner => pb::SessionOwner { session, user, credential_version });
message!(NewSession => pb::NewSession {
    id, user_id, credential_version, refresh_token_hash, user_agent, ip, created_at, expires_at,
    max_live, amr,
});
message!(AuditQuery => pb::AuditQuery {
    user_id, r#type, outcome, since, until, after, per_page,
});

message!(NewAccountToken => pb::NewAccountToken {
    id, user_id, purpose, token_hash, email, credential_version, created_at, expires_at,
});
message!(OutgoingMail => pb::OutgoingMail {
    id, recipient, subject, text_body, html_body, created_at, expires_at, limit,
});
message!(MailLimit => pb::MailLimit { since, per_recipient, per_domain });
message!(TokenIssue => pb::TokenIssue { token, mail, throttle_since, throttle_max });
message!(Redemption => pb::Redemption { token_hash, purpose, new_password_hash, now, audit });
message!(MailClaim => pb::MailClaim { worker, now, lease, limit });
message!(QueuedMail => pb::QueuedMail {
    id, recipient, subject, text_body, html_body, attempts, created_at,
});
message!(MailSettlement => pb::MailSettlement { id, worker, sent, retry_at, error, now });
message!(OutboxStats => pb::OutboxStatsResponse { pending, failed });
wrapper!(pb::MailList { mails: Vec<QueuedMail> });
request!(pb::PurgeRequest { before: Timestamp });
request!(pb::LeaseRequest {
    name: String,
    holder: String,
    now: Timestamp,
    until: Timestamp
});
request!(pb::PurgeBatch {
    before: Timestamp,
    limit: u32
});

message!(StoredClient => pb::StoredClient { client, secret_hash });
message!(ClientQuery => pb::ClientQuery { after, per_page });
wrapper!(pb::OptionalStoredClient { client: Option<StoredClient> });
request!(pb::OidcClientWrite {
    client: StoredClient,
    audit: Vec<AuditEvent>
});
request!(pb::OidcClientDeletion {
    id: Uuid,
    audit: Vec<AuditEvent>,
    now: Timestamp
});

message!(NewCode => pb::OidcCode {
    code_hash, client_id, user_id, sso_session_id, redirect_uri, scopes, nonce, code_challenge,
    auth_time, created_at, expires_at,
});
message!(StoredCode => pb::StoredCode { code, used_at, session_id });
wrapper!(pb::OptionalStoredCode { code: Option<StoredCode> });
request!(pb::FindOidcCodeRequest { code_hash: String });
message!(CodeRedemption => pb::CodeRedemption { code_hash, session, audit, reuse_audit, now });
message!(Grant => pb::Grant { session_id, client_id, sso_session_id, scopes, auth_time });
wrapper!(pb::OptionalGrant { grant: Option<Grant> });
message!(Consent => pb::Consent { user_id, client_id, scopes, granted_at });
wrapper!(pb::OptionalConsent { consent: Option<Consent> });
request!(pb::ConsentKey {
    user_id: Uuid,
    client_id: Uuid
});
request!(pb::ConsentWrite {
    consent: Consent,
    audit: Vec<AuditEvent>
});

impl From<Redeemed> for pb::RedeemedResponse {
    fn from(r: Redeemed) -> Self {
        use pb::redeemed_response::Outcome;
        let outcome = match r {
            Redeemed::Issued(grant) => Outcome::Issued(grant.into()),
            Redeemed::Reused { revoked } => Outcome::ReusedRevoked(revoked),
            Redeemed::Unusable => Outcome::Unusable(pb::Empty {}),
        };
        Self {
            outcome: Some(outcome),
        }
    }
}

impl TryFrom<pb::RedeemedResponse> for Redeemed {
    type Error = Error;
    fn try_from(r: pb::RedeemedResponse) -> Result<Self> {
        use pb::redeemed_response::Outcome;
        match r.outcome {
            Some(Outcome::Issued(grant)) => Ok(Redeemed::Issued(grant.try_into()?)),
            Some(Outcome::ReusedRevoked(revoked)) => Ok(Redeemed::Reused { revoked }),
            Some(Outcome::Unusable(_)) => Ok(Redeemed::Unusable),
            None => Err(Error::validation("outcome", "is required")),
        }
    }
}

wrapper!(pb::OptionalUser { user: Option<User> });
wrapper!(pb::OptionalCredentials { credentials: Option<UserCredentials> });
wrapper!(pb::OptionalSession { session: Option<Session> });
wrapper!(pb::OptionalSessionOwner { owner: Option<SessionOwner> });
wrapper!(pb::SessionList { sessions: Vec<Session> });
wrapper!(pb::BoolResponse { value: bool });
wrapper!(pb::CountResponse { count: u64 });
wrapper!(pb::OptionalCount { count: Option<u64> });

request!(pb::IdRequest { id: Uuid });
request!(pb::AtRequest {
    id: Uuid,
    now: Timestamp
});
request!(pb::FindCredentialsRequest { login: String });
request!(pb::ResetRecipientRequest {
    user_id: Uuid,
    changed_since: Timestamp
});
wrapper!(pb::OptionalString { value: Option<String> });
request!(pb::UpdateUserRequest {
    id: Uuid,
    update: UserUpdate,
    now: Timestamp
});
request!(pb::RevokeSessionRequest {
    id: Uuid,
    reason: RevokeReason,
    now: Timestamp
});
request!(pb::SessionLiveRequest {
    user_id: Uuid,
    session_id: Uuid,
    role: Role
});
wrapper!(pb::SessionLiveResponse { live: bool });

/// A nullable column's change: absent = leave alone, `Some(None)` = clear.
impl Wire for Option<Option<String>> {
    type Wire = Option<pb::NullableString>;
    fn to_wire(self) -> Self::Wire {
        self.map(|value| pb::NullableString { value })
    }
    fn from_wire(w: Self::Wire, _: &str) -> Result<Self> {
        Ok(w.map(|n| n.value))
    }
}

// ---- listing: the page request is offset or keyset ----------------------------------------

/// A keyset position travels encoded, as the caller got it.
impl Wire for Option<AuditCursor> {
    type Wire = Option<String>;
    fn to_wire(self) -> Self::Wire {
        self.map(|c| c.encode())
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        w.map(|c| AuditCursor::decode(&c).map_err(|m| Error::validation(field, m)))
            .transpose()
    }
}

impl From<&UserQuery> for pb::UserQuery {
    fn from(q: &UserQuery) -> Self {
        let (page, keyset, after) = match &q.page {
            PageRequest::Offset { page } => (*page, false, String::new()),
            PageRequest::Keyset { after } => (
                0,
                true,
                after.as_ref().map(Cursor::encode).unwrap_or_default(),
            ),
        };
        Self {
            page,
            keyset,
            after,
            per_page: q.per_page,
            sort: q.sort.to_wire(),
            order: q.order.to_wire(),
            role: q.role.to_wire(),
            status: q.status.to_wire(),
            search: q.search.clone(),
            created_after: q.created_after.to_wire(),
            created_before: q.created_before.to_wire(),
        }
    }
}

impl TryFrom<pb::UserQuery> for UserQuery {
    type Error = Error;
    fn try_from(q: pb::UserQuery) -> Result<Self> {
        let page = match (q.keyset, q.after.is_empty()) {
            (false, _) => PageRequest::Offset { page: q.page },
            (true, true) => PageRequest::Keyset { after: None },
            (true, false) => PageRequest::Keyset {
                after: Some(Cursor::decode(&q.after).map_err(|_| Error::bad_cursor())?),
            },
        };
        Ok(UserQuery {
            page,
            per_page: q.per_page,
            sort: UserSort::from_wire(q.sort, "sort")?,
            order: SortOrder::from_wire(q.order, "order")?,
            role: Wire::from_wire(q.role, "role")?,
            status: Wire::from_wire(q.status, "status")?,
            search: q.search,
            created_after: Wire::from_wire(q.created_after, "created_after")?,
            created_before: Wire::from_wire(q.created_before, "created_before")?,
        })
    }
}

// ---- the login attempt: reserved, locked or no such user ----------------------------------

impl From<LoginAttempt> for pb::LoginAttemptResponse {
    fn from(a: LoginAttempt) -> Self {
        let mut r = Self::default();
        let outcome = match a {
            LoginAttempt::Reserved {
                attempt,
                locked_until,
                account_failures,
                last_success,
            } => {
                r.attempt = attempt;
                r.locked_until = locked_until.to_wire();
                r.account_failures = account_failures;
                r.last_success = last_success.to_wire();
                Outcome::Reserved
            }
            LoginAttempt::Locked { locked_until } => {
                r.locked_until = Some(locked_until).to_wire();
                Outcome::Locked
            }
            LoginAttempt::UnknownUser => Outcome::UnknownUser,
        };
        r.outcome = outcome.into();
        r
    }
}

impl Wire for LoginAttempt {
    type Wire = Option<pb::LoginAttemptResponse>;
    fn to_wire(self) -> Self::Wire {
        Some(self.into())
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        w.ok_or_else(|| Error::validation(field, "is required"))?
            .try_into()
    }
}

impl TryFrom<pb::LoginAttemptResponse> for LoginAttempt {
    type Error = Error;
    fn try_from(r: pb::LoginAttemptResponse) -> Result<Self> {
        match Outcome::try_from(r.outcome) {
            Ok(Outcome::Reserved) => Ok(LoginAttempt::Reserved {
                attempt: r.attempt,
                locked_until: Wire::from_wire(r.locked_until, "locked_until")?,
                account_failures: r.account_failures,
                last_success: Wire::from_wire(r.last_success, "last_success")?,
            }),
            Ok(Outcome::Locked) => Ok(LoginAttempt::Locked {
                locked_until: Timestamp::from_wire(r.locked_until, "locked_until")?,
            }),
            Ok(Outcome::UnknownUser) => Ok(LoginAttempt::UnknownUser),
            Ok(Outcome::Unspecified) | Err(_) => {
                Err(Error::validation("outcome", "is not a known outcome"))
            }
        }
    }
}
