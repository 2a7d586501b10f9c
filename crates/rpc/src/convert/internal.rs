//! `arcana.internal.v1` (the repository boundary) ↔ domain types.
//!
//! Domain → wire is infallible (`From`, and the `*_request` constructors for calls that carry
//! several values). Wire → domain (`TryFrom`, and the `*_from_wire` parsers) checks every field
//! and answers `Error::Validation` naming the wire field; nothing here panics. A client adapter
//! that decodes a *response* should pass such an error through [`malformed_response`]: bad data
//! from the layer below is the server's fault, not the caller's.
use std::time::Duration;

use domain::{
    AuditEvent, Cursor, Error, LockoutPolicy, LoginAttempt, NewSession, NewUser, PageInfo,
    PageRequest, PasswordChange, Rehash, Result, RevokeReason, Session, SessionId, SessionOwner,
    SortOrder, Timestamp, User, UserCredentials, UserId, UserPage, UserQuery, UserSort, UserUpdate,
};

use super::{from_opt_ts, from_ts, opt_ts, parse, ts, uuid};
use crate::internal as pb;
use pb::login_attempt_response::Outcome;

/// A response that does not decode is an internal error of the layer below (the field problems
/// are kept in the logged cause, never shown to the caller).
pub fn malformed_response(e: Error) -> Error {
    match e {
        Error::Validation(f) => Error::internal(format!(
            "malformed response from the repository layer: {:?}",
            f.0
        )),
        other => other,
    }
}

fn opt_uuid(s: Option<&str>, field: &str) -> Result<Option<uuid::Uuid>> {
    s.map(|s| uuid(s, field)).transpose()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn user_sort(s: &str) -> Result<UserSort> {
    UserSort::parse(s).map_err(|m| Error::validation("sort", m))
}

fn sort_order(s: &str) -> Result<SortOrder> {
    SortOrder::parse(s).map_err(|m| Error::validation("order", m))
}

// ---------------------------------------------------------------------------------------------
// users

impl From<User> for pb::UserRecord {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            phone: u.phone,
            avatar_url: u.avatar_url,
            role: u.role.as_str().to_owned(),
            status: u.status.as_str().to_owned(),
            is_verified: u.is_verified,
            created_at: Some(ts(u.created_at)),
            updated_at: Some(ts(u.updated_at)),
            last_login_at: opt_ts(u.last_login_at),
        }
    }
}

impl TryFrom<pb::UserRecord> for User {
    type Error = Error;
    fn try_from(r: pb::UserRecord) -> Result<Self> {
        Ok(User {
            id: uuid(&r.id, "id")?,
            username: r.username,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            phone: r.phone,
            avatar_url: r.avatar_url,
            role: parse(&r.role, "role")?,
            status: parse(&r.status, "status")?,
            is_verified: r.is_verified,
            created_at: from_ts(r.created_at, "created_at")?,
            updated_at: from_ts(r.updated_at, "updated_at")?,
            last_login_at: from_opt_ts(r.last_login_at, "last_login_at")?,
        })
    }
}

impl From<Option<User>> for pb::OptionalUser {
    fn from(u: Option<User>) -> Self {
        Self {
            user: u.map(Into::into),
        }
    }
}

impl TryFrom<pb::OptionalUser> for Option<User> {
    type Error = Error;
    fn try_from(r: pb::OptionalUser) -> Result<Self> {
        r.user.map(User::try_from).transpose()
    }
}

impl From<UserCredentials> for pb::Credentials {
    fn from(c: UserCredentials) -> Self {
        Self {
            user: Some(c.user.into()),
            password_hash: c.password_hash,
            failed_login_count: c.failed_login_count,
            locked_until: opt_ts(c.locked_until),
            credential_version: c.credential_version,
        }
    }
}

impl TryFrom<pb::Credentials> for UserCredentials {
    type Error = Error;
    fn try_from(c: pb::Credentials) -> Result<Self> {
        let user = c
            .user
            .ok_or_else(|| Error::validation("user", "is required"))?;
        Ok(UserCredentials {
            user: user.try_into()?,
            password_hash: c.password_hash,
            failed_login_count: c.failed_login_count,
            locked_until: from_opt_ts(c.locked_until, "locked_until")?,
            credential_version: c.credential_version,
        })
    }
}

impl From<Option<UserCredentials>> for pb::OptionalCredentials {
    fn from(c: Option<UserCredentials>) -> Self {
        Self {
            credentials: c.map(Into::into),
        }
    }
}

impl TryFrom<pb::OptionalCredentials> for Option<UserCredentials> {
    type Error = Error;
    fn try_from(r: pb::OptionalCredentials) -> Result<Self> {
        r.credentials.map(UserCredentials::try_from).transpose()
    }
}

impl From<NewUser> for pb::NewUser {
    fn from(n: NewUser) -> Self {
        Self {
            id: n.id.to_string(),
            username: n.username,
            email: n.email,
            password_hash: n.password_hash,
            first_name: n.first_name,
            last_name: n.last_name,
            phone: n.phone,
            avatar_url: n.avatar_url,
            role: n.role.as_str().to_owned(),
            status: n.status.as_str().to_owned(),
            is_verified: n.is_verified,
            created_at: Some(ts(n.created_at)),
        }
    }
}

impl TryFrom<pb::NewUser> for NewUser {
    type Error = Error;
    fn try_from(n: pb::NewUser) -> Result<Self> {
        Ok(NewUser {
            id: uuid(&n.id, "id")?,
            username: n.username,
            email: n.email,
            password_hash: n.password_hash,
            first_name: n.first_name,
            last_name: n.last_name,
            phone: n.phone,
            avatar_url: n.avatar_url,
            role: parse(&n.role, "role")?,
            status: parse(&n.status, "status")?,
            is_verified: n.is_verified,
            created_at: from_ts(n.created_at, "created_at")?,
        })
    }
}

fn nullable(v: Option<Option<String>>) -> Option<pb::NullableString> {
    v.map(|value| pb::NullableString { value })
}

fn from_nullable(v: Option<pb::NullableString>) -> Option<Option<String>> {
    v.map(|n| n.value)
}

/// `UserRepository::update(id, update, now)` as a request.
pub fn update_request(id: UserId, update: UserUpdate, now: Timestamp) -> pb::UpdateUserRequest {
    pb::UpdateUserRequest {
        id: id.to_string(),
        now: Some(ts(now)),
        email: update.email,
        first_name: nullable(update.first_name),
        last_name: nullable(update.last_name),
        phone: nullable(update.phone),
        avatar_url: nullable(update.avatar_url),
        role: update.role.map(|r| r.as_str().to_owned()),
        status: update.status.map(|s| s.as_str().to_owned()),
        is_verified: update.is_verified,
        password_hash: update.password_hash,
    }
}

/// The arguments of `UserRepository::update` from a request.
pub fn update_from_wire(r: pb::UpdateUserRequest) -> Result<(UserId, UserUpdate, Timestamp)> {
    let id = uuid(&r.id, "id")?;
    let now = from_ts(r.now, "now")?;
    let update = UserUpdate {
        email: r.email,
        first_name: from_nullable(r.first_name),
        last_name: from_nullable(r.last_name),
        phone: from_nullable(r.phone),
        avatar_url: from_nullable(r.avatar_url),
        role: r.role.as_deref().map(|s| parse(s, "role")).transpose()?,
        status: r
            .status
            .as_deref()
            .map(|s| parse(s, "status"))
            .transpose()?,
        is_verified: r.is_verified,
        password_hash: r.password_hash,
    };
    Ok((id, update, now))
}

// ---------------------------------------------------------------------------------------------
// listing

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
            sort: q.sort.as_str().to_owned(),
            order: q.order.as_str().to_owned(),
            role: q.role.map(|r| r.as_str().to_owned()),
            status: q.status.map(|s| s.as_str().to_owned()),
            search: q.search.clone(),
            created_after: opt_ts(q.created_after),
            created_before: opt_ts(q.created_before),
        }
    }
}

impl TryFrom<pb::UserQuery> for UserQuery {
    type Error = Error;
    fn try_from(q: pb::UserQuery) -> Result<Self> {
        let page = if q.keyset {
            let after = if q.after.is_empty() {
                None
            } else {
                Some(Cursor::decode(&q.after).map_err(|_| Error::bad_cursor())?)
            };
            PageRequest::Keyset { after }
        } else {
            PageRequest::Offset { page: q.page }
        };
        Ok(UserQuery {
            page,
            per_page: q.per_page,
            sort: user_sort(&q.sort)?,
            order: sort_order(&q.order)?,
            role: q.role.as_deref().map(|s| parse(s, "role")).transpose()?,
            status: q
                .status
                .as_deref()
                .map(|s| parse(s, "status"))
                .transpose()?,
            search: q.search,
            created_after: from_opt_ts(q.created_after, "created_after")?,
            created_before: from_opt_ts(q.created_before, "created_before")?,
        })
    }
}

impl From<UserPage> for pb::UserPage {
    fn from(p: UserPage) -> Self {
        let items = p.items.into_iter().map(Into::into).collect();
        match p.pagination {
            PageInfo::Offset {
                page,
                per_page,
                total,
                pages,
            } => Self {
                items,
                keyset: false,
                page,
                per_page,
                total,
                pages,
                next_cursor: None,
            },
            PageInfo::Keyset {
                per_page,
                next_cursor,
            } => Self {
                items,
                keyset: true,
                page: 0,
                per_page,
                total: 0,
                pages: 0,
                next_cursor,
            },
        }
    }
}

impl TryFrom<pb::UserPage> for UserPage {
    type Error = Error;
    fn try_from(p: pb::UserPage) -> Result<Self> {
        let items = p
            .items
            .into_iter()
            .map(User::try_from)
            .collect::<Result<Vec<_>>>()?;
        let pagination = if p.keyset {
            PageInfo::Keyset {
                per_page: p.per_page,
                next_cursor: p.next_cursor,
            }
        } else {
            PageInfo::Offset {
                page: p.page,
                per_page: p.per_page,
                total: p.total,
                pages: p.pages,
            }
        };
        Ok(UserPage { items, pagination })
    }
}

// ---------------------------------------------------------------------------------------------
// lockout

/// `UserRepository::reserve_login_attempt(id, now, policy)` as a request.
pub fn login_attempt_request(
    id: UserId,
    now: Timestamp,
    policy: LockoutPolicy,
) -> pb::ReserveLoginAttemptRequest {
    pb::ReserveLoginAttemptRequest {
        id: id.to_string(),
        now: Some(ts(now)),
        max_failures: policy.max_failures,
        base_lock_ms: duration_ms(policy.base_lock),
        max_lock_ms: duration_ms(policy.max_lock),
    }
}

/// The arguments of `UserRepository::reserve_login_attempt` from a request.
pub fn login_attempt_from_wire(
    r: pb::ReserveLoginAttemptRequest,
) -> Result<(UserId, Timestamp, LockoutPolicy)> {
    let policy = LockoutPolicy {
        max_failures: r.max_failures,
        base_lock: Duration::from_millis(r.base_lock_ms),
        max_lock: Duration::from_millis(r.max_lock_ms),
    };
    Ok((uuid(&r.id, "id")?, from_ts(r.now, "now")?, policy))
}

impl From<LoginAttempt> for pb::LoginAttemptResponse {
    fn from(f: LoginAttempt) -> Self {
        match f {
            LoginAttempt::Reserved {
                attempt,
                locked_until,
            } => Self {
                outcome: Outcome::Reserved.into(),
                attempt,
                locked_until: opt_ts(locked_until),
            },
            LoginAttempt::Locked { locked_until } => Self {
                outcome: Outcome::Locked.into(),
                attempt: 0,
                locked_until: Some(ts(locked_until)),
            },
            LoginAttempt::UnknownUser => Self {
                outcome: Outcome::UnknownUser.into(),
                attempt: 0,
                locked_until: None,
            },
        }
    }
}

impl TryFrom<pb::LoginAttemptResponse> for LoginAttempt {
    type Error = Error;
    fn try_from(r: pb::LoginAttemptResponse) -> Result<Self> {
        match Outcome::try_from(r.outcome) {
            Ok(Outcome::Reserved) => Ok(LoginAttempt::Reserved {
                attempt: r.attempt,
                locked_until: from_opt_ts(r.locked_until, "locked_until")?,
            }),
            Ok(Outcome::Locked) => Ok(LoginAttempt::Locked {
                locked_until: from_ts(r.locked_until, "locked_until")?,
            }),
            Ok(Outcome::UnknownUser) => Ok(LoginAttempt::UnknownUser),
            Ok(Outcome::Unspecified) | Err(_) => {
                Err(Error::validation("outcome", "is not a known outcome"))
            }
        }
    }
}

/// `UserRepository::record_login_success(id, now, attempt, rehash)` as a request.
pub fn login_success_request(
    id: UserId,
    now: Timestamp,
    attempt: u32,
    rehash: Option<Rehash>,
) -> pb::RecordLoginSuccessRequest {
    let (verified_hash, rehash) = match rehash {
        Some(r) => (Some(r.verified_hash), Some(r.new_hash)),
        None => (None, None),
    };
    pb::RecordLoginSuccessRequest {
        id: id.to_string(),
        now: Some(ts(now)),
        rehash,
        verified_hash,
        attempt,
    }
}

/// The arguments of `UserRepository::record_login_success` from a request. A new hash without
/// the verified one cannot be compared-and-set, so it is dropped.
pub fn login_success_from_wire(
    r: pb::RecordLoginSuccessRequest,
) -> Result<(UserId, Timestamp, u32, Option<Rehash>)> {
    let rehash = match (r.verified_hash, r.rehash) {
        (Some(verified_hash), Some(new_hash)) => Some(Rehash {
            verified_hash,
            new_hash,
        }),
        _ => None,
    };
    Ok((
        uuid(&r.id, "id")?,
        from_ts(r.now, "now")?,
        r.attempt,
        rehash,
    ))
}

impl From<PasswordChange> for pb::ChangePasswordRequest {
    fn from(c: PasswordChange) -> Self {
        Self {
            user_id: c.user_id.to_string(),
            new_hash: c.new_hash,
            verified_hash: c.verified_hash,
            attempt: c.attempt,
            keep_session: c.keep_session.map(|k| k.to_string()),
            now: Some(ts(c.now)),
        }
    }
}

impl TryFrom<pb::ChangePasswordRequest> for PasswordChange {
    type Error = Error;
    fn try_from(r: pb::ChangePasswordRequest) -> Result<Self> {
        Ok(PasswordChange {
            user_id: uuid(&r.user_id, "user_id")?,
            new_hash: r.new_hash,
            verified_hash: r.verified_hash,
            attempt: r.attempt,
            keep_session: opt_uuid(r.keep_session.as_deref(), "keep_session")?,
            now: from_ts(r.now, "now")?,
        })
    }
}

impl From<Option<u64>> for pb::ChangePasswordResponse {
    fn from(r: Option<u64>) -> Self {
        Self {
            found: r.is_some(),
            revoked: r.unwrap_or(0),
        }
    }
}

impl From<pb::ChangePasswordResponse> for Option<u64> {
    fn from(r: pb::ChangePasswordResponse) -> Self {
        r.found.then_some(r.revoked)
    }
}

// ---------------------------------------------------------------------------------------------
// ids and clocks

pub fn id_request(id: uuid::Uuid) -> pb::IdRequest {
    pb::IdRequest { id: id.to_string() }
}

pub fn id_from_wire(r: &pb::IdRequest) -> Result<uuid::Uuid> {
    uuid(&r.id, "id")
}

pub fn at_request(id: uuid::Uuid, now: Timestamp) -> pb::AtRequest {
    pb::AtRequest {
        id: id.to_string(),
        now: Some(ts(now)),
    }
}

pub fn at_from_wire(r: pb::AtRequest) -> Result<(uuid::Uuid, Timestamp)> {
    Ok((uuid(&r.id, "id")?, from_ts(r.now, "now")?))
}

// ---------------------------------------------------------------------------------------------
// sessions

impl From<Session> for pb::SessionRecord {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            user_id: s.user_id.to_string(),
            refresh_token_hash: s.refresh_token_hash,
            generation: s.generation,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: Some(ts(s.created_at)),
            last_used_at: Some(ts(s.last_used_at)),
            expires_at: Some(ts(s.expires_at)),
            revoked_at: opt_ts(s.revoked_at),
            revoked_reason: s.revoked_reason,
            credential_version: s.credential_version,
            previous_refresh_hash: s.previous_refresh_hash,
            rotated_at: opt_ts(s.rotated_at),
        }
    }
}

impl TryFrom<pb::SessionRecord> for Session {
    type Error = Error;
    fn try_from(s: pb::SessionRecord) -> Result<Self> {
        Ok(Session {
            id: uuid(&s.id, "id")?,
            user_id: uuid(&s.user_id, "user_id")?,
            refresh_token_hash: s.refresh_token_hash,
            generation: s.generation,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: from_ts(s.created_at, "created_at")?,
            last_used_at: from_ts(s.last_used_at, "last_used_at")?,
            expires_at: from_ts(s.expires_at, "expires_at")?,
            revoked_at: from_opt_ts(s.revoked_at, "revoked_at")?,
            revoked_reason: s.revoked_reason,
            credential_version: s.credential_version,
            previous_refresh_hash: s.previous_refresh_hash,
            rotated_at: from_opt_ts(s.rotated_at, "rotated_at")?,
        })
    }
}

impl From<Option<Session>> for pb::OptionalSession {
    fn from(s: Option<Session>) -> Self {
        Self {
            session: s.map(Into::into),
        }
    }
}

impl TryFrom<pb::OptionalSession> for Option<Session> {
    type Error = Error;
    fn try_from(r: pb::OptionalSession) -> Result<Self> {
        r.session.map(Session::try_from).transpose()
    }
}

impl From<Option<SessionOwner>> for pb::OptionalSessionOwner {
    fn from(o: Option<SessionOwner>) -> Self {
        match o {
            Some(o) => Self {
                session: Some(o.session.into()),
                user: Some(o.user.into()),
                credential_version: o.credential_version,
            },
            None => Self::default(),
        }
    }
}

impl TryFrom<pb::OptionalSessionOwner> for Option<SessionOwner> {
    type Error = Error;
    fn try_from(r: pb::OptionalSessionOwner) -> Result<Self> {
        match (r.session, r.user) {
            (Some(session), Some(user)) => Ok(Some(SessionOwner {
                session: session.try_into()?,
                user: user.try_into()?,
                credential_version: r.credential_version,
            })),
            (None, None) => Ok(None),
            _ => Err(Error::validation("user", "must come with the session")),
        }
    }
}

impl From<Vec<Session>> for pb::SessionList {
    fn from(v: Vec<Session>) -> Self {
        Self {
            sessions: v.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::SessionList> for Vec<Session> {
    type Error = Error;
    fn try_from(r: pb::SessionList) -> Result<Self> {
        r.sessions.into_iter().map(Session::try_from).collect()
    }
}

impl From<NewSession> for pb::NewSession {
    fn from(n: NewSession) -> Self {
        Self {
            id: n.id.to_string(),
            user_id: n.user_id.to_string(),
            refresh_token_hash: n.refresh_token_hash,
            user_agent: n.user_agent,
            ip: n.ip,
            created_at: Some(ts(n.created_at)),
            expires_at: Some(ts(n.expires_at)),
            credential_version: n.credential_version,
        }
    }
}

impl TryFrom<pb::NewSession> for NewSession {
    type Error = Error;
    fn try_from(n: pb::NewSession) -> Result<Self> {
        Ok(NewSession {
            id: uuid(&n.id, "id")?,
            user_id: uuid(&n.user_id, "user_id")?,
            refresh_token_hash: n.refresh_token_hash,
            user_agent: n.user_agent,
            ip: n.ip,
            created_at: from_ts(n.created_at, "created_at")?,
            expires_at: from_ts(n.expires_at, "expires_at")?,
            credential_version: n.credential_version,
        })
    }
}

/// A revoke reason from the wire; unknown text is a validation error on `reason`.
pub fn revoke_reason(s: &str) -> Result<RevokeReason> {
    parse(s, "reason")
}

/// `SessionRepository::rotate(id, expected_hash, new_hash, now)` as a request.
pub fn rotate_request(
    id: SessionId,
    expected_hash: &str,
    new_hash: &str,
    now: Timestamp,
) -> pb::RotateSessionRequest {
    pb::RotateSessionRequest {
        id: id.to_string(),
        expected_hash: expected_hash.to_owned(),
        new_hash: new_hash.to_owned(),
        now: Some(ts(now)),
    }
}

/// The arguments of `SessionRepository::rotate` from a request: id, expected hash, new hash, now.
pub fn rotate_from_wire(
    r: pb::RotateSessionRequest,
) -> Result<(SessionId, String, String, Timestamp)> {
    Ok((
        uuid(&r.id, "id")?,
        r.expected_hash,
        r.new_hash,
        from_ts(r.now, "now")?,
    ))
}

/// `SessionRepository::revoke(id, reason, now)` as a request.
pub fn revoke_request(
    id: SessionId,
    reason: RevokeReason,
    now: Timestamp,
) -> pb::RevokeSessionRequest {
    pb::RevokeSessionRequest {
        id: id.to_string(),
        reason: reason.as_str().to_owned(),
        now: Some(ts(now)),
    }
}

/// The arguments of `SessionRepository::revoke` from a request.
pub fn revoke_from_wire(
    r: pb::RevokeSessionRequest,
) -> Result<(SessionId, RevokeReason, Timestamp)> {
    Ok((
        uuid(&r.id, "id")?,
        revoke_reason(&r.reason)?,
        from_ts(r.now, "now")?,
    ))
}

/// `SessionRepository::revoke_all_for_user(user_id, reason, now, keep)` as a request.
pub fn revoke_all_request(
    user_id: UserId,
    reason: RevokeReason,
    now: Timestamp,
    keep: Option<SessionId>,
) -> pb::RevokeAllSessionsRequest {
    pb::RevokeAllSessionsRequest {
        user_id: user_id.to_string(),
        reason: reason.as_str().to_owned(),
        now: Some(ts(now)),
        keep: keep.map(|k| k.to_string()),
    }
}

/// The arguments of `SessionRepository::revoke_all_for_user` from a request.
pub fn revoke_all_from_wire(
    r: pb::RevokeAllSessionsRequest,
) -> Result<(UserId, RevokeReason, Timestamp, Option<SessionId>)> {
    Ok((
        uuid(&r.user_id, "user_id")?,
        revoke_reason(&r.reason)?,
        from_ts(r.now, "now")?,
        opt_uuid(r.keep.as_deref(), "keep")?,
    ))
}

// ---------------------------------------------------------------------------------------------
// audit

impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: Some(ts(e.at)),
            actor_id: e.actor_id.map(|id| id.to_string()),
            subject_id: e.subject_id.map(|id| id.to_string()),
            action: e.action,
            outcome: e.outcome,
            ip: e.ip,
            request_id: e.request_id,
            details: e.details,
        }
    }
}

impl TryFrom<pb::AuditEvent> for AuditEvent {
    type Error = Error;
    fn try_from(e: pb::AuditEvent) -> Result<Self> {
        Ok(AuditEvent {
            id: uuid(&e.id, "id")?,
            at: from_ts(e.at, "at")?,
            actor_id: opt_uuid(e.actor_id.as_deref(), "actor_id")?,
            subject_id: opt_uuid(e.subject_id.as_deref(), "subject_id")?,
            action: e.action,
            outcome: e.outcome,
            ip: e.ip,
            request_id: e.request_id,
            details: e.details,
        })
    }
}

impl From<Vec<AuditEvent>> for pb::AuditList {
    fn from(v: Vec<AuditEvent>) -> Self {
        Self {
            events: v.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::AuditList> for Vec<AuditEvent> {
    type Error = Error;
    fn try_from(r: pb::AuditList) -> Result<Self> {
        r.events.into_iter().map(AuditEvent::try_from).collect()
    }
}

/// `AuditRepository::list_for_subject(subject_id, limit)` as a request.
pub fn list_audit_request(subject_id: UserId, limit: u32) -> pb::ListAuditRequest {
    pb::ListAuditRequest {
        subject_id: subject_id.to_string(),
        limit,
    }
}

/// The arguments of `AuditRepository::list_for_subject` from a request.
pub fn list_audit_from_wire(r: &pb::ListAuditRequest) -> Result<(UserId, u32)> {
    Ok((uuid(&r.subject_id, "subject_id")?, r.limit))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use domain::{CursorValue, Role, Status};
    use uuid::Uuid;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000 + secs, 123_456_000)
            .single()
            .unwrap()
    }

    fn user() -> User {
        User {
            id: Uuid::new_v4(),
            username: "Alice".into(),
            email: "alice@example.com".into(),
            first_name: Some("Alice".into()),
            last_name: None,
            phone: Some("+1 555".into()),
            avatar_url: None,
            role: Role::Admin,
            status: Status::Suspended,
            is_verified: true,
            created_at: t(0),
            updated_at: t(5),
            last_login_at: Some(t(9)),
        }
    }

    fn fields(r: Result<impl std::fmt::Debug>) -> Vec<String> {
        match r {
            Err(Error::Validation(f)) => f.0.keys().cloned().collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn users_and_credentials_round_trip() {
        let u = user();
        assert_eq!(User::try_from(pb::UserRecord::from(u.clone())).unwrap(), u);
        let mut never = u.clone();
        never.last_login_at = None;
        assert_eq!(
            User::try_from(pb::UserRecord::from(never.clone())).unwrap(),
            never
        );
        let found: Option<User> = pb::OptionalUser::from(Some(u.clone())).try_into().unwrap();
        assert_eq!(found, Some(u.clone()));
        let none: Option<User> = pb::OptionalUser::from(None).try_into().unwrap();
        assert_eq!(none, None);

        let c = UserCredentials {
            user: u.clone(),
            password_hash: "pbkdf2:sha256:1$s$h".into(),
            failed_login_count: 3,
            locked_until: Some(t(60)),
            credential_version: 7,
        };
        let back: Option<UserCredentials> = pb::OptionalCredentials::from(Some(c.clone()))
            .try_into()
            .unwrap();
        assert_eq!(back, Some(c));
        assert_eq!(
            fields(UserCredentials::try_from(pb::Credentials::default())),
            ["user"]
        );

        let n = NewUser {
            id: Uuid::new_v4(),
            username: "bob".into(),
            email: "bob@example.com".into(),
            password_hash: "h".into(),
            first_name: None,
            last_name: Some("B".into()),
            phone: None,
            avatar_url: Some("https://x/y.png".into()),
            role: Role::Guest,
            status: Status::Inactive,
            is_verified: false,
            created_at: t(1),
        };
        assert_eq!(NewUser::try_from(pb::NewUser::from(n.clone())).unwrap(), n);
    }

    #[test]
    fn bad_user_fields_are_validation_errors() {
        let mut r = pb::UserRecord::from(user());
        r.id = "nope".into();
        r.role = "root".into();
        assert_eq!(fields(User::try_from(r.clone())), ["id"]);
        r.id = Uuid::nil().to_string();
        assert_eq!(fields(User::try_from(r.clone())), ["role"]);
        r.role = "user".into();
        r.created_at = None;
        assert_eq!(fields(User::try_from(r.clone())), ["created_at"]);
        r.created_at = Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert_eq!(fields(User::try_from(r)), ["created_at"]);
        assert_eq!(fields(User::try_from(pb::UserRecord::default())), ["id"]);
    }

    #[test]
    fn updates_keep_leave_alone_versus_clear() {
        let id = Uuid::new_v4();
        let update = UserUpdate {
            email: Some("e@x.org".into()),
            first_name: Some(None),
            last_name: Some(Some("L".into())),
            phone: None,
            avatar_url: Some(None),
            role: Some(Role::User),
            status: Some(Status::Deleted),
            is_verified: Some(false),
            password_hash: Some("h".into()),
        };
        let (i, u, now) = update_from_wire(update_request(id, update.clone(), t(3))).unwrap();
        assert_eq!((i, u, now), (id, update, t(3)));
        let (_, empty, _) =
            update_from_wire(update_request(id, UserUpdate::default(), t(3))).unwrap();
        assert!(empty.is_empty());
        let mut r = update_request(id, UserUpdate::default(), t(3));
        r.status = Some("gone".into());
        assert_eq!(fields(update_from_wire(r)), ["status"]);
        let mut r = update_request(id, UserUpdate::default(), t(3));
        r.now = None;
        assert_eq!(fields(update_from_wire(r)), ["now"]);
    }

    #[test]
    fn queries_and_pages_round_trip() {
        let cursor = Cursor {
            sort: UserSort::Email,
            order: SortOrder::Asc,
            value: CursorValue::Text("a@b.c".into()),
            id: Uuid::new_v4(),
        };
        for page in [
            PageRequest::Offset { page: 3 },
            PageRequest::Keyset { after: None },
            PageRequest::Keyset {
                after: Some(cursor.clone()),
            },
        ] {
            let q = UserQuery {
                page,
                per_page: 7,
                sort: UserSort::Email,
                order: SortOrder::Asc,
                role: Some(Role::Guest),
                status: Some(Status::Deleted),
                search: Some("smith".into()),
                created_after: Some(t(1)),
                created_before: Some(t(2)),
            };
            assert_eq!(UserQuery::try_from(pb::UserQuery::from(&q)).unwrap(), q);
        }
        let d = UserQuery::default();
        assert_eq!(UserQuery::try_from(pb::UserQuery::from(&d)).unwrap(), d);

        let mut bad = pb::UserQuery::from(&d);
        bad.keyset = true;
        bad.after = "not a cursor".into();
        assert_eq!(fields(UserQuery::try_from(bad)), ["cursor"]);
        let mut bad = pb::UserQuery::from(&d);
        bad.sort = "password".into();
        assert_eq!(fields(UserQuery::try_from(bad)), ["sort"]);
        let mut bad = pb::UserQuery::from(&d);
        bad.order = "up".into();
        assert_eq!(fields(UserQuery::try_from(bad)), ["order"]);

        for pagination in [
            PageInfo::offset(2, 5, 12),
            PageInfo::Keyset {
                per_page: 5,
                next_cursor: Some(cursor.encode()),
            },
            PageInfo::Keyset {
                per_page: 5,
                next_cursor: None,
            },
        ] {
            let p = UserPage {
                items: vec![user(), user()],
                pagination,
            };
            assert_eq!(
                UserPage::try_from(pb::UserPage::from(p.clone())).unwrap(),
                p
            );
        }
    }

    #[test]
    fn lockout_round_trips() {
        let id = Uuid::new_v4();
        let policy = LockoutPolicy::default();
        assert_eq!(
            login_attempt_from_wire(login_attempt_request(id, t(0), policy)).unwrap(),
            (id, t(0), policy)
        );
        for f in [
            LoginAttempt::Reserved {
                attempt: 2,
                locked_until: None,
            },
            LoginAttempt::Reserved {
                attempt: 5,
                locked_until: Some(t(30)),
            },
            LoginAttempt::Locked {
                locked_until: t(30),
            },
            LoginAttempt::UnknownUser,
        ] {
            assert_eq!(
                LoginAttempt::try_from(pb::LoginAttemptResponse::from(f)).unwrap(),
                f
            );
        }
        assert_eq!(
            fields(LoginAttempt::try_from(pb::LoginAttemptResponse::default())),
            ["outcome"]
        );
        let odd = pb::LoginAttemptResponse {
            outcome: 42,
            ..Default::default()
        };
        assert_eq!(fields(LoginAttempt::try_from(odd)), ["outcome"]);
        let locked_without_time = pb::LoginAttemptResponse {
            outcome: Outcome::Locked.into(),
            ..Default::default()
        };
        assert_eq!(
            fields(LoginAttempt::try_from(locked_without_time)),
            ["locked_until"]
        );
        let rehash = Rehash {
            verified_hash: "old".into(),
            new_hash: "new".into(),
        };
        assert_eq!(
            login_success_from_wire(login_success_request(id, t(1), 3, Some(rehash.clone())))
                .unwrap(),
            (id, t(1), 3, Some(rehash))
        );
        // A new hash without the verified one cannot be compared-and-set: dropped.
        let blind = pb::RecordLoginSuccessRequest {
            verified_hash: None,
            ..login_success_request(id, t(1), 3, None)
        };
        let blind = pb::RecordLoginSuccessRequest {
            rehash: Some("new".into()),
            ..blind
        };
        assert_eq!(login_success_from_wire(blind).unwrap().3, None);
        let change = PasswordChange {
            user_id: id,
            new_hash: "new".into(),
            verified_hash: Some("old".into()),
            attempt: Some(2),
            keep_session: Some(Uuid::new_v4()),
            now: t(5),
        };
        assert_eq!(
            PasswordChange::try_from(pb::ChangePasswordRequest::from(change.clone())).unwrap(),
            change
        );
        for r in [None, Some(0), Some(3)] {
            assert_eq!(Option::<u64>::from(pb::ChangePasswordResponse::from(r)), r);
        }
    }

    #[test]
    fn sessions_round_trip() {
        let s = Session {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            refresh_token_hash: "ab".repeat(32),
            previous_refresh_hash: Some("cd".repeat(32)),
            rotated_at: Some(t(40)),
            generation: 4,
            credential_version: 2,
            user_agent: Some("ua".into()),
            ip: None,
            created_at: t(0),
            last_used_at: t(1),
            expires_at: t(100),
            revoked_at: Some(t(50)),
            revoked_reason: Some("logout".into()),
        };
        let one: Option<Session> = pb::OptionalSession::from(Some(s.clone()))
            .try_into()
            .unwrap();
        assert_eq!(one, Some(s.clone()));
        let list: Vec<Session> = pb::SessionList::from(vec![s.clone(), s.clone()])
            .try_into()
            .unwrap();
        assert_eq!(list, vec![s.clone(), s.clone()]);
        let n = NewSession {
            credential_version: 3,
            id: s.id,
            user_id: s.user_id,
            refresh_token_hash: s.refresh_token_hash.clone(),
            user_agent: None,
            ip: Some("::1".into()),
            created_at: t(0),
            expires_at: t(10),
        };
        assert_eq!(
            NewSession::try_from(pb::NewSession::from(n.clone())).unwrap(),
            n
        );

        let (id, user) = (s.id, s.user_id);
        assert_eq!(
            rotate_from_wire(rotate_request(id, "a", "b", t(2))).unwrap(),
            (id, "a".into(), "b".into(), t(2))
        );
        for reason in [
            RevokeReason::Logout,
            RevokeReason::LogoutAll,
            RevokeReason::RevokedByUser,
            RevokeReason::RefreshReuse,
            RevokeReason::PasswordChanged,
            RevokeReason::RoleChanged,
            RevokeReason::StatusChanged,
            RevokeReason::UserDeleted,
        ] {
            assert_eq!(
                revoke_from_wire(revoke_request(id, reason, t(3))).unwrap(),
                (id, reason, t(3))
            );
            assert_eq!(
                revoke_all_from_wire(revoke_all_request(user, reason, t(4), Some(id))).unwrap(),
                (user, reason, t(4), Some(id))
            );
        }
        let mut r = revoke_request(id, RevokeReason::Logout, t(3));
        r.reason = "bored".into();
        assert_eq!(fields(revoke_from_wire(r)), ["reason"]);
        let mut r = revoke_all_request(user, RevokeReason::Logout, t(3), None);
        r.keep = Some("x".into());
        assert_eq!(fields(revoke_all_from_wire(r)), ["keep"]);
        assert_eq!(at_from_wire(at_request(id, t(7))).unwrap(), (id, t(7)));
        assert_eq!(id_from_wire(&id_request(id)).unwrap(), id);
    }

    #[test]
    fn audit_events_round_trip() {
        let e = AuditEvent {
            id: Uuid::now_v7(),
            at: t(0),
            actor_id: Some(Uuid::new_v4()),
            subject_id: None,
            action: "auth.login".into(),
            outcome: "success".into(),
            ip: Some("::1".into()),
            request_id: Some("req-1".into()),
            details: Some(r#"{"k":"v"}"#.into()),
        };
        let list: Vec<AuditEvent> = pb::AuditList::from(vec![e.clone()]).try_into().unwrap();
        assert_eq!(list, vec![e.clone()]);
        let mut bad = pb::AuditEvent::from(e);
        bad.actor_id = Some("me".into());
        assert_eq!(fields(AuditEvent::try_from(bad)), ["actor_id"]);
        let s = Uuid::new_v4();
        assert_eq!(
            list_audit_from_wire(&list_audit_request(s, 10)).unwrap(),
            (s, 10)
        );
    }

    #[test]
    fn malformed_responses_are_internal() {
        let e = malformed_response(Error::validation("created_at", "is required"));
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        assert!(matches!(
            malformed_response(Error::NotFound),
            Error::NotFound
        ));
    }
}
