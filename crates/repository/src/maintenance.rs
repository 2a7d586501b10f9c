//! `MaintenanceRepository` on [`Database`]: job leases and bounded purges.
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{MaintenanceRepository, Result, Timestamp};

use crate::connection::AnyConnection;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::micros;
use crate::schema::{audit_events, maintenance_leases, sessions};

/// The lease row `name`: (holder, until), locked until the transaction ends.
fn lock_lease(conn: &mut AnyConnection, name: &str) -> Result<Option<(String, i64)>, DbError> {
    macro_rules! q {
        () => {
            maintenance_leases::table
                .find(name)
                .select((maintenance_leases::holder, maintenance_leases::until))
        };
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    })
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl MaintenanceRepository for Database {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let (now, until) = (micros(now), micros(until));
        self.run(move |conn| {
            let taken = write_transaction(conn, |conn| {
                match lock_lease(conn, &name)? {
                    Some((h, u)) if h != holder && u > now => return Ok(false),
                    Some(_) => {
                        diesel::update(maintenance_leases::table.find(&name))
                            .set((
                                maintenance_leases::holder.eq(&holder),
                                maintenance_leases::until.eq(until),
                            ))
                            .execute(conn)?;
                    }
                    None => {
                        diesel::insert_into(maintenance_leases::table)
                            .values((
                                maintenance_leases::name.eq(&name),
                                maintenance_leases::holder.eq(&holder),
                                maintenance_leases::until.eq(until),
                            ))
                            .execute(conn)?;
                    }
                }
                Ok(true)
            });
            match taken {
                // Another replica inserted the first lease row at the same moment.
                Err(e) if e.is_unique_violation() => Ok(false),
                other => other,
            }
        })
        .await
    }

    async fn purge_sessions(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let before = micros(before);
        self.run(move |conn| {
            let ids: Vec<String> = sessions::table
                .filter(
                    sessions::expires_at
                        .lt(before)
                        .or(sessions::revoked_at.lt(before)),
                )
                .select(sessions::id)
                .limit(i64::from(limit))
                .load(conn)?;
            if ids.is_empty() {
                return Ok(0);
            }
            let n =
                diesel::delete(sessions::table.filter(sessions::id.eq_any(&ids))).execute(conn)?;
            Ok(count(n))
        })
        .await
    }

    async fn purge_audit(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let before = micros(before);
        self.run(move |conn| {
            let ids: Vec<String> = audit_events::table
                .filter(audit_events::at.lt(before))
                .select(audit_events::id)
                .limit(i64::from(limit))
                .load(conn)?;
            if ids.is_empty() {
                return Ok(0);
            }
            let n = diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids)))
                .execute(conn)?;
            Ok(count(n))
        })
        .await
    }
}
