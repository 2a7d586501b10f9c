//! Row types and their conversions to and from the domain entities. Timestamps are stored as
//! microseconds since the Unix epoch, ids as hyphenated lower-case UUID text.
use chrono::DateTime;
use diesel::prelude::*;
use domain::{
    AuditEvent, Error, NewSession, NewUser, Session, Status, Timestamp, User, UserCredentials,
};
use uuid::Uuid;

use crate::error::DbError;
use crate::schema::{audit_events, sessions, users};

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(v: i64) -> Result<Timestamp, DbError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| Error::internal(format!("stored timestamp {v} is out of range")).into())
}

fn opt_from_micros(v: Option<i64>) -> Result<Option<Timestamp>, DbError> {
    v.map(from_micros).transpose()
}

pub(crate) fn parse_id(s: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(s).map_err(|_| Error::internal(format!("stored id {s:?} is not a UUID")).into())
}

fn parse_enum<T: std::str::FromStr>(column: &str, s: &str) -> Result<T, DbError> {
    s.parse()
        .map_err(|_| Error::internal(format!("stored {column} {s:?} is unknown")).into())
}

fn to_u32(column: &str, v: i32) -> Result<u32, DbError> {
    u32::try_from(v).map_err(|_| Error::internal(format!("stored {column} {v} is negative")).into())
}

/// The case-insensitive uniqueness key of a username or email (NULL once deleted).
pub(crate) fn name_key(s: &str) -> String {
    s.to_lowercase()
}

/// Don't derive `Debug`: the row holds the password hash.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub username_key: Option<String>,
    pub email: String,
    pub email_key: Option<String>,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub role: String,
    pub status: String,
    pub is_verified: bool,
    pub failed_login_count: i32,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
    pub credential_version: i32,
}

impl UserRow {
    pub fn from_new(u: NewUser) -> Self {
        let email = u.email.to_lowercase();
        let live = u.status != Status::Deleted;
        let created_at = micros(u.created_at);
        UserRow {
            id: u.id.to_string(),
            username_key: live.then(|| name_key(&u.username)),
            username: u.username,
            email_key: live.then(|| name_key(&email)),
            email,
            password_hash: u.password_hash,
            first_name: u.first_name,
            last_name: u.last_name,
            phone: u.phone,
            avatar_url: u.avatar_url,
            role: u.role.as_str().to_owned(),
            status: u.status.as_str().to_owned(),
            is_verified: u.is_verified,
            failed_login_count: 0,
            locked_until: None,
            created_at,
            updated_at: created_at,
            last_login_at: None,
            credential_version: 0,
        }
    }

    pub fn is_active_admin(&self) -> bool {
        self.role == domain::Role::Admin.as_str() && self.status == Status::Active.as_str()
    }

    pub fn into_user(self) -> Result<User, DbError> {
        Ok(User {
            id: parse_id(&self.id)?,
            username: self.username,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone,
            avatar_url: self.avatar_url,
            role: parse_enum("role", &self.role)?,
            status: parse_enum("status", &self.status)?,
            is_verified: self.is_verified,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            last_login_at: opt_from_micros(self.last_login_at)?,
        })
    }

    pub fn into_credentials(mut self) -> Result<UserCredentials, DbError> {
        let password_hash = std::mem::take(&mut self.password_hash);
        let failed_login_count = to_u32("failed_login_count", self.failed_login_count)?;
        let locked_until = opt_from_micros(self.locked_until)?;
        let credential_version = to_u32("credential_version", self.credential_version)?;
        Ok(UserCredentials {
            user: self.into_user()?,
            password_hash,
            failed_login_count,
            locked_until,
            credential_version,
        })
    }
}

/// `UserChanges`, with one nullable column per profile field of `domain::with_profile_fields!`.
macro_rules! user_changes {
    ($($field:ident: $parse:path = $sample:literal),* $(,)?) => {
        /// A partial update of a user; `None` leaves the column alone.
        #[derive(AsChangeset, Default)]
        #[diesel(table_name = users)]
        pub(crate) struct UserChanges {
            pub email: Option<String>,
            pub email_key: Option<String>,
            $(pub $field: Option<Option<String>>,)*
            pub role: Option<String>,
            pub status: Option<String>,
            pub is_verified: Option<bool>,
            pub password_hash: Option<String>,
            pub updated_at: Option<i64>,
        }

        impl UserChanges {
            /// The columns `update` sets, at `now`.
            pub(crate) fn of(update: &domain::UserUpdate, now: domain::Timestamp) -> Self {
                let email = update.email.as_ref().map(|e| e.to_lowercase());
                Self {
                    email_key: email.as_deref().map(name_key),
                    email,
                    $($field: update.$field.clone(),)*
                    role: update.role.map(|r| r.as_str().to_owned()),
                    status: update.status.map(|s| s.as_str().to_owned()),
                    is_verified: update.is_verified,
                    password_hash: update.password_hash.clone(),
                    updated_at: Some(micros(now)),
                }
            }
        }
    };
}
domain::with_profile_fields!(user_changes);

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub refresh_token_hash: String,
    pub generation: i32,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub credential_version: i32,
    pub previous_refresh_hash: Option<String>,
    pub rotated_at: Option<i64>,
    /// The RFC 8176 values, space-separated.
    pub amr: String,
}

impl SessionRow {
    pub fn from_new(s: NewSession) -> Self {
        let created_at = micros(s.created_at);
        SessionRow {
            id: s.id.to_string(),
            user_id: s.user_id.to_string(),
            refresh_token_hash: s.refresh_token_hash,
            generation: 0,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at,
            last_used_at: created_at,
            expires_at: micros(s.expires_at),
            revoked_at: None,
            revoked_reason: None,
            credential_version: i32::try_from(s.credential_version).unwrap_or(i32::MAX),
            previous_refresh_hash: None,
            rotated_at: None,
            amr: s.amr.join(" "),
        }
    }

    pub fn into_session(self) -> Result<Session, DbError> {
        Ok(Session {
            id: parse_id(&self.id)?,
            user_id: parse_id(&self.user_id)?,
            refresh_token_hash: self.refresh_token_hash,
            generation: to_u32("generation", self.generation)?,
            user_agent: self.user_agent,
            ip: self.ip,
            created_at: from_micros(self.created_at)?,
            last_used_at: from_micros(self.last_used_at)?,
            expires_at: from_micros(self.expires_at)?,
            revoked_at: opt_from_micros(self.revoked_at)?,
            revoked_reason: self.revoked_reason,
            credential_version: to_u32("credential_version", self.credential_version)?,
            previous_refresh_hash: self.previous_refresh_hash,
            rotated_at: opt_from_micros(self.rotated_at)?,
            amr: self.amr.split_whitespace().map(str::to_owned).collect(),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<String>,
}

impl AuditRow {
    pub fn from_event(e: AuditEvent) -> Self {
        AuditRow {
            id: e.id.to_string(),
            at: micros(e.at),
            actor_id: e.actor_id.map(|u| u.to_string()),
            subject_id: e.subject_id.map(|u| u.to_string()),
            action: e.r#type,
            outcome: e.outcome,
            ip: e.ip,
            request_id: e.request_id,
            details: e.details,
        }
    }

    pub fn into_event(self) -> Result<AuditEvent, DbError> {
        Ok(AuditEvent {
            id: parse_id(&self.id)?,
            at: from_micros(self.at)?,
            actor_id: self.actor_id.as_deref().map(parse_id).transpose()?,
            subject_id: self.subject_id.as_deref().map(parse_id).transpose()?,
            r#type: self.action,
            outcome: self.outcome,
            ip: self.ip,
            request_id: self.request_id,
            details: self.details,
        })
    }
}
