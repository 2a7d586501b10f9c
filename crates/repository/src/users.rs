//! `UserRepository` on [`Database`].
use async_trait::async_trait;
use diesel::connection::SimpleConnection;
use diesel::dsl::AsSelect;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use domain::{
    AttemptReservation, AuditEvent, ConflictKind, Cursor, CursorValue, Error, LoginAttempt,
    LoginBegun, LoginCompletion, LoginStart, MAX_PER_PAGE, NewUser, PageInfo, PageRequest,
    PasswordChange, Result, RevokeReason, Role, SortOrder, Status, User, UserChange,
    UserCredentials, UserDeletion, UserId, UserPage, UserQuery, UserRepository, UserSort,
    audit_with_revoked,
};

use crate::audit::insert_events;
use crate::connection::{AnyConnection, MultiBackend};
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::lockout;
use crate::models::{SessionRow, UserChanges, UserRow, micros, name_key};
use crate::recovery::record_email_change;
use crate::schema::{sessions, users};
use crate::sessions::{insert_session, revoke_sessions};

pub(crate) const LAST_ADMIN: &str = "the last active admin cannot be demoted, suspended or deleted";
const PASSWORD_CHANGED_MEANWHILE: &str =
    "the password was changed by another request meanwhile; try again";
const ADMIN: &str = "admin";
const ACTIVE: &str = "active";
const DELETED: &str = "deleted";
/// Escape character for LIKE patterns; not `\`, which MySQL also treats as a string escape.
pub(crate) const LIKE_ESCAPE: char = '!';

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(x: Nullable<Text>) -> Nullable<Text>;
}

type Predicate = Box<dyn BoxableExpression<users::table, MultiBackend, SqlType = Nullable<Bool>>>;
type BoxedUsers = users::BoxedQuery<'static, MultiBackend, AsSelect<UserRow, MultiBackend>>;

/// `text` with LIKE's wildcards (and the escape character) escaped by [`LIKE_ESCAPE`].
pub(crate) fn like_literal(text: &str) -> String {
    let mut p = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            p.push(LIKE_ESCAPE);
        }
        p.push(c);
    }
    p
}

/// `%text%` with LIKE's wildcards in `text` escaped.
fn contains_pattern(text: &str) -> String {
    format!("%{}%", like_literal(text))
}

/// Search strings at least this many characters long are narrowed by SQLite's trigram index.
const TRIGRAM: usize = 3;

/// The users whose username, email or name may contain `search`, from the `users_search` FTS5
/// trigram index (SQLite): a superset of the LIKE matches, which still decide.
fn trigram_candidates(search: &str) -> Predicate {
    let phrase = format!("\"{}\"", search.replace('"', "\"\""));
    Box::new(
        sql::<Nullable<Bool>>(
            "users.rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH ",
        )
        .bind::<Text, _>(phrase)
        .sql(")"),
    )
}

/// The WHERE clause shared by the page and its total. `sqlite` adds the trigram index's
/// candidates to a search (PostgreSQL's trigram indexes serve the LIKE filters themselves).
fn filters(q: &UserQuery, sqlite: bool) -> Predicate {
    let mut p: Predicate = match q.status {
        Some(s) => Box::new(users::status.eq(s.as_str()).nullable()),
        None => Box::new(users::status.ne(DELETED).nullable()),
    };
    if let Some(role) = q.role {
        p = Box::new(p.and(users::role.eq(role.as_str()).nullable()));
    }
    if let Some(search) = q.search.as_deref().filter(|s| !s.is_empty()) {
        let pat = contains_pattern(search);
        let like = |col: Box<
            dyn BoxableExpression<users::table, MultiBackend, SqlType = Nullable<Text>>,
        >| { lower(col).like(lower(pat.clone())).escape(LIKE_ESCAPE) };
        p = Box::new(
            p.and(
                like(Box::new(users::username.nullable()))
                    .or(like(Box::new(users::email.nullable())))
                    .or(like(Box::new(users::first_name)))
                    .or(like(Box::new(users::last_name))),
            ),
        );
        if sqlite && search.chars().count() >= TRIGRAM {
            p = Box::new(p.and(trigram_candidates(search)));
        }
    }
    if let Some(t) = q.created_after {
        p = Box::new(p.and(users::created_at.ge(micros(t)).nullable()));
    }
    if let Some(t) = q.created_before {
        p = Box::new(p.and(users::created_at.lt(micros(t)).nullable()));
    }
    p
}

/// Rows strictly after the cursor in (sort column, id) order. Written as
/// `col >= v AND (col > v OR id > i)` so every backend can start an index range scan at `v`.
fn after_cursor(c: &Cursor) -> Result<Predicate> {
    macro_rules! keyset {
        ($col:expr, $v:expr) => {{
            let v = $v;
            let id = c.id.to_string();
            match c.order {
                SortOrder::Asc => Box::new(
                    $col.ge(v.clone())
                        .and($col.gt(v).or(users::id.gt(id)))
                        .nullable(),
                ) as Predicate,
                SortOrder::Desc => Box::new(
                    $col.le(v.clone())
                        .and($col.lt(v).or(users::id.lt(id)))
                        .nullable(),
                ) as Predicate,
            }
        }};
    }
    Ok(match (c.sort, &c.value) {
        (UserSort::CreatedAt, CursorValue::Time(v)) => keyset!(users::created_at, *v),
        (UserSort::Username, CursorValue::Text(v)) => keyset!(users::username, v.clone()),
        (UserSort::Email, CursorValue::Text(v)) => keyset!(users::email, v.clone()),
        _ => return Err(Error::bad_cursor()),
    })
}

/// ORDER BY the sort column, then id in the same direction (stable pages). Users who never
/// logged in sort as the oldest logins in every backend: SQLite and MySQL put NULL first when
/// ascending; PostgreSQL is told so.
fn ordered(q: BoxedUsers, sort: UserSort, order: SortOrder, postgres: bool) -> BoxedUsers {
    use SortOrder::{Asc, Desc};
    match (sort, order) {
        (UserSort::CreatedAt, Asc) => q.order_by((users::created_at.asc(), users::id.asc())),
        (UserSort::CreatedAt, Desc) => q.order_by((users::created_at.desc(), users::id.desc())),
        (UserSort::Username, Asc) => q.order_by((users::username.asc(), users::id.asc())),
        (UserSort::Username, Desc) => q.order_by((users::username.desc(), users::id.desc())),
        (UserSort::Email, Asc) => q.order_by((users::email.asc(), users::id.asc())),
        (UserSort::Email, Desc) => q.order_by((users::email.desc(), users::id.desc())),
        (UserSort::LastLoginAt, Asc) if postgres => q.order_by((
            sql::<BigInt>("users.last_login_at ASC NULLS FIRST"),
            users::id.asc(),
        )),
        (UserSort::LastLoginAt, Desc) if postgres => q.order_by((
            sql::<BigInt>("users.last_login_at DESC NULLS LAST"),
            users::id.desc(),
        )),
        (UserSort::LastLoginAt, Asc) => q.order_by((users::last_login_at.asc(), users::id.asc())),
        (UserSort::LastLoginAt, Desc) => {
            q.order_by((users::last_login_at.desc(), users::id.desc()))
        }
    }
}

fn select_users(pred: Predicate) -> BoxedUsers {
    users::table
        .select(UserRow::as_select())
        .filter(pred)
        .into_boxed()
}

/// The ids of every active admin, locked until the transaction ends (PostgreSQL, MySQL; on
/// SQLite the immediate transaction already excludes other writers). Locked in id order, and
/// always before the target row, so two guarded updates cannot deadlock.
pub(crate) fn lock_active_admins(conn: &mut AnyConnection) -> Result<Vec<String>, DbError> {
    let q = users::table
        .select(users::id)
        .filter(users::role.eq(ADMIN))
        .filter(users::status.eq(ACTIVE))
        .order(users::id);
    Ok(match conn {
        AnyConnection::Sqlite(c) => q.load(c)?,
        AnyConnection::Postgres(c) => q.for_update().load(c)?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q.for_update().load(c)?,
    })
}

/// The non-deleted user `id`, locked until the transaction ends.
pub(crate) fn lock_live_user(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<UserRow>, DbError> {
    // `as_select()` is typed by backend, so the query is built per arm.
    macro_rules! q {
        () => {
            users::table
                .find(id.to_owned())
                .filter(users::status.ne(DELETED))
                .select(UserRow::as_select())
        };
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    })
}

/// Conflict when `target` is an active admin and `admins` (locked) holds no other.
pub(crate) fn guard_last_admin(target: &UserRow, admins: &[String]) -> Result<(), DbError> {
    if target.is_active_admin() && !admins.iter().any(|a| *a != target.id) {
        return Err(Error::conflict(ConflictKind::LastAdmin, LAST_ADMIN).into());
    }
    Ok(())
}

fn page_of(rows: Vec<UserRow>) -> Result<Vec<User>, DbError> {
    rows.into_iter().map(UserRow::into_user).collect()
}

#[async_trait]
impl UserRepository for Database {
    async fn ping(&self) -> Result<()> {
        self.run(|conn| Ok(conn.batch_execute("SELECT 1")?)).await
    }

    async fn create_user(&self, user: NewUser, audit: Vec<AuditEvent>) -> Result<User> {
        let row = UserRow::from_new(user);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                diesel::insert_into(users::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)
            })?;
            row.into_user()
        })
        .await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        self.run(move |conn| {
            users::table
                .find(id.to_string())
                .select(UserRow::as_select())
                .get_result(conn)
                .optional()?
                .map(UserRow::into_user)
                .transpose()
        })
        .await
    }

    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>> {
        let key = name_key(login);
        self.run(move |conn| {
            users::table
                .filter(users::username_key.eq(&key).or(users::email_key.eq(&key)))
                .filter(users::status.ne(DELETED))
                .select(UserRow::as_select())
                .get_result(conn)
                .optional()?
                .map(UserRow::into_credentials)
                .transpose()
        })
        .await
    }

    /// A non-deleted user's credentials (deleted accounts have none to check).
    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>> {
        self.run(move |conn| {
            users::table
                .find(id.to_string())
                .filter(users::status.ne(DELETED))
                .select(UserRow::as_select())
                .get_result(conn)
                .optional()?
                .map(UserRow::into_credentials)
                .transpose()
        })
        .await
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage> {
        let q = query.clone();
        let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
        if let PageRequest::Keyset { after } = &q.page {
            if q.sort == UserSort::LastLoginAt {
                return Err(Error::validation(
                    "cursor",
                    "is not supported with sort=last_login_at; use page",
                ));
            }
            if let Some(c) = after
                && (c.sort != q.sort || c.order != q.order)
            {
                return Err(Error::validation(
                    "cursor",
                    "was issued for a different sort or order",
                ));
            }
        }
        let after = match &q.page {
            PageRequest::Keyset { after: Some(c) } => Some(after_cursor(c)?),
            _ => None,
        };
        self.run(move |conn| {
            let postgres = matches!(conn, AnyConnection::Postgres(_));
            let sqlite = matches!(conn, AnyConnection::Sqlite(_));
            match q.page {
                PageRequest::Offset { page } => {
                    let page = page.max(1);
                    let total: i64 = users::table
                        .filter(filters(&q, sqlite))
                        .count()
                        .get_result(conn)?;
                    let offset = i64::from(page - 1) * i64::from(per_page);
                    let rows =
                        ordered(select_users(filters(&q, sqlite)), q.sort, q.order, postgres)
                            .limit(i64::from(per_page))
                            .offset(offset)
                            .load::<UserRow>(conn)?;
                    Ok(UserPage {
                        items: page_of(rows)?,
                        pagination: PageInfo::offset(
                            page,
                            per_page,
                            u64::try_from(total).unwrap_or(0),
                        ),
                    })
                }
                PageRequest::Keyset { .. } => {
                    let pred = match after {
                        Some(after) => Box::new(filters(&q, sqlite).and(after)) as Predicate,
                        None => filters(&q, sqlite),
                    };
                    // One row more than asked tells whether there is a next page.
                    let mut rows = ordered(select_users(pred), q.sort, q.order, postgres)
                        .limit(i64::from(per_page) + 1)
                        .load::<UserRow>(conn)?;
                    let more = rows.len() > per_page as usize;
                    rows.truncate(per_page as usize);
                    let items = page_of(rows)?;
                    let next_cursor = more
                        .then(|| items.last())
                        .flatten()
                        .and_then(|last| Cursor::after(last, q.sort, q.order))
                        .map(|c| c.encode());
                    Ok(UserPage {
                        items,
                        pagination: PageInfo::Keyset {
                            per_page,
                            next_cursor,
                        },
                    })
                }
            }
        })
        .await
    }

    async fn change_user(&self, change: UserChange) -> Result<Option<User>> {
        let update = &change.update;
        if update.status == Some(Status::Deleted) {
            return Err(Error::validation(
                "status",
                "cannot be set to deleted here; delete the user instead",
            ));
        }
        let id = change.id.to_string();
        let now = change.now;
        // Only a change away from admin or active can remove an active admin.
        let demotes = update.role.is_some_and(|r| r != Role::Admin)
            || update.status.is_some_and(|s| s != Status::Active);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let update = &change.update;
                let admins = if demotes {
                    Some(lock_active_admins(conn)?)
                } else {
                    None
                };
                let Some(row) = lock_live_user(conn, &id)? else {
                    return Ok(None);
                };
                if let Some(admins) = &admins {
                    guard_last_admin(&row, admins)?;
                }
                if update.is_empty() && change.revoke.is_none() && change.audit.is_empty() {
                    return row.into_user().map(Some);
                }
                let before = row.clone().into_user()?;
                let mut changes = UserChanges::of(update, now);
                // Decided against the locked row: a new address is never verified; the same
                // address (in any case) keeps its state.
                let new_email = update
                    .email
                    .as_deref()
                    .filter(|e| e.to_lowercase() != row.email.to_lowercase());
                if let Some(new_email) = new_email {
                    changes.is_verified = Some(false);
                    if let Some(change) = update.email_change.clone() {
                        record_email_change(conn, &row, new_email, change, micros(now))?;
                    }
                }
                diesel::update(users::table.find(&id))
                    .set(&changes)
                    .execute(conn)?;
                if let Some(attempt) = update.release_attempt {
                    lockout::give_back(conn, &id, &update.release_network, attempt)?;
                }
                if update.clear_lockout {
                    lockout::clear(conn, &id)?;
                }
                let revoked = match change.revoke {
                    Some(reason) => revoke_sessions(conn, &id, reason, micros(now), None)?,
                    None => 0,
                };
                insert_events(conn, &change.audit_records(&before, revoked))?;
                let row: UserRow = users::table
                    .find(&id)
                    .select(UserRow::as_select())
                    .get_result(conn)?;
                row.into_user().map(Some)
            })
        })
        .await
    }

    async fn delete_user(&self, deletion: UserDeletion) -> Result<bool> {
        let id = deletion.id.to_string();
        let now = micros(deletion.now);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let admins = lock_active_admins(conn)?;
                let Some(row) = lock_live_user(conn, &id)? else {
                    return Ok(false);
                };
                guard_last_admin(&row, &admins)?;
                diesel::update(users::table.find(&id))
                    .set((
                        users::status.eq(DELETED),
                        users::username_key.eq(None::<String>),
                        users::email_key.eq(None::<String>),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                let revoked = revoke_sessions(conn, &id, RevokeReason::UserDeleted, now, None)?;
                insert_events(conn, &audit_with_revoked(&deletion.audit, revoked))?;
                Ok(true)
            })
        })
        .await
    }

    async fn begin_login(&self, start: LoginStart) -> Result<Option<LoginBegun>> {
        let key = name_key(&start.login);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let q = users::table
                    .filter(users::username_key.eq(&key).or(users::email_key.eq(&key)))
                    .filter(users::status.ne(DELETED));
                // `as_select()` is typed by backend, so the query is built per arm.
                let row: Option<UserRow> = match conn {
                    AnyConnection::Sqlite(c) => {
                        q.select(UserRow::as_select()).get_result(c).optional()?
                    }
                    AnyConnection::Postgres(c) => q
                        .select(UserRow::as_select())
                        .for_update()
                        .get_result(c)
                        .optional()?,
                    #[cfg(feature = "mysql")]
                    AnyConnection::Mysql(c) => q
                        .select(UserRow::as_select())
                        .for_update()
                        .get_result(c)
                        .optional()?,
                };
                let Some(row) = row else {
                    return Ok(None);
                };
                let credentials = row.into_credentials()?;
                let reservation = AttemptReservation {
                    user_id: credentials.user.id,
                    network: start.network.clone(),
                    policy: start.policy,
                    now: start.now,
                };
                let attempt = lockout::reserve(conn, &reservation)?;
                let factors = crate::mfa::factors(conn, &credentials.user.id.to_string())?;
                Ok(Some(LoginBegun {
                    credentials,
                    attempt,
                    factors,
                }))
            })
        })
        .await
    }

    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        self.run(move |conn| write_transaction(conn, |conn| lockout::reserve(conn, &r)))
            .await
    }

    /// `Error::NotFound` when there is no such user.
    async fn complete_login(&self, completion: LoginCompletion) -> Result<()> {
        let LoginCompletion {
            success,
            session,
            audit,
        } = completion;
        let id = success.user_id.to_string();
        let now_us = micros(success.now);
        let session = session.map(|s| (s.max_live, SessionRow::from_new(s)));
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let target = users::table.find(&id);
                let n = diesel::update(target)
                    .set(users::last_login_at.eq(Some(now_us)))
                    .execute(conn)?;
                if n == 0 {
                    return Err(Error::NotFound.into());
                }
                // Give the attempt back only if nobody reserved another from the network
                // since: a lock set meanwhile stays.
                lockout::give_back(conn, &id, &success.network, success.attempt)?;
                lockout::remember_success(conn, &id, &success.network, success.now)?;
                if let Some(r) = &success.rehash {
                    // Only over the hash that was verified: a password change in between wins.
                    diesel::update(target.filter(users::password_hash.eq(&r.verified_hash)))
                        .set(users::password_hash.eq(&r.new_hash))
                        .execute(conn)?;
                }
                if let Some((cap, row)) = &session {
                    // Refused when the password changed since it was verified.
                    insert_session(conn, row, *cap)?;
                }
                insert_events(conn, &audit)
            })
        })
        .await
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let id = change.user_id.to_string();
        let now_us = micros(change.now);
        let keep = change.keep_session.map(|k| k.to_string());
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let Some(row) = lock_live_user(conn, &id)? else {
                    return Ok(None);
                };
                if let Some(verified) = &change.verified_hash
                    && *verified != row.password_hash
                {
                    return Err(Error::conflict(
                        ConflictKind::ChangedMeanwhile,
                        PASSWORD_CHANGED_MEANWHILE,
                    )
                    .into());
                }
                let version = row.credential_version.saturating_add(1);
                let target = users::table.find(&id);
                diesel::update(target)
                    .set((
                        users::password_hash.eq(&change.new_hash),
                        users::credential_version.eq(version),
                        users::updated_at.eq(now_us),
                    ))
                    .execute(conn)?;
                if let Some(attempt) = change.attempt {
                    lockout::give_back(conn, &id, &change.attempt_network, attempt)?;
                }
                if let Some(keep) = &keep {
                    diesel::update(
                        sessions::table
                            .filter(sessions::id.eq(keep))
                            .filter(sessions::user_id.eq(&id)),
                    )
                    .set(sessions::credential_version.eq(version))
                    .execute(conn)?;
                }
                let reason = RevokeReason::PasswordChanged;
                let revoked = revoke_sessions(conn, &id, reason, now_us, keep.as_deref())?;
                insert_events(conn, &audit_with_revoked(&change.audit, revoked))?;
                Ok(Some(revoked))
            })
        })
        .await
    }

    async fn count_active_admins(&self) -> Result<u64> {
        self.run(|conn| {
            let n: i64 = users::table
                .filter(users::role.eq(ADMIN))
                .filter(users::status.eq(ACTIVE))
                .count()
                .get_result(conn)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("bob"), "%bob%");
        assert_eq!(contains_pattern("50%_off!"), "%50!%!_off!!%");
    }
}
