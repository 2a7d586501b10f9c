//! Service accounts on [`Database`] (the `OidcRepository` methods that store them).
use diesel::prelude::*;
use domain::{
    AuditEvent, ConflictKind, Error, MAX_SERVICE_ACCOUNTS, Result, Scopes, StoredServiceAccount,
};
use uuid::Uuid;

use crate::audit::insert_events;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{from_micros, micros, parse_id};
use crate::schema::service_accounts;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_accounts)]
struct AccountRow {
    id: String,
    name: String,
    role: String,
    scopes: String,
    secret_hash: String,
    previous_secret_hash: Option<String>,
    previous_secret_expires_at: Option<i64>,
    created_at: i64,
    secret_rotated_at: i64,
}

impl AccountRow {
    fn from_account(a: StoredServiceAccount) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name,
            role: a.role.as_str().to_owned(),
            scopes: a.scopes.to_text(),
            secret_hash: a.secret_hash,
            previous_secret_hash: a.previous_secret_hash,
            previous_secret_expires_at: a.previous_secret_expires_at.map(micros),
            created_at: micros(a.created_at),
            secret_rotated_at: micros(a.secret_rotated_at),
        }
    }

    fn into_account(self) -> Result<StoredServiceAccount, DbError> {
        let unknown = |what: &str| {
            DbError::from(Error::internal(format!(
                "a stored service account has an unknown {what}"
            )))
        };
        Ok(StoredServiceAccount {
            id: parse_id(&self.id)?,
            name: self.name,
            role: self.role.parse().map_err(|_| unknown("role"))?,
            scopes: Scopes::parse_text(&self.scopes).ok_or_else(|| unknown("scope"))?,
            secret_hash: self.secret_hash,
            previous_secret_hash: self.previous_secret_hash,
            previous_secret_expires_at: self
                .previous_secret_expires_at
                .map(from_micros)
                .transpose()?,
            created_at: from_micros(self.created_at)?,
            secret_rotated_at: from_micros(self.secret_rotated_at)?,
        })
    }
}

impl Database {
    pub(crate) async fn insert_service_account(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<()> {
        let row = AccountRow::from_account(account);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n: i64 = service_accounts::table.count().get_result(conn)?;
                if u64::try_from(n).unwrap_or(u64::MAX) >= MAX_SERVICE_ACCOUNTS {
                    return Err(Error::conflict(
                        ConflictKind::NotApplicable,
                        format!(
                            "at most {MAX_SERVICE_ACCOUNTS} service accounts: delete one first"
                        ),
                    )
                    .into());
                }
                diesel::insert_into(service_accounts::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn service_account(&self, id: Uuid) -> Result<Option<StoredServiceAccount>> {
        let id = id.to_string();
        self.run(move |conn| {
            service_accounts::table
                .find(&id)
                .select(AccountRow::as_select())
                .get_result(conn)
                .optional()?
                .map(AccountRow::into_account)
                .transpose()
        })
        .await
    }

    pub(crate) async fn service_accounts(&self) -> Result<Vec<StoredServiceAccount>> {
        self.run(move |conn| {
            service_accounts::table
                .order((
                    service_accounts::created_at.asc(),
                    service_accounts::id.asc(),
                ))
                .select(AccountRow::as_select())
                .load(conn)?
                .into_iter()
                .map(AccountRow::into_account)
                .collect()
        })
        .await
    }

    pub(crate) async fn rotate_service_secret(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<bool> {
        let row = AccountRow::from_account(account);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(service_accounts::table.find(&row.id))
                    .set((
                        service_accounts::secret_hash.eq(&row.secret_hash),
                        service_accounts::previous_secret_hash.eq(&row.previous_secret_hash),
                        service_accounts::previous_secret_expires_at
                            .eq(row.previous_secret_expires_at),
                        service_accounts::secret_rotated_at.eq(row.secret_rotated_at),
                    ))
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

    pub(crate) async fn remove_service_account(
        &self,
        id: Uuid,
        audit: Vec<AuditEvent>,
    ) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::delete(service_accounts::table.find(&id)).execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                insert_events(conn, &audit)?;
                Ok(true)
            })
        })
        .await
    }
}
