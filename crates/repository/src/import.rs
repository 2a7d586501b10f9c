//! Import from arcana-cloud-python: reading its `users` table ([`LegacySource`], on any of the
//! three backends) and writing the rows into this database ([`Database::import_users`]), with
//! the mapping from the Python ids kept in `legacy_users`.
use std::collections::HashMap;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use domain::{
    AuditEvent, ConflictPolicy, Error, ImportOutcome, ImportedUser, LegacyUser, Result,
    RevokeReason, Status,
};
use uuid::Uuid;

use crate::audit::insert_events;
use crate::connection::{AnyConnection, Manager, insert_rows};
use crate::database::{Database, rehearsal, write_transaction};
use crate::error::DbError;
use crate::models::{UserRow, micros, name_key, parse_id};
use crate::schema::{legacy_users, users};
use crate::sessions::revoke_sessions;
use crate::url::{Backend, DatabaseUrl, SqliteTarget};
use crate::users::{LAST_ADMIN, guard_last_admin, lock_active_admins};

/// The audit record of a user the import created (reported to webhooks as `user.created`).
pub const IMPORTED: &str = "user.imported";
/// The audit record of an arcana user the import overwrote (`user.updated`).
pub const IMPORT_UPDATED: &str = "user.import_updated";

/// The Python deployment's database, opened for reading. SQLite files are opened read-only
/// (nothing of the source is changed, not even its journal mode).
pub struct LegacySource {
    conn: Option<AnyConnection>,
    backend: Backend,
    redacted: String,
}

#[derive(QueryableByName)]
struct LegacyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    password_hash: String,
    #[diesel(sql_type = Nullable<Text>)]
    first_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    avatar_url: Option<String>,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    is_verified: i64,
    #[diesel(sql_type = BigInt)]
    is_active: i64,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    updated_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_login_at: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl LegacySource {
    /// Connect to `url` (`sqlite://`, `postgres://`, `mysql://`; SQLAlchemy's `+driver`
    /// suffixes such as `mysql+pymysql://` are accepted).
    pub async fn open(url: &str) -> Result<Self> {
        let url = DatabaseUrl::parse(&without_driver(url))?;
        let backend = url.backend;
        let redacted = url.redacted.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let mut url = url;
            if let Some(SqliteTarget::File(path)) = &url.sqlite {
                if !path.is_file() {
                    return Err(Error::validation(
                        "from",
                        format!("{} is not a SQLite database file", path.display()),
                    ));
                }
                // A URI filename: `mode=ro` opens without creating or changing anything.
                let path = std::fs::canonicalize(path)
                    .map_err(|e| Error::validation("from", format!("{}: {e}", path.display())))?;
                let escaped = path
                    .to_string_lossy()
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23");
                url.target = format!("file:{escaped}?mode=ro");
            }
            let manager = Manager::new(url);
            manager.establish().map_err(|e| {
                Error::validation("from", format!("cannot connect to the source: {e}"))
            })
        })
        .await
        .map_err(|e| Error::internal(format!("source connection task failed: {e}")))??;
        Ok(Self {
            conn: Some(conn),
            backend,
            redacted,
        })
    }

    /// The source URL without its password.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// How many rows its `users` table holds.
    pub async fn count(&mut self) -> Result<u64> {
        let rows: Vec<Count> = self
            .with(|c| Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM users").load(c)?))
            .await?;
        Ok(rows.first().map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
    }

    /// Up to `limit` rows with an id above `after`, in id order.
    pub async fn read_after(&mut self, after: i64, limit: u32) -> Result<Vec<LegacyUser>> {
        let sql = select_legacy(self.backend, after, limit);
        let rows: Vec<LegacyRow> = self
            .with(move |c| Ok(diesel::sql_query(sql).load(c)?))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| LegacyUser {
                legacy_id: r.id,
                username: r.username,
                email: r.email,
                password_hash: r.password_hash,
                first_name: r.first_name,
                last_name: r.last_name,
                phone: r.phone,
                avatar_url: r.avatar_url,
                role: r.role,
                status: r.status,
                is_verified: r.is_verified != 0,
                is_active: r.is_active != 0,
                created_at: r.created_at,
                updated_at: r.updated_at,
                last_login_at: r.last_login_at,
            })
            .collect())
    }

    /// Run `f` on the source connection on a blocking thread. A failure names the source.
    async fn with<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T> {
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| Error::internal("the source connection was lost"))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut conn);
            (conn, result)
        })
        .await
        .map_err(|e| Error::internal(format!("source query task failed: {e}")))?;
        self.conn = Some(conn);
        result.map_err(|e| match e {
            DbError::Diesel(e) => Error::validation(
                "from",
                format!(
                    "reading the users table of arcana-cloud-python failed (is this its database?): {e}"
                ),
            ),
            DbError::Domain(e) => e,
        })
    }
}

/// `mysql+pymysql://…` → `mysql://…`: the SQLAlchemy URL of the Python deployment, as is.
fn without_driver(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.contains('+') => {
            let base = scheme.split('+').next().unwrap_or(scheme);
            format!("{base}://{rest}")
        }
        _ => url.to_owned(),
    }
}

/// The `users` rows in one shape on every backend: integers for the ids and flags, text for
/// the enums (a PostgreSQL enum type, a MySQL ENUM) and `YYYY-MM-DD HH:MM:SS.ffffff` text for
/// the naive datetimes. `after` and `limit` are integers of ours, never input text.
fn select_legacy(backend: Backend, after: i64, limit: u32) -> String {
    type Cast = fn(&str) -> String;
    let (int, text, time): (Cast, Cast, Cast) = match backend {
        Backend::Sqlite => (
            |c| format!("CAST({c} AS INTEGER)"),
            |c| format!("CAST({c} AS TEXT)"),
            |c| format!("CAST({c} AS TEXT)"),
        ),
        Backend::Postgres => (
            |c| format!("CAST(CAST({c} AS INTEGER) AS BIGINT)"),
            |c| format!("CAST({c} AS TEXT)"),
            |c| format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        ),
        Backend::Mysql => (
            |c| format!("CAST({c} AS SIGNED)"),
            |c| format!("CAST({c} AS CHAR)"),
            |c| format!("DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"),
        ),
    };
    format!(
        "SELECT {id} AS id, {username} AS username, {email} AS email, \
         {hash} AS password_hash, {first} AS first_name, {last} AS last_name, \
         {phone} AS phone, {avatar} AS avatar_url, {role} AS role, {status} AS status, \
         {verified} AS is_verified, {active} AS is_active, {created} AS created_at, \
         {updated} AS updated_at, {login} AS last_login_at \
         FROM users WHERE id > {after} ORDER BY id LIMIT {limit}",
        id = int("id"),
        username = text("username"),
        email = text("email"),
        hash = text("password_hash"),
        first = text("first_name"),
        last = text("last_name"),
        phone = text("phone"),
        avatar = text("avatar_url"),
        role = text("role"),
        status = text("status"),
        verified = int("is_verified"),
        active = int("is_active"),
        created = time("created_at"),
        updated = time("updated_at"),
        login = time("last_login_at"),
    )
}

/// A row of `legacy_users`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = legacy_users)]
struct Mapping {
    legacy_id: i64,
    user_id: String,
    row_digest: String,
    password_digest: String,
    imported_at: i64,
    updated_at: i64,
}

impl Database {
    /// Write one batch of checked rows (no two of them with the same username or email,
    /// ignoring case: the caller refuses repeats) in one transaction (or, with `dry_run`, do it and roll
    /// it back): a row imported before is unchanged, or changed in the source and then handled
    /// by `policy`, as is a row whose username or email an arcana user already has. Under
    /// [`ConflictPolicy::Fail`] a conflict rolls the whole batch back (its rows then say
    /// `Conflict`). One outcome per row, in order.
    pub async fn import_users(
        &self,
        rows: Vec<ImportedUser>,
        policy: ConflictPolicy,
        dry_run: bool,
    ) -> Result<Vec<ImportOutcome>> {
        self.run(move |conn| {
            let mut outcomes = Vec::new();
            let apply = |conn: &mut AnyConnection| {
                outcomes = import_batch(conn, &rows, policy)?;
                if policy == ConflictPolicy::Fail
                    && outcomes
                        .iter()
                        .any(|o| matches!(o, ImportOutcome::Conflict(_)))
                {
                    return Err(DbError::Domain(Error::conflict(
                        domain::ConflictKind::Duplicate,
                        "a row conflicts with an arcana user",
                    )));
                }
                Ok(())
            };
            let written = if dry_run {
                rehearsal(conn, apply)
            } else {
                write_transaction(conn, apply)
            };
            match written {
                Ok(()) => Ok(outcomes),
                // The batch was rolled back; the outcomes say which rows conflicted.
                Err(DbError::Domain(Error::Conflict { .. })) if policy == ConflictPolicy::Fail => {
                    Ok(outcomes
                        .into_iter()
                        .map(|o| match o {
                            ImportOutcome::Created(_) | ImportOutcome::Updated(_) => {
                                ImportOutcome::Skipped(
                                    "not written: the batch had a conflict".into(),
                                )
                            }
                            other => other,
                        })
                        .collect())
                }
                Err(e) => Err(e),
            }
        })
        .await
    }
}

fn import_batch(
    conn: &mut AnyConnection,
    rows: &[ImportedUser],
    policy: ConflictPolicy,
) -> Result<Vec<ImportOutcome>, DbError> {
    let now = micros(Utc::now());
    if let AnyConnection::Postgres(c) = conn {
        // The lookups below are prepared once per connection; a generic plan made while the
        // table was small would scan it on every later batch (the import slowed down with every
        // row it wrote). Planned for the actual keys, they stay index lookups.
        diesel::connection::SimpleConnection::batch_execute(
            c,
            "SET LOCAL plan_cache_mode = force_custom_plan",
        )?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.legacy_id).collect();
    let mapped: HashMap<i64, Mapping> = legacy_users::table
        .filter(legacy_users::legacy_id.eq_any(&ids))
        .select(Mapping::as_select())
        .load(conn)?
        .into_iter()
        .map(|m| (m.legacy_id, m))
        .collect();
    let usernames: Vec<String> = rows.iter().map(|r| name_key(&r.user.username)).collect();
    let emails: Vec<String> = rows.iter().map(|r| name_key(&r.user.email)).collect();
    let mapped_ids: Vec<String> = mapped.values().map(|m| m.user_id.clone()).collect();
    // Three lookups, one index each (SQLite does not combine IN lists joined by OR).
    let mut existing: Vec<UserRow> = users::table
        .filter(users::username_key.eq_any(&usernames))
        .select(UserRow::as_select())
        .load(conn)?;
    existing.extend(
        users::table
            .filter(users::email_key.eq_any(&emails))
            .select(UserRow::as_select())
            .load(conn)?,
    );
    existing.extend(
        users::table
            .filter(users::id.eq_any(&mapped_ids))
            .select(UserRow::as_select())
            .load(conn)?,
    );
    let by_id: HashMap<String, UserRow> = existing.into_iter().map(|u| (u.id.clone(), u)).collect();
    let mut by_username: HashMap<String, String> = HashMap::new();
    let mut by_email: HashMap<String, String> = HashMap::new();
    for u in by_id.values() {
        if let Some(k) = &u.username_key {
            by_username.insert(k.clone(), u.id.clone());
        }
        if let Some(k) = &u.email_key {
            by_email.insert(k.clone(), u.id.clone());
        }
    }
    // The mapping of arcana users this batch may claim: one taken by another legacy id is not.
    let claimed_by: HashMap<String, i64> = legacy_users::table
        .filter(legacy_users::user_id.eq_any(by_id.keys().cloned().collect::<Vec<_>>()))
        .select((legacy_users::user_id, legacy_users::legacy_id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let mut admins: Option<Vec<String>> = None;
    let mut events = Vec::new();
    let (mut new_users, mut new_maps) = (Vec::new(), Vec::new());
    let mut outcomes = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let live = row.user.status != Status::Deleted;
        let (ukey, ekey) = (&usernames[i], &emails[i]);
        // Whom the row would collide with: owners of its username and email other than `own`.
        let rivals = |own: Option<&str>| -> Vec<&str> {
            let mut r: Vec<&str> = [by_username.get(ukey), by_email.get(ekey)]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|id| Some(*id) != own)
                .collect();
            r.dedup();
            if live { r } else { Vec::new() }
        };
        let outcome = if let Some(m) = mapped.get(&row.legacy_id) {
            let Some(target) = by_id.get(&m.user_id) else {
                // The mapping's user is gone (it cascades): cannot happen, report it.
                outcomes.push(ImportOutcome::Refused("its arcana user vanished".into()));
                continue;
            };
            let id = parse_id(&m.user_id)?;
            if m.row_digest == row.row_digest {
                ImportOutcome::Unchanged(id)
            } else if target.status == Status::Deleted.as_str() {
                ImportOutcome::Skipped("its arcana user was deleted since the import".into())
            } else {
                match policy {
                    ConflictPolicy::Skip => ImportOutcome::Skipped(
                        "changed in the source since it was imported (--on-conflict update applies the change)"
                            .into(),
                    ),
                    ConflictPolicy::Fail => ImportOutcome::Conflict(
                        "changed in the source since it was imported".into(),
                    ),
                    ConflictPolicy::Update if !rivals(Some(&m.user_id)).is_empty() => {
                        ImportOutcome::Skipped(
                            "its new username or email belongs to another arcana user".into(),
                        )
                    }
                    ConflictPolicy::Update => {
                        let password = m.password_digest != row.password_digest;
                        overwrite(conn, target, row, password, now, &mut admins, &mut events)?
                    }
                }
            }
        } else {
            let rivals = rivals(None);
            if rivals.is_empty() {
                let mut user = UserRow::from_new(row.user.clone());
                user.updated_at = micros(row.updated_at);
                user.last_login_at = row.last_login_at.map(micros);
                new_maps.push(mapping(row, &user.id, now));
                new_users.push(user);
                events.push(audit(IMPORTED, row.user.id, row.legacy_id));
                ImportOutcome::Created(row.user.id)
            } else {
                let what = conflict_of(&by_username, &by_email, ukey, ekey);
                match (policy, rivals.as_slice()) {
                    (ConflictPolicy::Skip, _) => ImportOutcome::Skipped(format!(
                        "{what} (--on-conflict update overwrites it)"
                    )),
                    (ConflictPolicy::Fail, _) => ImportOutcome::Conflict(what),
                    (ConflictPolicy::Update, [one]) => match claimed_by.get(*one) {
                        Some(other) => ImportOutcome::Skipped(format!(
                            "{what}, imported from legacy id {other}"
                        )),
                        None => match by_id.get(*one) {
                            Some(target) => {
                                let outcome = overwrite(
                                    conn,
                                    target,
                                    row,
                                    true,
                                    now,
                                    &mut admins,
                                    &mut events,
                                )?;
                                if matches!(outcome, ImportOutcome::Updated(_)) {
                                    new_maps.push(mapping(row, &target.id, now));
                                }
                                outcome
                            }
                            None => ImportOutcome::Refused("its arcana user vanished".into()),
                        },
                    },
                    (ConflictPolicy::Update, _) => ImportOutcome::Skipped(
                        "its username and its email belong to two different arcana users".into(),
                    ),
                }
            }
        };
        outcomes.push(outcome);
    }
    insert_rows!(conn, users::table, &new_users);
    insert_rows!(conn, legacy_users::table, &new_maps);
    insert_events(conn, &events)?;
    Ok(outcomes)
}

/// Which of the row's username and email an arcana user has.
fn conflict_of(
    by_username: &HashMap<String, String>,
    by_email: &HashMap<String, String>,
    ukey: &str,
    ekey: &str,
) -> String {
    match (by_username.contains_key(ukey), by_email.contains_key(ekey)) {
        (true, true) => "an arcana user has its username and email".into(),
        (true, false) => "an arcana user has its username".into(),
        _ => "an arcana user has its email".into(),
    }
}

/// Overwrite the arcana user `target` with the source row (its password hash only when
/// `password`); sessions end when the password, role or status changed. The last active admin
/// is never demoted.
fn overwrite(
    conn: &mut AnyConnection,
    target: &UserRow,
    row: &ImportedUser,
    password: bool,
    now: i64,
    admins: &mut Option<Vec<String>>,
    events: &mut Vec<AuditEvent>,
) -> Result<ImportOutcome, DbError> {
    let u = &row.user;
    let (role, status) = (u.role.as_str(), u.status.as_str());
    if target.is_active_admin() && (u.role != domain::Role::Admin || u.status != Status::Active) {
        if admins.is_none() {
            *admins = Some(lock_active_admins(conn)?);
        }
        if guard_last_admin(target, admins.as_deref().unwrap_or_default()).is_err() {
            return Ok(ImportOutcome::Skipped(LAST_ADMIN.into()));
        }
    }
    let live = u.status != Status::Deleted;
    let email = u.email.to_lowercase();
    diesel::update(users::table.find(&target.id))
        .set((
            users::username_key.eq(live.then(|| name_key(&u.username))),
            users::username.eq(&u.username),
            users::email_key.eq(live.then(|| name_key(&email))),
            users::email.eq(&email),
            users::first_name.eq(&u.first_name),
            users::last_name.eq(&u.last_name),
            users::phone.eq(&u.phone),
            users::avatar_url.eq(&u.avatar_url),
            users::role.eq(role),
            users::status.eq(status),
            users::is_verified.eq(u.is_verified),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    if password {
        diesel::update(users::table.find(&target.id))
            .set((
                users::password_hash.eq(&u.password_hash),
                users::credential_version.eq(users::credential_version + 1),
            ))
            .execute(conn)?;
    }
    let reason = if password {
        Some(RevokeReason::PasswordChanged)
    } else if target.status != status {
        Some(RevokeReason::StatusChanged)
    } else if target.role != role {
        Some(RevokeReason::RoleChanged)
    } else {
        None
    };
    if let Some(reason) = reason {
        revoke_sessions(conn, &target.id, reason, now, None)?;
    }
    diesel::update(legacy_users::table.find(row.legacy_id))
        .set((
            legacy_users::row_digest.eq(&row.row_digest),
            legacy_users::password_digest.eq(&row.password_digest),
            legacy_users::updated_at.eq(now),
        ))
        .execute(conn)?;
    let id = parse_id(&target.id)?;
    events.push(audit(IMPORT_UPDATED, id, row.legacy_id));
    Ok(ImportOutcome::Updated(id))
}

fn mapping(row: &ImportedUser, user_id: &str, now: i64) -> Mapping {
    Mapping {
        legacy_id: row.legacy_id,
        user_id: user_id.to_owned(),
        row_digest: row.row_digest.clone(),
        password_digest: row.password_digest.clone(),
        imported_at: now,
        updated_at: now,
    }
}

fn audit(action: &str, user: Uuid, legacy_id: i64) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at: Utc::now(),
        actor_id: None,
        subject_id: Some(user),
        r#type: action.to_owned(),
        outcome: "success".into(),
        ip: None,
        request_id: None,
        details: Some(serde_json::json!({ "legacy_id": legacy_id }).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_driver_suffixes_are_dropped() {
        assert_eq!(
            without_driver("mysql+pymysql://u:p@h/db"),
            "mysql://u:p@h/db"
        );
        assert_eq!(
            without_driver("postgresql+psycopg://h/db"),
            "postgresql://h/db"
        );
        assert_eq!(without_driver("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }
}
