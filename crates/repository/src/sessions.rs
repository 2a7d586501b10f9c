//! `SessionRepository` on [`Database`].
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    NewSession, Result, RevokeReason, Session, SessionId, SessionRepository, Timestamp, UserId,
};

use crate::database::Database;
use crate::models::{SessionRow, micros};
use crate::schema::sessions;

#[async_trait]
impl SessionRepository for Database {
    /// `Error::NotFound` when the user does not exist.
    async fn create(&self, session: NewSession) -> Result<Session> {
        let row = SessionRow::from_new(session);
        self.run(move |conn| {
            diesel::insert_into(sessions::table)
                .values(&row)
                .execute(conn)?;
            row.into_session()
        })
        .await
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>> {
        self.run(move |conn| {
            sessions::table
                .find(id.to_string())
                .select(SessionRow::as_select())
                .first(conn)
                .optional()?
                .map(SessionRow::into_session)
                .transpose()
        })
        .await
    }

    async fn rotate(
        &self,
        id: SessionId,
        expected_hash: &str,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (id, expected, new) = (
            id.to_string(),
            expected_hash.to_owned(),
            new_hash.to_owned(),
        );
        self.run(move |conn| {
            // One statement: the WHERE clause is the compare, the SET the swap.
            let n = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(&id))
                    .filter(sessions::refresh_token_hash.eq(&expected))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set((
                sessions::refresh_token_hash.eq(&new),
                sessions::generation.eq(sessions::generation + 1),
                sessions::last_used_at.eq(micros(now)),
            ))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke(&self, id: SessionId, reason: RevokeReason, now: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn| {
            let n = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(&id))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set((
                sessions::revoked_at.eq(Some(micros(now))),
                sessions::revoked_reason.eq(Some(reason.as_str())),
            ))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke_all_for_user(
        &self,
        user_id: UserId,
        reason: RevokeReason,
        now: Timestamp,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let user_id = user_id.to_string();
        let keep = keep.map(|k| k.to_string());
        self.run(move |conn| {
            let live = sessions::table
                .filter(sessions::user_id.eq(&user_id))
                .filter(sessions::revoked_at.is_null());
            let set = (
                sessions::revoked_at.eq(Some(micros(now))),
                sessions::revoked_reason.eq(Some(reason.as_str())),
            );
            let n = match &keep {
                Some(keep) => diesel::update(live.filter(sessions::id.ne(keep)))
                    .set(set)
                    .execute(conn)?,
                None => diesel::update(live).set(set).execute(conn)?,
            };
            Ok(n as u64)
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
                .select(SessionRow::as_select())
                .load(conn)?
                .into_iter()
                .map(SessionRow::into_session)
                .collect()
        })
        .await
    }
}
