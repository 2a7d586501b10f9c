//! `OidcRepository` on [`Database`]: the registered OpenID Connect clients.
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{
    AuditEvent, ClientId, ClientPage, ClientQuery, Error, IdTokenAlg, MAX_PER_PAGE, OidcClient,
    OidcRepository, Result, StoredClient,
};

use crate::audit::insert_events;
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{from_micros, micros, parse_id};
use crate::schema::oidc_clients;

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

    async fn delete_client(&self, id: ClientId, audit: Vec<AuditEvent>) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn| {
            write_transaction(conn, |conn| {
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
}
