//! `SessionRepository` on [`Database`].
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    Error, MAX_LISTED_SESSIONS, NewSession, Result, RevokeReason, Rotation, Session, SessionEnd,
    SessionId, SessionOwner, SessionRepository, Timestamp, UserId, UserRevocation,
    audit_with_revoked,
};

use crate::audit::insert_events;

use crate::connection::AnyConnection;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{SessionRow, UserRow, micros};
use crate::schema::{access_tokens, sessions, users};

#[async_trait]
impl SessionRepository for Database {
    async fn create(&self, session: NewSession) -> Result<Session> {
        let cap = session.max_live;
        let row = SessionRow::from_new(session);
        self.run(move |conn| {
            write_transaction(conn, |conn| insert_session(conn, &row, cap))?;
            row.into_session()
        })
        .await
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>> {
        self.run(move |conn| {
            sessions::table
                .find(id.to_string())
                .select(SessionRow::as_select())
                .get_result(conn)
                .optional()?
                .map(SessionRow::into_session)
                .transpose()
        })
        .await
    }

    async fn find_with_owner(&self, id: SessionId) -> Result<Option<SessionOwner>> {
        let id = id.to_string();
        self.run(move |conn| with_owner(conn, &id)).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<Option<SessionOwner>> {
        let Rotation {
            id,
            expected_hash: expected,
            new_hash: new,
            now,
        } = rotation;
        let id = id.to_string();
        // One blocking job: read the session with its owner, decide, swap. No transaction
        // around the two: the UPDATE is the compare-and-swap (a concurrent rotation or
        // revocation makes it change nothing), and on SQLite the read stays outside the single
        // writer's lock.
        self.run(move |conn| {
            let Some(mut owner) = with_owner(conn, &id)? else {
                return Ok(None);
            };
            // Compares hashes of tokens, not secrets an attacker can approach byte by byte.
            if !owner.is_live(now) || owner.session.refresh_token_hash != expected {
                return Ok(None);
            }
            let n = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(&id))
                    .filter(sessions::refresh_token_hash.eq(&expected))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set((
                sessions::refresh_token_hash.eq(&new),
                sessions::previous_refresh_hash.eq(Some(&expected)),
                sessions::rotated_at.eq(Some(micros(now))),
                sessions::generation.eq(sessions::generation + 1),
                sessions::last_used_at.eq(micros(now)),
            ))
            .execute(conn)?;
            if n != 1 {
                return Ok(None);
            }
            let s = &mut owner.session;
            s.previous_refresh_hash = Some(std::mem::replace(&mut s.refresh_token_hash, new));
            s.rotated_at = Some(now);
            s.generation += 1;
            s.last_used_at = now;
            Ok(Some(owner))
        })
        .await
    }

    async fn end_session(&self, end: SessionEnd) -> Result<bool> {
        let id = end.id.to_string();
        let now = micros(end.now);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let q = sessions::table.find(&id).select((
                    sessions::user_id,
                    sessions::revoked_at,
                    sessions::expires_at,
                ));
                let found: Option<(String, Option<i64>, i64)> = match conn {
                    AnyConnection::Sqlite(c) => q.get_result(c).optional()?,
                    AnyConnection::Postgres(c) => q.for_update().get_result(c).optional()?,
                    #[cfg(feature = "mysql")]
                    AnyConnection::Mysql(c) => q.for_update().get_result(c).optional()?,
                };
                let Some((owner, revoked_at, expires_at)) = found else {
                    return Ok(false);
                };
                let owned = end.user_id.is_none_or(|u| u.to_string() == owner);
                let live = revoked_at.is_none() && expires_at > now;
                if !owned || (end.live_only && !live) {
                    return Ok(false);
                }
                if revoked_at.is_none() {
                    diesel::update(sessions::table.find(&id))
                        .set((
                            sessions::revoked_at.eq(Some(now)),
                            sessions::revoked_reason.eq(Some(end.reason.as_str())),
                        ))
                        .execute(conn)?;
                }
                insert_events(conn, &end.audit)?;
                Ok(true)
            })
        })
        .await
    }

    async fn revoke_all_for_user(&self, r: UserRevocation) -> Result<u64> {
        let user_id = r.user_id.to_string();
        let keep = r.keep.map(|k| k.to_string());
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = revoke_sessions(conn, &user_id, r.reason, micros(r.now), keep.as_deref())?;
                insert_events(conn, &audit_with_revoked(&r.audit, n))?;
                Ok(n)
            })
        })
        .await
    }

    async fn list_live_for_user(&self, user_id: UserId, now: Timestamp) -> Result<Vec<Session>> {
        let user_id = user_id.to_string();
        self.run(move |conn| {
            sessions::table
                .filter(sessions::user_id.eq(&user_id))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(micros(now)))
                .order_by((sessions::created_at.desc(), sessions::id.desc()))
                .limit(i64::from(MAX_LISTED_SESSIONS))
                .select(SessionRow::as_select())
                .load(conn)?
                .into_iter()
                .map(SessionRow::into_session)
                .collect()
        })
        .await
    }
}

/// Insert the session `row` in the caller's transaction, after checking (and locking) its
/// owner's credential version; then at most `cap` (0: no cap) of the owner's newest live
/// sessions stay.
pub(crate) fn insert_session(
    conn: &mut AnyConnection,
    row: &SessionRow,
    cap: u32,
) -> Result<(), DbError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    // The user's row stays locked until the insert commits, so a password change either comes
    // first (and this refuses) or revokes this session after it.
    let q = users::table
        .find(&row.user_id)
        .select(users::credential_version);
    let version: Option<i32> = match conn {
        AnyConnection::Sqlite(c) => q.get_result(c).optional()?,
        AnyConnection::Postgres(c) => q.for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q.for_update().get_result(c).optional()?,
    };
    match version {
        None => return Err(Error::NotFound.into()),
        Some(v) if v != row.credential_version => {
            return Err(Error::InvalidCredentials.into());
        }
        Some(_) => {}
    }
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)?;
    if cap > 0 {
        // Under the user's row lock: the newest `cap` live sessions stay.
        let live: Vec<String> = sessions::table
            .filter(sessions::user_id.eq(&row.user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(row.created_at))
            .order_by((sessions::created_at.desc(), sessions::id.desc()))
            .select(sessions::id)
            .load(conn)?;
        let over: Vec<&String> = live.iter().skip(cap).collect();
        if !over.is_empty() {
            diesel::update(sessions::table.filter(sessions::id.eq_any(over)))
                .set((
                    sessions::revoked_at.eq(Some(row.created_at)),
                    sessions::revoked_reason.eq(Some(RevokeReason::SessionLimit.as_str())),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Revoke every unrevoked session of `user_id` but `keep` for `reason`, in the caller's
/// transaction; how many.
pub(crate) fn revoke_sessions(
    conn: &mut AnyConnection,
    user_id: &str,
    reason: RevokeReason,
    now: i64,
    keep: Option<&str>,
) -> Result<u64, DbError> {
    let live = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null());
    let set = (
        sessions::revoked_at.eq(Some(now)),
        sessions::revoked_reason.eq(Some(reason.as_str())),
    );
    let n = match keep {
        Some(keep) => diesel::update(live.filter(sessions::id.ne(keep)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(live).set(set).execute(conn)?,
    };
    if reason.ends_access_tokens() {
        diesel::update(
            access_tokens::table
                .filter(access_tokens::user_id.eq(user_id))
                .filter(access_tokens::revoked_at.is_null()),
        )
        .set(access_tokens::revoked_at.eq(Some(now)))
        .execute(conn)?;
    }
    Ok(n as u64)
}

/// The session `id` and its owner as they stand, in one read.
fn with_owner(conn: &mut AnyConnection, id: &str) -> Result<Option<SessionOwner>, DbError> {
    let row: Option<(SessionRow, UserRow)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id))
        .select((SessionRow::as_select(), UserRow::as_select()))
        .get_result(conn)
        .optional()?;
    let Some((session, user)) = row else {
        return Ok(None);
    };
    let credential_version = u32::try_from(user.credential_version).unwrap_or(0);
    Ok(Some(SessionOwner {
        session: session.into_session()?,
        user: user.into_user()?,
        credential_version,
    }))
}
