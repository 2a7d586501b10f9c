//! `OidcRepository` on [`Database`]: the registered OpenID Connect clients.
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    AuditEvent, ClientId, ClientPage, ClientQuery, CodeRedemption, Consent, Error, Grant,
    IdTokenAlg, MAX_PER_PAGE, NewCode, OidcClient, OidcRepository, Redeemed, Result, RevokeReason,
    SessionId, StoredClient, StoredCode, StoredServiceAccount, UserId,
};

use crate::audit::insert_events;
use crate::connection::AnyConnection;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{SessionRow, from_micros, micros, parse_id};
use crate::schema::{oidc_clients, oidc_codes, oidc_consents, oidc_grants, sessions};
use crate::sessions::insert_session;

fn scope_list(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_codes)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    user_id: String,
    sso_session_id: String,
    redirect_uri: String,
    scopes: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    session_id: Option<String>,
}

impl CodeRow {
    fn from_new(c: NewCode) -> Self {
        Self {
            code_hash: c.code_hash,
            client_id: c.client_id.to_string(),
            user_id: c.user_id.to_string(),
            sso_session_id: c.sso_session_id.to_string(),
            redirect_uri: c.redirect_uri,
            scopes: c.scopes.join(" "),
            nonce: c.nonce,
            code_challenge: c.code_challenge,
            auth_time: micros(c.auth_time),
            created_at: micros(c.created_at),
            expires_at: micros(c.expires_at),
            used_at: None,
            session_id: None,
        }
    }

    fn into_stored(self) -> Result<StoredCode, DbError> {
        Ok(StoredCode {
            code: NewCode {
                client_id: parse_id(&self.client_id)?,
                user_id: parse_id(&self.user_id)?,
                sso_session_id: parse_id(&self.sso_session_id)?,
                scopes: scope_list(&self.scopes),
                auth_time: from_micros(self.auth_time)?,
                created_at: from_micros(self.created_at)?,
                expires_at: from_micros(self.expires_at)?,
                code_hash: self.code_hash,
                redirect_uri: self.redirect_uri,
                nonce: self.nonce,
                code_challenge: self.code_challenge,
            },
            used_at: self.used_at.map(from_micros).transpose()?,
            session_id: self.session_id.as_deref().map(parse_id).transpose()?,
        })
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_grants)]
struct GrantRow {
    session_id: String,
    client_id: String,
    sso_session_id: String,
    scopes: String,
    auth_time: i64,
}

impl GrantRow {
    fn into_grant(self) -> Result<Grant, DbError> {
        Ok(Grant {
            session_id: parse_id(&self.session_id)?,
            client_id: parse_id(&self.client_id)?,
            sso_session_id: parse_id(&self.sso_session_id)?,
            scopes: scope_list(&self.scopes),
            auth_time: from_micros(self.auth_time)?,
        })
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_consents)]
struct ConsentRow {
    user_id: String,
    client_id: String,
    scopes: String,
    granted_at: i64,
}

/// The code row, locked until the transaction ends.
fn lock_code(conn: &mut AnyConnection, code_hash: &str) -> Result<Option<CodeRow>, DbError> {
    macro_rules! q {
        () => {
            oidc_codes::table
                .find(code_hash)
                .select(CodeRow::as_select())
        };
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => q!().get_result(c).optional()?,
        AnyConnection::Postgres(c) => q!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => q!().for_update().get_result(c).optional()?,
    })
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_clients)]
struct ClientRow {
    client_id: String,
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    is_public: bool,
    allowed_scopes: String,
    require_consent: bool,
    id_token_alg: String,
    secret_hash: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn uri_list(column: &str, s: &str) -> Result<Vec<String>, DbError> {
    serde_json::from_str(s)
        .map_err(|_| Error::internal(format!("stored {column} is not a JSON list")).into())
}

impl ClientRow {
    fn from_stored(s: StoredClient) -> Self {
        let c = s.client;
        Self {
            client_id: c.client_id.to_string(),
            name: c.name,
            // Serialising a list of strings cannot fail.
            redirect_uris: serde_json::to_string(&c.redirect_uris).unwrap_or_default(),
            post_logout_redirect_uris: serde_json::to_string(&c.post_logout_redirect_uris)
                .unwrap_or_default(),
            is_public: c.public,
            allowed_scopes: c.allowed_scopes.join(" "),
            require_consent: c.require_consent,
            id_token_alg: c.id_token_signed_response_alg.as_str().to_owned(),
            secret_hash: s.secret_hash,
            created_at: micros(c.created_at),
            updated_at: micros(c.updated_at),
        }
    }

    fn into_stored(self) -> Result<StoredClient, DbError> {
        let alg = IdTokenAlg::parse(&self.id_token_alg).map_err(|_| {
            Error::internal(format!(
                "stored id_token_alg {:?} is unknown",
                self.id_token_alg
            ))
        })?;
        Ok(StoredClient {
            client: OidcClient {
                client_id: parse_id(&self.client_id)?,
                name: self.name,
                redirect_uris: uri_list("redirect_uris", &self.redirect_uris)?,
                post_logout_redirect_uris: uri_list(
                    "post_logout_redirect_uris",
                    &self.post_logout_redirect_uris,
                )?,
                public: self.is_public,
                allowed_scopes: self
                    .allowed_scopes
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                require_consent: self.require_consent,
                id_token_signed_response_alg: alg,
                created_at: from_micros(self.created_at)?,
                updated_at: from_micros(self.updated_at)?,
            },
            secret_hash: self.secret_hash,
        })
    }
}

#[async_trait]
impl OidcRepository for Database {
    async fn create_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<()> {
        let row = ClientRow::from_stored(client);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                diesel::insert_into(oidc_clients::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)
            })
        })
        .await
    }

    async fn find_client(&self, id: ClientId) -> Result<Option<StoredClient>> {
        let id = id.to_string();
        self.run(move |conn| {
            oidc_clients::table
                .find(&id)
                .select(ClientRow::as_select())
                .get_result(conn)
                .optional()?
                .map(ClientRow::into_stored)
                .transpose()
        })
        .await
    }

    async fn list_clients(&self, query: &ClientQuery) -> Result<ClientPage> {
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let after = query.after.map(|id| id.to_string());
        self.run(move |conn| {
            let mut sel = oidc_clients::table
                .select(ClientRow::as_select())
                .into_boxed::<crate::connection::MultiBackend>();
            if let Some(after) = after {
                sel = sel.filter(oidc_clients::client_id.gt(after));
            }
            let rows = sel
                .order_by(oidc_clients::client_id.asc())
                .limit(i64::from(per_page) + 1)
                .load::<ClientRow>(conn)?;
            let clients = rows
                .into_iter()
                .map(|r| r.into_stored().map(|s| s.client))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ClientPage::of(clients, per_page))
        })
        .await
    }

    async fn update_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<bool> {
        let row = ClientRow::from_stored(client);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(oidc_clients::table.find(&row.client_id))
                    .set((
                        oidc_clients::name.eq(&row.name),
                        oidc_clients::redirect_uris.eq(&row.redirect_uris),
                        oidc_clients::post_logout_redirect_uris.eq(&row.post_logout_redirect_uris),
                        oidc_clients::is_public.eq(row.is_public),
                        oidc_clients::allowed_scopes.eq(&row.allowed_scopes),
                        oidc_clients::require_consent.eq(row.require_consent),
                        oidc_clients::id_token_alg.eq(&row.id_token_alg),
                        oidc_clients::secret_hash.eq(&row.secret_hash),
                        oidc_clients::updated_at.eq(row.updated_at),
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

    async fn delete_client(
        &self,
        id: ClientId,
        audit: Vec<AuditEvent>,
        now: domain::Timestamp,
    ) -> Result<bool> {
        let id = id.to_string();
        let now = micros(now);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // The sessions issued to it go first (the grants that name them go with it).
                let issued = oidc_grants::table
                    .filter(oidc_grants::client_id.eq(&id))
                    .select(oidc_grants::session_id);
                diesel::update(
                    sessions::table
                        .filter(sessions::id.eq_any(issued))
                        .filter(sessions::revoked_at.is_null()),
                )
                .set((
                    sessions::revoked_at.eq(Some(now)),
                    sessions::revoked_reason.eq(Some(RevokeReason::ClientDeleted.as_str())),
                ))
                .execute(conn)?;
                let n = diesel::delete(oidc_clients::table.find(&id)).execute(conn)?;
                if n == 0 {
                    return Ok(false);
                }
                insert_events(conn, &audit)?;
                Ok(true)
            })
        })
        .await
    }

    async fn create_code(&self, code: NewCode) -> Result<()> {
        let row = CodeRow::from_new(code);
        self.run(move |conn| {
            diesel::insert_into(oidc_codes::table)
                .values(&row)
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn find_code(&self, code_hash: &str) -> Result<Option<StoredCode>> {
        let hash = code_hash.to_owned();
        self.run(move |conn| {
            oidc_codes::table
                .find(&hash)
                .select(CodeRow::as_select())
                .get_result(conn)
                .optional()?
                .map(CodeRow::into_stored)
                .transpose()
        })
        .await
    }

    async fn redeem_code(&self, r: CodeRedemption) -> Result<Redeemed> {
        let now = micros(r.now);
        let cap = r.session.max_live;
        let session = SessionRow::from_new(r.session);
        let (hash, audit, reuse_audit) = (r.code_hash, r.audit, r.reuse_audit);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let Some(code) = lock_code(conn, &hash)? else {
                    return Ok(Redeemed::Unusable);
                };
                if code.used_at.is_some() {
                    // Spent before: whoever holds the tokens from it may be the thief.
                    let revoked = match &code.session_id {
                        Some(sid) => diesel::update(
                            sessions::table
                                .filter(sessions::id.eq(sid))
                                .filter(sessions::revoked_at.is_null()),
                        )
                        .set((
                            sessions::revoked_at.eq(Some(now)),
                            sessions::revoked_reason.eq(Some(RevokeReason::CodeReuse.as_str())),
                        ))
                        .execute(conn)?,
                        None => 0,
                    };
                    insert_events(conn, &reuse_audit)?;
                    return Ok(Redeemed::Reused {
                        revoked: revoked as u64,
                    });
                }
                if code.expires_at <= now || code.user_id != session.user_id {
                    return Ok(Redeemed::Unusable);
                }
                insert_session(conn, &session, cap)?;
                let grant = GrantRow {
                    session_id: session.id.clone(),
                    client_id: code.client_id.clone(),
                    sso_session_id: code.sso_session_id.clone(),
                    scopes: code.scopes.clone(),
                    auth_time: code.auth_time,
                };
                diesel::insert_into(oidc_grants::table)
                    .values(&grant)
                    .execute(conn)?;
                diesel::update(oidc_codes::table.find(&hash))
                    .set((
                        oidc_codes::used_at.eq(Some(now)),
                        oidc_codes::session_id.eq(Some(&session.id)),
                    ))
                    .execute(conn)?;
                insert_events(conn, &audit)?;
                Ok(Redeemed::Issued(grant.into_grant()?))
            })
        })
        .await
    }

    async fn find_grant(&self, session_id: SessionId) -> Result<Option<Grant>> {
        let id = session_id.to_string();
        self.run(move |conn| {
            oidc_grants::table
                .find(&id)
                .select(GrantRow::as_select())
                .get_result(conn)
                .optional()?
                .map(GrantRow::into_grant)
                .transpose()
        })
        .await
    }

    async fn find_consent(&self, user_id: UserId, client_id: ClientId) -> Result<Option<Consent>> {
        let key = (user_id.to_string(), client_id.to_string());
        self.run(move |conn| {
            let row: Option<ConsentRow> = oidc_consents::table
                .find((&key.0, &key.1))
                .select(ConsentRow::as_select())
                .get_result(conn)
                .optional()?;
            row.map(|r| {
                Ok(Consent {
                    user_id: parse_id(&r.user_id)?,
                    client_id: parse_id(&r.client_id)?,
                    scopes: scope_list(&r.scopes),
                    granted_at: from_micros(r.granted_at)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_consent(&self, consent: Consent, audit: Vec<AuditEvent>) -> Result<()> {
        let row = ConsentRow {
            user_id: consent.user_id.to_string(),
            client_id: consent.client_id.to_string(),
            scopes: consent.scopes.join(" "),
            granted_at: micros(consent.granted_at),
        };
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                // Replace: the same statements on every backend.
                diesel::delete(oidc_consents::table.find((&row.user_id, &row.client_id)))
                    .execute(conn)?;
                diesel::insert_into(oidc_consents::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)
            })
        })
        .await
    }

    async fn end_sso_session(&self, end: domain::SessionEnd) -> Result<u64> {
        let id = end.id.to_string();
        let owner = end.user_id.map(|u| u.to_string());
        let now = micros(end.now);
        let reason = end.reason.as_str();
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let mine = sessions::table
                    .filter(sessions::id.eq(&id))
                    .select(sessions::user_id)
                    .get_result::<String>(conn)
                    .optional()?;
                if mine.is_none() || owner.as_ref().is_some_and(|o| Some(o) != mine.as_ref()) {
                    return Ok(0);
                }
                let issued = oidc_grants::table
                    .filter(oidc_grants::sso_session_id.eq(&id))
                    .select(oidc_grants::session_id);
                let n = diesel::update(
                    sessions::table
                        .filter(sessions::id.eq(&id).or(sessions::id.eq_any(issued)))
                        .filter(sessions::revoked_at.is_null()),
                )
                .set((
                    sessions::revoked_at.eq(Some(now)),
                    sessions::revoked_reason.eq(Some(reason)),
                ))
                .execute(conn)?;
                if n > 0 {
                    insert_events(conn, &domain::audit_with_revoked(&end.audit, n as u64))?;
                }
                Ok(n as u64)
            })
        })
        .await
    }

    async fn create_service_account(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<()> {
        self.insert_service_account(account, audit).await
    }
    async fn find_service_account(&self, id: uuid::Uuid) -> Result<Option<StoredServiceAccount>> {
        self.service_account(id).await
    }
    async fn list_service_accounts(&self) -> Result<Vec<StoredServiceAccount>> {
        self.service_accounts().await
    }
    async fn rotate_service_account_secret(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<bool> {
        self.rotate_service_secret(account, audit).await
    }
    async fn delete_service_account(&self, id: uuid::Uuid, audit: Vec<AuditEvent>) -> Result<bool> {
        self.remove_service_account(id, audit).await
    }
}
