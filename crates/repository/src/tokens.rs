//! `AccessTokenRepository` on [`Database`]: personal access tokens, by the SHA-256 of the token.
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    AccessTokenOwner, AccessTokenRepository, AuditEvent, ConflictKind, Error, MAX_LIVE_PATS,
    OutgoingMail, PAT_USE_GRANULARITY, Result, Scopes, StoredAccessToken, Timestamp, UserId,
};
use uuid::Uuid;

use crate::audit::insert_events;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{UserRow, from_micros, micros, parse_id};
use crate::recovery::queue_mail;
use crate::schema::{access_tokens, users};
use crate::users::lock_live_user;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
struct TokenRow {
    id: String,
    user_id: String,
    name: String,
    token_hash: String,
    scopes: String,
    credential_version: i32,
    created_at: i64,
    expires_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn from_token(t: StoredAccessToken) -> Self {
        Self {
            id: t.id.to_string(),
            user_id: t.user_id.to_string(),
            name: t.name,
            token_hash: t.token_hash,
            scopes: t.scopes.to_text(),
            credential_version: i32::try_from(t.credential_version).unwrap_or(i32::MAX),
            created_at: micros(t.created_at),
            expires_at: micros(t.expires_at),
            last_used_at: t.last_used_at.map(micros),
            revoked_at: t.revoked_at.map(micros),
        }
    }

    fn into_token(self) -> Result<StoredAccessToken, DbError> {
        let scopes = Scopes::parse_text(&self.scopes)
            .ok_or_else(|| DbError::from(Error::internal("a stored token has an unknown scope")))?;
        Ok(StoredAccessToken {
            id: parse_id(&self.id)?,
            user_id: parse_id(&self.user_id)?,
            name: self.name,
            token_hash: self.token_hash,
            scopes,
            credential_version: u32::try_from(self.credential_version).unwrap_or(u32::MAX),
            created_at: from_micros(self.created_at)?,
            expires_at: from_micros(self.expires_at)?,
            last_used_at: self.last_used_at.map(from_micros).transpose()?,
            revoked_at: self.revoked_at.map(from_micros).transpose()?,
        })
    }
}

#[async_trait]
impl AccessTokenRepository for Database {
    async fn create_access_token(
        &self,
        token: StoredAccessToken,
        audit: Vec<AuditEvent>,
        mail: Option<OutgoingMail>,
    ) -> Result<()> {
        let row = TokenRow::from_token(token);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // The owner's row, locked: two creations at once count each other.
                if lock_live_user(conn, &row.user_id)?.is_none() {
                    return Err(Error::NotFound.into());
                }
                let live: i64 = access_tokens::table
                    .filter(access_tokens::user_id.eq(&row.user_id))
                    .filter(access_tokens::revoked_at.is_null())
                    .filter(access_tokens::expires_at.gt(row.created_at))
                    .count()
                    .get_result(conn)?;
                if u64::try_from(live).unwrap_or(u64::MAX) >= MAX_LIVE_PATS {
                    return Err(Error::conflict(
                        ConflictKind::NotApplicable,
                        format!(
                            "an account holds at most {MAX_LIVE_PATS} live access tokens: revoke one first"
                        ),
                    )
                    .into());
                }
                diesel::insert_into(access_tokens::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)?;
                // Cloned: a retried transaction queues it again.
                if let Some(m) = mail.clone() {
                    queue_mail(conn, m)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_access_tokens(
        &self,
        user_id: UserId,
        now: Timestamp,
    ) -> Result<Vec<StoredAccessToken>> {
        let (user_id, now) = (user_id.to_string(), micros(now));
        self.run(move |conn| {
            access_tokens::table
                .filter(access_tokens::user_id.eq(&user_id))
                .filter(access_tokens::revoked_at.is_null())
                .filter(access_tokens::expires_at.gt(now))
                .order((access_tokens::created_at.desc(), access_tokens::id.desc()))
                .select(TokenRow::as_select())
                .load(conn)?
                .into_iter()
                .map(TokenRow::into_token)
                .collect()
        })
        .await
    }

    async fn find_access_token(&self, token_hash: &str) -> Result<Option<AccessTokenOwner>> {
        let token_hash = token_hash.to_owned();
        self.run(move |conn| {
            let row: Option<(TokenRow, UserRow)> = access_tokens::table
                .inner_join(users::table)
                .filter(access_tokens::token_hash.eq(&token_hash))
                .select((TokenRow::as_select(), UserRow::as_select()))
                .get_result(conn)
                .optional()?;
            let Some((token, user)) = row else {
                return Ok(None);
            };
            let credential_version = u32::try_from(user.credential_version).unwrap_or(0);
            Ok(Some(AccessTokenOwner {
                token: token.into_token()?,
                user: user.into_user()?,
                credential_version,
            }))
        })
        .await
    }

    async fn revoke_access_token(
        &self,
        user_id: UserId,
        id: Uuid,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Result<bool> {
        let (user_id, id, now) = (user_id.to_string(), id.to_string(), micros(now));
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(
                    access_tokens::table
                        .filter(access_tokens::id.eq(&id))
                        .filter(access_tokens::user_id.eq(&user_id))
                        .filter(access_tokens::revoked_at.is_null()),
                )
                .set(access_tokens::revoked_at.eq(Some(now)))
                .execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                insert_events(conn, &audit)?;
                Ok(true)
            })
        })
        .await
    }

    async fn touch_access_token(&self, id: Uuid, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        let granularity = i64::try_from(PAT_USE_GRANULARITY.as_micros()).unwrap_or(i64::MAX);
        let now = micros(now);
        let before = now.saturating_sub(granularity);
        self.run(move |conn| {
            diesel::update(
                access_tokens::table
                    .filter(access_tokens::id.eq(&id))
                    .filter(
                        access_tokens::last_used_at
                            .is_null()
                            .or(access_tokens::last_used_at.lt(before)),
                    ),
            )
            .set(access_tokens::last_used_at.eq(Some(now)))
            .execute(conn)?;
            Ok(())
        })
        .await
    }
}
