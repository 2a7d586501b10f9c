//! Login failures per (account, client network): the reservation taken before a password is
//! evaluated, the success that gives it back, and the reset that clears them. Every writer holds
//! the user's row (locked, or SQLite's write transaction) before touching `login_networks`, so
//! one account's rows change one request at a time.
use chrono::TimeDelta;
use diesel::prelude::*;
use domain::{AttemptReservation, Error, LoginAttempt, Timestamp};

use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::models::{from_micros, micros};
use crate::schema::{login_networks, users};

const DELETED: &str = "deleted";

/// The row of (`user_id`, `network`): failures, lock, last success.
type NetworkRow = (i32, Option<i64>, Option<i64>);

fn network_row(
    conn: &mut AnyConnection,
    user_id: &str,
    network: &str,
) -> Result<Option<NetworkRow>, DbError> {
    Ok(login_networks::table
        .find((user_id, network))
        .select((
            login_networks::failed_count,
            login_networks::locked_until,
            login_networks::last_success_at,
        ))
        .get_result(conn)
        .optional()?)
}

/// Insert the row of (`user_id`, `network`) when it is missing, so it can be updated.
fn ensure_network_row(
    conn: &mut AnyConnection,
    user_id: &str,
    network: &str,
) -> Result<Option<NetworkRow>, DbError> {
    let row = network_row(conn, user_id, network)?;
    if row.is_none() {
        diesel::insert_into(login_networks::table)
            .values((
                login_networks::user_id.eq(user_id),
                login_networks::network.eq(network),
                login_networks::failed_count.eq(0),
            ))
            .execute(conn)?;
    }
    Ok(row)
}

/// Take one attempt of (`r.user_id`, `r.network`) in the caller's transaction: see
/// [`LoginAttempt`].
pub(crate) fn reserve(
    conn: &mut AnyConnection,
    r: &AttemptReservation,
) -> Result<LoginAttempt, DbError> {
    let id = r.user_id.to_string();
    let now_us = micros(r.now);
    let q = users::table
        .find(&id)
        .filter(users::status.ne(DELETED))
        .select(users::failed_login_count);
    let account: Option<i32> = match conn {
        AnyConnection::Sqlite(c) => q.get_result(c).optional()?,
        AnyConnection::Postgres(c) => q.for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q.for_update().get_result(c).optional()?,
    };
    let Some(account) = account else {
        return Ok(LoginAttempt::UnknownUser);
    };
    let (count, locked_until, last_success) =
        ensure_network_row(conn, &id, &r.network)?.unwrap_or((0, None, None));
    if let Some(until) = locked_until.filter(|u| *u > now_us) {
        return Ok(LoginAttempt::Locked {
            locked_until: from_micros(until)?,
        });
    }
    // Counted as a failure now, before the password is looked at; a success gives it back.
    // The attempt that takes the network's last one locks the network at once.
    let attempt = u32::try_from(count).unwrap_or(0).saturating_add(1);
    let lock_until = r
        .policy
        .lock_for(attempt)
        .map(|d| {
            TimeDelta::from_std(d)
                .ok()
                .and_then(|d| r.now.checked_add_signed(d))
                .map(micros)
                .ok_or_else(|| Error::internal("lock duration out of range"))
        })
        .transpose()?;
    diesel::update(login_networks::table.find((&id, &r.network)))
        .set((
            login_networks::failed_count.eq(i32::try_from(attempt).unwrap_or(i32::MAX)),
            login_networks::locked_until.eq(lock_until),
            login_networks::last_failure_at.eq(Some(now_us)),
        ))
        .execute(conn)?;
    let account_failures = u32::try_from(account).unwrap_or(0).saturating_add(1);
    diesel::update(users::table.find(&id))
        .set(users::failed_login_count.eq(i32::try_from(account_failures).unwrap_or(i32::MAX)))
        .execute(conn)?;
    Ok(LoginAttempt::Reserved {
        attempt,
        locked_until: lock_until.map(from_micros).transpose()?,
        account_failures,
        last_success: last_success.map(from_micros).transpose()?,
    })
}

/// Give the reserved `attempt` of (`user_id`, `network`) back, only if no other attempt was
/// reserved from that network since (a lock set meanwhile stays); the account-wide count is
/// cleared. The caller holds the user's row.
pub(crate) fn give_back(
    conn: &mut AnyConnection,
    user_id: &str,
    network: &str,
    attempt: u32,
) -> Result<(), DbError> {
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    diesel::update(
        login_networks::table
            .find((user_id, network))
            .filter(login_networks::failed_count.eq(attempt)),
    )
    .set((
        login_networks::failed_count.eq(0),
        login_networks::locked_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    diesel::update(users::table.find(user_id))
        .set(users::failed_login_count.eq(0))
        .execute(conn)?;
    Ok(())
}

/// The owner signed in from `network` at `now`: it is known from now on.
pub(crate) fn remember_success(
    conn: &mut AnyConnection,
    user_id: &str,
    network: &str,
    now: Timestamp,
) -> Result<(), DbError> {
    // The reservation made the row; insert only if it was purged since.
    let now = Some(micros(now));
    let updated = diesel::update(login_networks::table.find((user_id, network)))
        .set(login_networks::last_success_at.eq(now))
        .execute(conn)?;
    // (MySQL counts changed rows: an unchanged one answers 0 too, hence the look.)
    if updated == 0 && network_row(conn, user_id, network)?.is_none() {
        diesel::insert_into(login_networks::table)
            .values((
                login_networks::user_id.eq(user_id),
                login_networks::network.eq(network),
                login_networks::failed_count.eq(0),
                login_networks::last_success_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Every failure and lock of `user_id` cleared (a password reset proved the mailbox); the
/// known networks stay known.
pub(crate) fn clear(conn: &mut AnyConnection, user_id: &str) -> Result<(), DbError> {
    diesel::update(login_networks::table.filter(login_networks::user_id.eq(user_id)))
        .set((
            login_networks::failed_count.eq(0),
            login_networks::locked_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    diesel::update(users::table.find(user_id))
        .set((
            users::failed_login_count.eq(0),
            users::locked_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// [`domain::KNOWN_NETWORK_WINDOW`] in microseconds.
pub(crate) fn known_window_micros() -> i64 {
    i64::try_from(domain::KNOWN_NETWORK_WINDOW.as_micros()).unwrap_or(i64::MAX)
}

/// Delete the rows of networks that neither failed nor succeeded since `before` (and hold no
/// lock beyond it).
pub(crate) fn purge(conn: &mut AnyConnection, before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(
        login_networks::table
            .filter(
                login_networks::last_failure_at
                    .is_null()
                    .or(login_networks::last_failure_at.lt(before)),
            )
            .filter(
                login_networks::last_success_at
                    .is_null()
                    .or(login_networks::last_success_at.lt(before)),
            )
            .filter(
                login_networks::locked_until
                    .is_null()
                    .or(login_networks::locked_until.lt(before)),
            ),
    )
    .execute(conn)?)
}
