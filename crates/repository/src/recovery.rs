//! `RecoveryRepository` on [`Database`]: mailed single-use tokens and the transactional outbox.
use async_trait::async_trait;
use chrono::TimeDelta;
use diesel::prelude::*;
use domain::{
    ConflictKind, EmailChange, Error, MailClaim, MailSettlement, NewAccountToken, OutboxStats,
    OutgoingMail, QueuedMail, RecoveryRepository, Redemption, Result, RevokeReason, TOKEN_EXPIRED,
    TOKEN_SUPERSEDED, TOKEN_UNKNOWN, TOKEN_USED, Timestamp, TokenIssue, TokenPurpose, User, UserId,
};

use crate::audit::insert_events;
use crate::connection::AnyConnection;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::lockout::{self, known_window_micros};
use crate::models::{UserRow, from_micros, micros, name_key, parse_id};
use crate::schema::{
    account_tokens, email_changes, mfa_challenges, outbox, users, webauthn_ceremonies,
};
use crate::sessions::revoke_sessions;
use crate::users::{LIKE_ESCAPE, like_literal, lock_live_user};

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(
        x: diesel::sql_types::Nullable<diesel::sql_types::Text>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Longest delivery error kept (the column's width).
const ERROR_CHARS: usize = 500;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = account_tokens)]
struct TokenRow {
    id: String,
    user_id: String,
    purpose: String,
    token_hash: String,
    email: String,
    credential_version: i32,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = outbox)]
struct MailRow {
    id: String,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    attempts: i32,
    next_attempt_at: i64,
    leased_by: Option<String>,
    lease_until: Option<i64>,
    sent_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
}

impl TokenRow {
    fn from_new(t: NewAccountToken) -> Self {
        TokenRow {
            id: t.id.to_string(),
            user_id: t.user_id.to_string(),
            purpose: t.purpose.as_str().to_owned(),
            token_hash: t.token_hash,
            email: t.email.to_lowercase(),
            credential_version: i32::try_from(t.credential_version).unwrap_or(i32::MAX),
            created_at: micros(t.created_at),
            expires_at: micros(t.expires_at),
            used_at: None,
        }
    }
}

/// A token row and the mail that carries it, inserted in the caller's transaction.
fn store_token(conn: &mut AnyConnection, token: &TokenRow) -> Result<(), DbError> {
    diesel::insert_into(account_tokens::table)
        .values(token)
        .execute(conn)?;
    Ok(())
}

/// Whether `mail` is within its [`domain::MailLimit`]: fewer mails queued to its recipient, and
/// to its recipient's domain, since the limit's start than it allows (compared
/// case-insensitively).
fn within_limit(conn: &mut AnyConnection, mail: &OutgoingMail) -> Result<bool, DbError> {
    let Some(limit) = mail.limit else {
        return Ok(true);
    };
    let since = micros(limit.since);
    let to = mail.recipient.to_lowercase();
    if limit.per_recipient > 0 {
        let n: i64 = outbox::table
            .filter(outbox::created_at.ge(since))
            .filter(lower(outbox::recipient.nullable()).eq(&to))
            .count()
            .get_result(conn)?;
        if count(n) >= u64::from(limit.per_recipient) {
            return Ok(false);
        }
    }
    if limit.per_domain > 0
        && let Some((_, domain)) = to.rsplit_once('@')
    {
        let pattern = format!("%@{}", like_literal(domain));
        let n: i64 = outbox::table
            .filter(outbox::created_at.ge(since))
            .filter(
                lower(outbox::recipient.nullable())
                    .like(pattern)
                    .escape(LIKE_ESCAPE),
            )
            .count()
            .get_result(conn)?;
        if count(n) >= u64::from(limit.per_domain) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Queue `mail` if it is within its limit; whether it was.
pub(crate) fn queue_mail(conn: &mut AnyConnection, mail: OutgoingMail) -> Result<bool, DbError> {
    if !within_limit(conn, &mail)? {
        return Ok(false);
    }
    diesel::insert_into(outbox::table)
        .values(&MailRow::from_outgoing(mail))
        .execute(conn)?;
    Ok(true)
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = email_changes)]
struct EmailChangeRow {
    id: String,
    user_id: String,
    old_email: String,
    old_verified: bool,
    new_email: String,
    revert_token_hash: String,
    created_at: i64,
    expires_at: i64,
    reverted_at: Option<i64>,
}

/// Write what an email change of `user` (the locked row, before the change) to `new_email`
/// brings with it: the change and its revert token, the new address's verification token, the
/// mails. In the caller's (the update's) transaction.
pub(crate) fn record_email_change(
    conn: &mut AnyConnection,
    user: &UserRow,
    new_email: &str,
    change: EmailChange,
    now: i64,
) -> Result<(), DbError> {
    if change.expected_email.to_lowercase() != user.email.to_lowercase() {
        return Err(
            Error::conflict(ConflictKind::ChangedMeanwhile, EMAIL_CHANGED_MEANWHILE).into(),
        );
    }
    diesel::insert_into(email_changes::table)
        .values(&EmailChangeRow {
            id: change.id.to_string(),
            user_id: user.id.clone(),
            old_email: user.email.to_lowercase(),
            old_verified: user.is_verified,
            new_email: new_email.to_lowercase(),
            revert_token_hash: change.revert_token_hash,
            created_at: now,
            expires_at: micros(change.revert_expires_at),
            reverted_at: None,
        })
        .execute(conn)?;
    if let Some(t) = change.verify_token {
        store_token(conn, &TokenRow::from_new(t))?;
    }
    // One insert per mail: MultiConnection has no multi-row insert (two mails per change). The
    // notice has no limit; a verification link over its limit is not queued (the change
    // stands, and the link can be asked for again later).
    for m in change.mails {
        queue_mail(conn, m)?;
    }
    Ok(())
}

const LINK_EXPIRED: &str = "given up: the link it carries expired before it could be delivered";

const EMAIL_CHANGED_MEANWHILE: &str =
    "the email address was changed by another request meanwhile; try again";

/// Undo the email change whose revert link hashes to `hash`: the replaced address comes back,
/// verified (the link was read there), this and every later change of the account count as
/// reverted, and every session ends.
fn revert_email(conn: &mut AnyConnection, hash: &str, now: i64) -> Result<User, DbError> {
    macro_rules! q {
        () => {
            email_changes::table
                .filter(email_changes::revert_token_hash.eq(hash))
                .select(EmailChangeRow::as_select())
        };
    }
    let change: Option<EmailChangeRow> = match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    };
    let change = change.ok_or_else(|| refused(TOKEN_UNKNOWN))?;
    if change.reverted_at.is_some() {
        return Err(refused(TOKEN_USED));
    }
    if change.expires_at <= now {
        return Err(refused(TOKEN_EXPIRED));
    }
    let user = lock_live_user(conn, &change.user_id)?.ok_or_else(|| refused(TOKEN_SUPERSEDED))?;
    diesel::update(
        email_changes::table
            .filter(email_changes::user_id.eq(&user.id))
            .filter(email_changes::created_at.ge(change.created_at))
            .filter(email_changes::reverted_at.is_null()),
    )
    .set(email_changes::reverted_at.eq(Some(now)))
    .execute(conn)?;
    let target = users::table.find(&user.id);
    diesel::update(target)
        .set((
            users::email.eq(&change.old_email),
            users::email_key.eq(Some(name_key(&change.old_email))),
            users::is_verified.eq(true),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    revoke_sessions(conn, &user.id, RevokeReason::EmailReverted, now, None)?;
    let row: UserRow = target.select(UserRow::as_select()).get_result(conn)?;
    row.into_user()
}

impl MailRow {
    fn from_outgoing(m: OutgoingMail) -> Self {
        MailRow {
            id: m.id.to_string(),
            recipient: m.recipient,
            subject: m.subject,
            text_body: m.text_body,
            html_body: m.html_body,
            attempts: 0,
            next_attempt_at: micros(m.created_at),
            leased_by: None,
            lease_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
            created_at: micros(m.created_at),
            expires_at: m.expires_at.map(micros),
        }
    }

    fn into_queued(self) -> Result<QueuedMail, DbError> {
        Ok(QueuedMail {
            id: parse_id(&self.id)?,
            recipient: self.recipient,
            subject: self.subject,
            text_body: self.text_body,
            html_body: self.html_body,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            created_at: from_micros(self.created_at)?,
        })
    }
}

fn refused(message: &str) -> DbError {
    Error::validation("token", message).into()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The token row with this hash, locked until the transaction ends.
fn lock_token(conn: &mut AnyConnection, hash: &str) -> Result<Option<TokenRow>, DbError> {
    macro_rules! q {
        () => {
            account_tokens::table
                .filter(account_tokens::token_hash.eq(hash))
                .select(TokenRow::as_select())
        };
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    })
}

/// The token of `r` and its user when the token can be spent at `now`, else why not (the
/// `TOKEN_*` refusal). `lock`: both rows locked until the transaction ends (to spend it).
fn live_token(
    conn: &mut AnyConnection,
    r: &Redemption,
    now: i64,
    lock: bool,
) -> Result<(TokenRow, UserRow), DbError> {
    let token = if lock {
        lock_token(conn, &r.token_hash)?
    } else {
        account_tokens::table
            .filter(account_tokens::token_hash.eq(&r.token_hash))
            .select(TokenRow::as_select())
            .get_result(conn)
            .optional()?
    };
    let token = token
        .filter(|t| t.purpose == r.purpose.as_str())
        .ok_or_else(|| refused(TOKEN_UNKNOWN))?;
    if token.used_at.is_some() {
        return Err(refused(TOKEN_USED));
    }
    if token.expires_at <= now {
        return Err(refused(TOKEN_EXPIRED));
    }
    let user = if lock {
        lock_live_user(conn, &token.user_id)?
    } else {
        users::table
            .find(&token.user_id)
            .filter(users::status.ne("deleted"))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()?
    };
    let user = user
        .filter(|u| u.email.to_lowercase() == token.email)
        .filter(|u| {
            r.purpose != TokenPurpose::Reset || u.credential_version == token.credential_version
        })
        .ok_or_else(|| refused(TOKEN_SUPERSEDED))?;
    Ok((token, user))
}

#[async_trait]
impl RecoveryRepository for Database {
    async fn check_token(&self, r: Redemption) -> Result<()> {
        let now = micros(r.now);
        self.run(move |conn| live_token(conn, &r, now, false).map(|_| ()))
            .await
    }

    async fn issue_token(&self, issue: TokenIssue) -> Result<bool> {
        let token = TokenRow::from_new(issue.token);
        let mail = issue.mail;
        let (since, max) = (micros(issue.throttle_since), issue.throttle_max);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // The user row is locked first, so two requests for one user count in turn.
                if lock_live_user(conn, &token.user_id)?.is_none() {
                    return Ok(false);
                }
                if max > 0 {
                    let issued: i64 = account_tokens::table
                        .filter(account_tokens::user_id.eq(&token.user_id))
                        .filter(account_tokens::purpose.eq(&token.purpose))
                        .filter(account_tokens::created_at.ge(since))
                        .count()
                        .get_result(conn)?;
                    if count(issued) >= u64::from(max) {
                        return Ok(false);
                    }
                }
                // A mail over its recipient's or domain's limit: nothing is issued (throttled).
                if let Some(mail) = &mail
                    && !queue_mail(conn, mail.clone())?
                {
                    return Ok(false);
                }
                store_token(conn, &token)?;
                Ok(true)
            })
        })
        .await
    }

    async fn redeem_token(&self, r: Redemption) -> Result<User> {
        let now = micros(r.now);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let user = redeem(conn, &r, now)?;
                insert_events(conn, &r.audit_records(&user))?;
                Ok(user)
            })
        })
        .await
    }

    async fn reset_recipient(
        &self,
        user_id: UserId,
        changed_since: Timestamp,
    ) -> Result<Option<String>> {
        let id = user_id.to_string();
        let since = micros(changed_since);
        self.run(move |conn| {
            let user: Option<(String, bool)> = users::table
                .find(&id)
                .filter(users::status.ne("deleted"))
                .select((users::email, users::is_verified))
                .get_result(conn)
                .optional()?;
            let Some((email, verified)) = user else {
                return Ok(None);
            };
            if verified {
                return Ok(Some(email));
            }
            Ok(email_changes::table
                .filter(email_changes::user_id.eq(&id))
                .filter(email_changes::old_verified.eq(true))
                .filter(email_changes::reverted_at.is_null())
                .filter(email_changes::created_at.ge(since))
                .order(email_changes::created_at.desc())
                .select(email_changes::old_email)
                .first::<String>(conn)
                .optional()?)
        })
        .await
    }

    async fn claim_mail(&self, claim: MailClaim) -> Result<Vec<QueuedMail>> {
        let now_ts = claim.now;
        let now = micros(now_ts);
        let until = TimeDelta::from_std(claim.lease)
            .ok()
            .and_then(|d| now_ts.checked_add_signed(d))
            .map(micros)
            .ok_or_else(|| Error::validation("lease", "is out of range"))?;
        let limit = i64::from(claim.limit.clamp(1, 100));
        let worker = claim.worker;
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // A mail whose link died undelivered is given up and its body erased: never
                // sent late.
                diesel::update(
                    outbox::table
                        .filter(outbox::sent_at.is_null())
                        .filter(outbox::failed_at.is_null())
                        .filter(outbox::expires_at.le(now)),
                )
                .set((
                    outbox::failed_at.eq(Some(now)),
                    outbox::text_body.eq(""),
                    outbox::html_body.eq(""),
                    outbox::lease_until.eq(None::<i64>),
                    outbox::last_error.eq(Some(LINK_EXPIRED)),
                ))
                .execute(conn)?;
                macro_rules! due {
                    () => {
                        outbox::table
                            .select(outbox::id)
                            .filter(outbox::sent_at.is_null())
                            .filter(outbox::failed_at.is_null())
                            .filter(outbox::next_attempt_at.le(now))
                            .filter(
                                outbox::lease_until
                                    .is_null()
                                    .or(outbox::lease_until.le(now)),
                            )
                            .order(outbox::next_attempt_at)
                            .limit(limit)
                    };
                }
                // Rows another worker is claiming right now are skipped, not waited for.
                let ids: Vec<String> = match conn {
                    AnyConnection::Sqlite(c) => due!().load(c)?,
                    AnyConnection::Postgres(c) => due!().for_update().skip_locked().load(c)?,
                    #[cfg(feature = "mysql")]
                    AnyConnection::Mysql(c) => due!().for_update().skip_locked().load(c)?,
                };
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                    .set((
                        outbox::leased_by.eq(Some(&worker)),
                        outbox::lease_until.eq(Some(until)),
                        outbox::attempts.eq(outbox::attempts + 1),
                    ))
                    .execute(conn)?;
                let rows: Vec<MailRow> = outbox::table
                    .filter(outbox::id.eq_any(&ids))
                    .order(outbox::next_attempt_at)
                    .select(MailRow::as_select())
                    .load(conn)?;
                rows.into_iter().map(MailRow::into_queued).collect()
            })
        })
        .await
    }

    async fn settle_mail(&self, s: MailSettlement) -> Result<bool> {
        let now = micros(s.now);
        let id = s.id.to_string();
        let error = s
            .error
            .map(|e| e.chars().take(ERROR_CHARS).collect::<String>());
        let retry_at = s.retry_at.map(micros);
        self.run(move |conn| {
            let mine = outbox::table
                .filter(outbox::id.eq(&id))
                .filter(outbox::leased_by.eq(&s.worker))
                .filter(outbox::sent_at.is_null())
                .filter(outbox::failed_at.is_null());
            let n = match (s.sent, retry_at) {
                // The bodies carry a token link: nothing of them is kept once delivered.
                (true, _) => diesel::update(mine)
                    .set((
                        outbox::sent_at.eq(Some(now)),
                        outbox::text_body.eq(""),
                        outbox::html_body.eq(""),
                        outbox::lease_until.eq(None::<i64>),
                        outbox::last_error.eq(None::<String>),
                    ))
                    .execute(conn)?,
                (false, Some(at)) => diesel::update(mine)
                    .set((
                        outbox::next_attempt_at.eq(at),
                        outbox::lease_until.eq(None::<i64>),
                        outbox::last_error.eq(&error),
                    ))
                    .execute(conn)?,
                (false, None) => diesel::update(mine)
                    .set((
                        outbox::failed_at.eq(Some(now)),
                        outbox::text_body.eq(""),
                        outbox::html_body.eq(""),
                        outbox::lease_until.eq(None::<i64>),
                        outbox::last_error.eq(&error),
                    ))
                    .execute(conn)?,
            };
            Ok(n == 1)
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        self.run(|conn| {
            let pending: i64 = outbox::table
                .filter(outbox::sent_at.is_null())
                .filter(outbox::failed_at.is_null())
                .count()
                .get_result(conn)?;
            let failed: i64 = outbox::table
                .filter(outbox::failed_at.is_not_null())
                .count()
                .get_result(conn)?;
            Ok(OutboxStats {
                pending: count(pending),
                failed: count(failed),
            })
        })
        .await
    }

    async fn purge_recovery(&self, before: Timestamp) -> Result<u64> {
        let before = micros(before);
        self.run(move |conn| {
            let mails = diesel::delete(
                outbox::table.filter(outbox::sent_at.lt(before).or(outbox::failed_at.lt(before))),
            )
            .execute(conn)?;
            let tokens = diesel::delete(
                account_tokens::table.filter(
                    account_tokens::expires_at
                        .lt(before)
                        .or(account_tokens::used_at.lt(before)),
                ),
            )
            .execute(conn)?;
            let changes = diesel::delete(
                email_changes::table.filter(
                    email_changes::expires_at
                        .lt(before)
                        .or(email_changes::reverted_at.lt(before)),
                ),
            )
            .execute(conn)?;
            // Logins that waited for their second factor (used or not: they live minutes).
            let challenges =
                diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(before)))
                    .execute(conn)?;
            // WebAuthn ceremonies (used or not: they live minutes).
            let ceremonies = diesel::delete(
                webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.lt(before)),
            )
            .execute(conn)?;
            // Networks untouched for the retention and the known-network window.
            let networks = lockout::purge(conn, before.saturating_sub(known_window_micros()))?;
            Ok((mails + tokens + changes + challenges + ceremonies + networks) as u64)
        })
        .await
    }
}

/// Spend the token of `r` in the caller's transaction and apply its change: the user as changed.
fn redeem(conn: &mut AnyConnection, r: &Redemption, now: i64) -> Result<User, DbError> {
    if r.purpose == TokenPurpose::RevertEmail {
        return revert_email(conn, &r.token_hash, now);
    }
    let (token, user) = live_token(conn, r, now, true)?;
    diesel::update(account_tokens::table.find(&token.id))
        .set(account_tokens::used_at.eq(Some(now)))
        .execute(conn)?;
    let target = users::table.find(&user.id);
    match (r.purpose, &r.new_password_hash) {
        (TokenPurpose::Reset, Some(hash)) => {
            diesel::update(target)
                .set((
                    users::password_hash.eq(hash),
                    users::credential_version.eq(user.credential_version.saturating_add(1)),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            lockout::clear(conn, &user.id)?;
            revoke_sessions(conn, &user.id, RevokeReason::PasswordReset, now, None)?;
        }
        (TokenPurpose::Reset, None) => {
            return Err(Error::validation("new_password", "is required").into());
        }
        (TokenPurpose::Verify, _) => {
            diesel::update(target)
                .set((users::is_verified.eq(true), users::updated_at.eq(now)))
                .execute(conn)?;
        }
        (TokenPurpose::RevertEmail, _) => {
            return Err(Error::internal("revert tokens are email changes").into());
        }
    }
    let row: UserRow = target.select(UserRow::as_select()).get_result(conn)?;
    row.into_user()
}
