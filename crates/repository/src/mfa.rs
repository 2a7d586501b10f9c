//! `MfaRepository` on [`Database`]: TOTP secrets (stored as the service layer encrypted them),
//! single-use recovery codes, the pending second step of logins, passkeys (WebAuthn credentials)
//! and the WebAuthn ceremonies in flight.
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    AuditEvent, CeremonyKind, ConflictKind, Error, FactorRemoval, MfaChallenge, MfaFactors,
    MfaRepository, OutgoingMail, PasskeyChange, RecoveryCodeSet, Result, RevokeReason,
    StoredPasskey, StoredTotp, Timestamp, TotpConfirmation, TotpEnrolment, UserId,
    WebauthnCeremony, audit_with_revoked,
};
use uuid::Uuid;

use crate::audit::insert_events;
use crate::connection::AnyConnection;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{from_micros, micros, parse_id};
use crate::recovery::queue_mail;
use crate::schema::{
    mfa_challenges, mfa_recovery_codes, mfa_totp, webauthn_ceremonies, webauthn_credentials,
};
use crate::sessions::revoke_sessions;
use crate::users::lock_live_user;

const TOTP_ENABLED: &str = "TOTP is already enabled: disable it first";
const PASSKEY_REGISTERED: &str = "this passkey is registered already";

/// The tail of every factor change's transaction: its audit rows and, when the change notifies
/// the owner, the security notice (queued with no limit; cloned, so a retried transaction
/// queues it again).
fn record(
    conn: &mut AnyConnection,
    audit: &[AuditEvent],
    mail: &Option<OutgoingMail>,
) -> Result<(), DbError> {
    insert_events(conn, audit)?;
    if let Some(m) = mail.clone() {
        queue_mail(conn, m)?;
    }
    Ok(())
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_totp)]
struct TotpRow {
    user_id: String,
    secret_enc: String,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_step: Option<i64>,
}

impl TotpRow {
    fn into_stored(self) -> Result<StoredTotp, DbError> {
        Ok(StoredTotp {
            secret_enc: self.secret_enc,
            created_at: from_micros(self.created_at)?,
            confirmed_at: self.confirmed_at.map(from_micros).transpose()?,
            last_step: self.last_step,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = mfa_recovery_codes)]
struct RecoveryCodeRow<'a> {
    user_id: &'a str,
    code_hash: &'a str,
    created_at: i64,
    used_at: Option<i64>,
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_challenges)]
struct ChallengeRow {
    token_hash: String,
    user_id: String,
    network: String,
    credential_version: i32,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl ChallengeRow {
    fn from_challenge(c: MfaChallenge) -> Self {
        Self {
            token_hash: c.token_hash,
            user_id: c.user_id.to_string(),
            network: c.network,
            credential_version: i32::try_from(c.credential_version).unwrap_or(i32::MAX),
            created_at: micros(c.created_at),
            expires_at: micros(c.expires_at),
            used_at: c.used_at.map(micros),
        }
    }

    fn into_challenge(self) -> Result<MfaChallenge, DbError> {
        let credential_version = u32::try_from(self.credential_version).map_err(|_| {
            Error::internal(format!(
                "stored credential_version {} is negative",
                self.credential_version
            ))
        })?;
        Ok(MfaChallenge {
            user_id: parse_id(&self.user_id)?,
            created_at: from_micros(self.created_at)?,
            expires_at: from_micros(self.expires_at)?,
            used_at: self.used_at.map(from_micros).transpose()?,
            token_hash: self.token_hash,
            network: self.network,
            credential_version,
        })
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_credentials)]
struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: String,
    name: String,
    credential: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl PasskeyRow {
    fn from_passkey(p: StoredPasskey) -> Self {
        Self {
            id: p.id.to_string(),
            user_id: p.user_id.to_string(),
            credential_id: p.credential_id,
            name: p.name,
            credential: p.credential,
            created_at: micros(p.created_at),
            last_used_at: p.last_used_at.map(micros),
        }
    }

    fn into_passkey(self) -> Result<StoredPasskey, DbError> {
        Ok(StoredPasskey {
            id: parse_id(&self.id)?,
            user_id: parse_id(&self.user_id)?,
            credential_id: self.credential_id,
            name: self.name,
            credential: self.credential,
            created_at: from_micros(self.created_at)?,
            last_used_at: self.last_used_at.map(from_micros).transpose()?,
        })
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_ceremonies)]
struct CeremonyRow {
    id: String,
    kind: String,
    user_id: Option<String>,
    state: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl CeremonyRow {
    fn from_ceremony(c: WebauthnCeremony) -> Self {
        Self {
            id: c.id.to_string(),
            kind: c.kind.as_str().to_owned(),
            user_id: c.user_id.map(|u| u.to_string()),
            state: c.state,
            created_at: micros(c.created_at),
            expires_at: micros(c.expires_at),
            used_at: c.used_at.map(micros),
        }
    }

    fn into_ceremony(self) -> Result<WebauthnCeremony, DbError> {
        let kind = self.kind.parse().map_err(|_| {
            Error::internal(format!("stored ceremony kind {:?} is unknown", self.kind))
        })?;
        Ok(WebauthnCeremony {
            id: parse_id(&self.id)?,
            kind,
            user_id: self.user_id.as_deref().map(parse_id).transpose()?,
            state: self.state,
            created_at: from_micros(self.created_at)?,
            expires_at: from_micros(self.expires_at)?,
            used_at: self.used_at.map(from_micros).transpose()?,
        })
    }
}

/// The TOTP row of `user_id`, locked until the transaction ends.
fn lock_totp(conn: &mut AnyConnection, user_id: &str) -> Result<Option<TotpRow>, DbError> {
    macro_rules! q {
        () => {
            mfa_totp::table.find(user_id).select(TotpRow::as_select())
        };
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    })
}

/// Replace the recovery codes of `user_id` with `hashes`, in the caller's transaction.
fn store_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> Result<(), DbError> {
    diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    // One insert per code: MultiConnection has no multi-row insert. A hash given twice is one
    // code (it is the key).
    let mut hashes: Vec<&String> = hashes.iter().collect();
    hashes.sort_unstable();
    hashes.dedup();
    for code_hash in hashes {
        diesel::insert_into(mfa_recovery_codes::table)
            .values(&RecoveryCodeRow {
                user_id,
                code_hash,
                created_at: now,
                used_at: None,
            })
            .execute(conn)?;
    }
    Ok(())
}

/// The second factors of `user_id` (in the caller's transaction, when it has one).
pub(crate) fn factors(conn: &mut AnyConnection, user_id: &str) -> Result<MfaFactors, DbError> {
    let totp = mfa_totp::table
        .find(user_id)
        .select(TotpRow::as_select())
        .get_result(conn)
        .optional()?
        .map(TotpRow::into_stored)
        .transpose()?;
    let left: i64 = mfa_recovery_codes::table
        .filter(mfa_recovery_codes::user_id.eq(user_id))
        .filter(mfa_recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?;
    let passkeys: i64 = webauthn_credentials::table
        .filter(webauthn_credentials::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(MfaFactors {
        totp,
        recovery_codes_left: u32::try_from(left).unwrap_or(u32::MAX),
        passkeys: u32::try_from(passkeys).unwrap_or(u32::MAX),
    })
}

#[async_trait]
impl MfaRepository for Database {
    async fn find_factors(&self, user_id: UserId) -> Result<MfaFactors> {
        let user_id = user_id.to_string();
        self.run(move |conn| factors(conn, &user_id)).await
    }

    async fn begin_totp(&self, enrolment: TotpEnrolment) -> Result<()> {
        let row = TotpRow {
            user_id: enrolment.user_id.to_string(),
            secret_enc: enrolment.totp.secret_enc,
            created_at: micros(enrolment.totp.created_at),
            confirmed_at: None,
            last_step: None,
        };
        let audit = enrolment.audit;
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // The user's row stays locked: enrolments of one account queue behind each other.
                if lock_live_user(conn, &row.user_id)?.is_none() {
                    return Err(Error::NotFound.into());
                }
                if lock_totp(conn, &row.user_id)?.is_some_and(|t| t.confirmed_at.is_some()) {
                    return Err(Error::conflict(ConflictKind::NotApplicable, TOTP_ENABLED).into());
                }
                // Replace a pending secret: the same statements on every backend.
                diesel::delete(
                    mfa_totp::table
                        .filter(mfa_totp::user_id.eq(&row.user_id))
                        .filter(mfa_totp::confirmed_at.is_null()),
                )
                .execute(conn)?;
                diesel::insert_into(mfa_totp::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)
            })
        })
        .await
    }

    async fn confirm_totp(&self, c: TotpConfirmation) -> Result<bool> {
        let user_id = c.user_id.to_string();
        let now = micros(c.now);
        let (secret_enc, step, hashes, audit) =
            (c.secret_enc, c.step, c.recovery_code_hashes, c.audit);
        let mail = c.mail;
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(
                    mfa_totp::table
                        .filter(mfa_totp::user_id.eq(&user_id))
                        .filter(mfa_totp::secret_enc.eq(&secret_enc))
                        .filter(mfa_totp::confirmed_at.is_null()),
                )
                .set((
                    mfa_totp::confirmed_at.eq(Some(now)),
                    mfa_totp::last_step.eq(Some(step)),
                ))
                .execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                store_recovery_codes(conn, &user_id, &hashes, now)?;
                record(conn, &audit, &mail)?;
                Ok(true)
            })
        })
        .await
    }

    async fn use_totp_step(&self, user_id: UserId, step: i64) -> Result<bool> {
        let user_id = user_id.to_string();
        self.run(move |conn| {
            // The UPDATE is the compare-and-set: of two calls with one step, one matches.
            let n = diesel::update(
                mfa_totp::table
                    .filter(mfa_totp::user_id.eq(&user_id))
                    .filter(mfa_totp::confirmed_at.is_not_null())
                    .filter(
                        mfa_totp::last_step
                            .is_null()
                            .or(mfa_totp::last_step.lt(step)),
                    ),
            )
            .set(mfa_totp::last_step.eq(Some(step)))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn replace_recovery_codes(&self, set: RecoveryCodeSet) -> Result<bool> {
        let user_id = set.user_id.to_string();
        let now = micros(set.now);
        let (hashes, audit) = (set.code_hashes, set.audit);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                if lock_totp(conn, &user_id)?.is_none_or(|t| t.confirmed_at.is_none()) {
                    return Ok(false);
                }
                store_recovery_codes(conn, &user_id, &hashes, now)?;
                insert_events(conn, &audit)?;
                Ok(true)
            })
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let user_id = user_id.to_string();
        let code_hash = code_hash.to_owned();
        let now = micros(now);
        self.run(move |conn| {
            let n = diesel::update(
                mfa_recovery_codes::table
                    .filter(mfa_recovery_codes::user_id.eq(&user_id))
                    .filter(mfa_recovery_codes::code_hash.eq(&code_hash))
                    .filter(mfa_recovery_codes::used_at.is_null()),
            )
            .set(mfa_recovery_codes::used_at.eq(Some(now)))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn remove_factors(&self, removal: FactorRemoval) -> Result<bool> {
        let user_id = removal.user_id.to_string();
        let now = micros(removal.now);
        let (revoke, audit, mail) = (removal.revoke_sessions, removal.audit, removal.mail);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let totp = diesel::delete(mfa_totp::table.find(&user_id)).execute(conn)?;
                let codes = diesel::delete(
                    mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(&user_id)),
                )
                .execute(conn)?;
                let passkeys = diesel::delete(
                    webauthn_credentials::table.filter(webauthn_credentials::user_id.eq(&user_id)),
                )
                .execute(conn)?;
                if totp + codes + passkeys == 0 {
                    return Ok(false);
                }
                // Logins waiting for a factor that is gone, and ceremonies in flight.
                diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(&user_id)))
                    .execute(conn)?;
                diesel::delete(
                    webauthn_ceremonies::table
                        .filter(webauthn_ceremonies::user_id.eq(Some(&user_id))),
                )
                .execute(conn)?;
                let revoked = if revoke {
                    revoke_sessions(conn, &user_id, RevokeReason::FactorsRemoved, now, None)?
                } else {
                    0
                };
                record(conn, &audit_with_revoked(&audit, revoked), &mail)?;
                Ok(true)
            })
        })
        .await
    }

    async fn create_mfa_challenge(&self, challenge: MfaChallenge) -> Result<()> {
        let row = ChallengeRow::from_challenge(challenge);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                diesel::delete(
                    mfa_challenges::table
                        .filter(mfa_challenges::user_id.eq(&row.user_id))
                        .filter(mfa_challenges::expires_at.lt(row.created_at)),
                )
                .execute(conn)?;
                diesel::insert_into(mfa_challenges::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn find_mfa_challenge(&self, token_hash: &str) -> Result<Option<MfaChallenge>> {
        let hash = token_hash.to_owned();
        self.run(move |conn| {
            mfa_challenges::table
                .find(&hash)
                .select(ChallengeRow::as_select())
                .get_result(conn)
                .optional()?
                .map(ChallengeRow::into_challenge)
                .transpose()
        })
        .await
    }

    async fn spend_mfa_challenge(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        let hash = token_hash.to_owned();
        let now = micros(now);
        self.run(move |conn| {
            let n = diesel::update(
                mfa_challenges::table
                    .filter(mfa_challenges::token_hash.eq(&hash))
                    .filter(mfa_challenges::used_at.is_null())
                    .filter(mfa_challenges::expires_at.gt(now)),
            )
            .set(mfa_challenges::used_at.eq(Some(now)))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<StoredPasskey>> {
        let user_id = user_id.to_string();
        self.run(move |conn| {
            webauthn_credentials::table
                .filter(webauthn_credentials::user_id.eq(&user_id))
                .order((
                    webauthn_credentials::created_at.asc(),
                    webauthn_credentials::id.asc(),
                ))
                .select(PasskeyRow::as_select())
                .load(conn)?
                .into_iter()
                .map(PasskeyRow::into_passkey)
                .collect()
        })
        .await
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<StoredPasskey>> {
        let credential_id = credential_id.to_owned();
        self.run(move |conn| {
            webauthn_credentials::table
                .filter(webauthn_credentials::credential_id.eq(&credential_id))
                .select(PasskeyRow::as_select())
                .get_result(conn)
                .optional()?
                .map(PasskeyRow::into_passkey)
                .transpose()
        })
        .await
    }

    async fn add_passkey(&self, passkey: StoredPasskey, change: PasskeyChange) -> Result<()> {
        let mut row = PasskeyRow::from_passkey(passkey);
        // The change names the owner.
        row.user_id = change.user_id.to_string();
        let (audit, mail) = (change.audit, change.mail);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                if lock_live_user(conn, &row.user_id)?.is_none() {
                    return Err(Error::NotFound.into());
                }
                diesel::insert_into(webauthn_credentials::table)
                    .values(&row)
                    .execute(conn)
                    .map_err(|e| match DbError::from(e) {
                        // Not a username or an email: the credential id (or, improbably, the
                        // random id) is taken.
                        e if e.is_unique_violation() => DbError::from(Error::conflict(
                            ConflictKind::Duplicate,
                            PASSKEY_REGISTERED,
                        )),
                        e => e,
                    })?;
                record(conn, &audit, &mail)?;
                Ok(())
            })
        })
        .await
    }

    async fn rename_passkey(&self, id: Uuid, name: &str, change: PasskeyChange) -> Result<bool> {
        let (id, name) = (id.to_string(), name.to_owned());
        let user_id = change.user_id.to_string();
        let (audit, mail) = (change.audit, change.mail);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(
                    webauthn_credentials::table
                        .filter(webauthn_credentials::id.eq(&id))
                        .filter(webauthn_credentials::user_id.eq(&user_id)),
                )
                .set(webauthn_credentials::name.eq(&name))
                .execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                record(conn, &audit, &mail)?;
                Ok(true)
            })
        })
        .await
    }

    async fn delete_passkey(&self, id: Uuid, change: PasskeyChange) -> Result<bool> {
        let id = id.to_string();
        let user_id = change.user_id.to_string();
        let (audit, mail) = (change.audit, change.mail);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::delete(
                    webauthn_credentials::table
                        .filter(webauthn_credentials::id.eq(&id))
                        .filter(webauthn_credentials::user_id.eq(&user_id)),
                )
                .execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                record(conn, &audit, &mail)?;
                Ok(true)
            })
        })
        .await
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        credential: String,
        now: Timestamp,
    ) -> Result<bool> {
        let id = id.to_string();
        let now = micros(now);
        self.run(move |conn| {
            let n = diesel::update(webauthn_credentials::table.find(&id))
                .set((
                    webauthn_credentials::credential.eq(&credential),
                    webauthn_credentials::last_used_at.eq(Some(now)),
                ))
                .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_ceremony(&self, ceremony: WebauthnCeremony) -> Result<()> {
        let row = CeremonyRow::from_ceremony(ceremony);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                diesel::delete(
                    webauthn_ceremonies::table
                        .filter(webauthn_ceremonies::expires_at.lt(row.created_at)),
                )
                .execute(conn)?;
                diesel::insert_into(webauthn_ceremonies::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        now: Timestamp,
    ) -> Result<Option<WebauthnCeremony>> {
        let id = id.to_string();
        let kind = kind.as_str();
        let now = micros(now);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // The UPDATE is the compare-and-set: of two takes, one matches.
                let n = diesel::update(
                    webauthn_ceremonies::table
                        .filter(webauthn_ceremonies::id.eq(&id))
                        .filter(webauthn_ceremonies::kind.eq(kind))
                        .filter(webauthn_ceremonies::used_at.is_null())
                        .filter(webauthn_ceremonies::expires_at.gt(now)),
                )
                .set(webauthn_ceremonies::used_at.eq(Some(now)))
                .execute(conn)?;
                if n != 1 {
                    return Ok(None);
                }
                webauthn_ceremonies::table
                    .find(&id)
                    .select(CeremonyRow::as_select())
                    .get_result(conn)?
                    .into_ceremony()
                    .map(Some)
            })
        })
        .await
    }
}
