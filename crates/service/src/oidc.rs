//! `OidcClientService`: registering the applications that log in through arcana (admin only).
//! A confidential client's secret is 256 random bits, answered once and stored as its SHA-256;
//! every change is audited in the transaction that makes it (`oidc.client.*`, the client in the
//! details, the admin as actor; never a secret).
use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    Caller, ClientId, ClientPage, ConflictKind, Error, IssuedClient, IssuedServiceAccount,
    OidcClient, OidcClientInput, OidcClientPatch, OidcClientService, Principal, RawClientQuery,
    RequestContext, Result, SecretRotationInput, ServiceAccount, ServiceAccountInput, StoredClient,
};

use crate::audit::{Event, SUCCESS};
use crate::core::Core;

/// The in-process [`OidcClientService`].
pub struct OidcClients {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for OidcClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClients").finish_non_exhaustive()
    }
}

/// A client id as typed; anything that is not one names no client.
fn client_id(s: &str) -> Result<ClientId> {
    uuid::Uuid::parse_str(s).map_err(|_| Error::NotFound)
}

/// A new secret and what is stored of it.
pub(crate) fn new_secret() -> (String, String) {
    let secret = crypto::new_refresh_token();
    let hash = crypto::sha256_hex(&secret);
    (secret, hash)
}

/// Who changes a client: an admin through the API, or the operator through the CLI (`arcana
/// oidc-client …`, which reaches the database directly and has no account).
#[derive(Debug, Clone)]
pub struct Operator<'a> {
    ctx: std::borrow::Cow<'a, RequestContext>,
    admin: Option<Principal>,
}

impl Operator<'static> {
    /// The command line.
    pub fn cli() -> Self {
        Self {
            ctx: std::borrow::Cow::Owned(RequestContext::default()),
            admin: None,
        }
    }
}

impl<'a> Operator<'a> {
    /// An admin through the API (checked by the caller).
    pub(crate) fn admin(caller: &'a domain::Caller) -> Self {
        Self {
            ctx: std::borrow::Cow::Borrowed(&caller.ctx),
            admin: Some(caller.who),
        }
    }

    pub(crate) fn ctx(&self) -> &RequestContext {
        &self.ctx
    }

    pub(crate) fn event(&self, event: Event) -> Event {
        match &self.admin {
            Some(who) => event.by(who),
            None => event.detail("via", "cli"),
        }
    }
}

impl OidcClients {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The caller, once known to be an admin (and verified, when that is required).
    async fn admin<'a>(&self, caller: &'a Caller) -> Result<Operator<'a>> {
        self.core.require_verified(&caller.who).await?;
        self.core.require_admin(&caller.who).await?;
        Ok(Operator::admin(caller))
    }

    async fn stored(&self, id: ClientId) -> Result<StoredClient> {
        self.core
            .repos
            .oidc
            .find_client(id)
            .await?
            .ok_or(Error::NotFound)
    }

    fn records(&self, op: &Operator<'_>, id: ClientId, event: Event) -> Vec<domain::AuditEvent> {
        let event = op.event(event).detail("client_id", id.to_string());
        self.core.records(&op.ctx, vec![event])
    }

    /// Write `client` (as changed by `event`); `NotFound` when it went meanwhile.
    async fn replace(&self, op: &Operator<'_>, client: StoredClient, event: Event) -> Result<()> {
        let audit = self.records(op, client.client.client_id, event);
        if self.core.repos.oidc.update_client(client, audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Register a client.
    pub async fn create(&self, op: &Operator<'_>, input: OidcClientInput) -> Result<IssuedClient> {
        let s = input.validate()?;
        let now = self.core.now();
        let client = OidcClient {
            client_id: uuid::Uuid::new_v4(),
            name: s.name,
            redirect_uris: s.redirect_uris,
            post_logout_redirect_uris: s.post_logout_redirect_uris,
            public: s.public,
            allowed_scopes: s.allowed_scopes,
            require_consent: s.require_consent,
            id_token_signed_response_alg: s.id_token_signed_response_alg,
            created_at: now,
            updated_at: now,
        };
        let (secret, secret_hash) = if client.public {
            (None, None)
        } else {
            let (secret, hash) = new_secret();
            (Some(secret), Some(hash))
        };
        let event = Event::new("oidc.client.created", SUCCESS)
            .detail("name", client.name.clone())
            .detail("public", client.public);
        let audit = self.records(op, client.client_id, event);
        let stored = StoredClient {
            client: client.clone(),
            secret_hash,
        };
        self.core.repos.oidc.create_client(stored, audit).await?;
        tracing::info!(client_id = %client.client_id, name = %client.name, "OIDC client registered");
        Ok(IssuedClient {
            client,
            client_secret: secret,
        })
    }

    /// One page of the registered clients.
    pub async fn list(&self, query: RawClientQuery) -> Result<ClientPage> {
        let query = query.parse()?;
        self.core.repos.oidc.list_clients(&query).await
    }

    /// Change some settings.
    pub async fn update(
        &self,
        op: &Operator<'_>,
        id: &str,
        patch: OidcClientPatch,
    ) -> Result<OidcClient> {
        let mut stored = self.stored(client_id(id)?).await?;
        let mut client = patch.apply(&stored.client)?;
        if client == stored.client {
            return Ok(client);
        }
        client.updated_at = self.core.now();
        let before = &stored.client;
        let changed: Vec<&str> = [
            ("name", client.name != before.name),
            (
                "redirect_uris",
                client.redirect_uris != before.redirect_uris,
            ),
            (
                "post_logout_redirect_uris",
                client.post_logout_redirect_uris != before.post_logout_redirect_uris,
            ),
            (
                "allowed_scopes",
                client.allowed_scopes != before.allowed_scopes,
            ),
            (
                "require_consent",
                client.require_consent != before.require_consent,
            ),
            (
                "id_token_signed_response_alg",
                client.id_token_signed_response_alg != before.id_token_signed_response_alg,
            ),
        ]
        .into_iter()
        .filter_map(|(field, differs)| differs.then_some(field))
        .collect();
        stored.client = client.clone();
        let event = Event::new("oidc.client.updated", SUCCESS).detail("changed", changed);
        self.replace(op, stored, event).await?;
        Ok(client)
    }

    /// Delete a client.
    pub async fn delete(&self, op: &Operator<'_>, id: &str) -> Result<()> {
        let id = client_id(id)?;
        let audit = self.records(op, id, Event::new("oidc.client.deleted", SUCCESS));
        if self
            .core
            .repos
            .oidc
            .delete_client(id, audit, self.core.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// A new secret for a confidential client.
    pub async fn rotate_secret(&self, op: &Operator<'_>, id: &str) -> Result<IssuedClient> {
        let mut stored = self.stored(client_id(id)?).await?;
        if stored.client.public {
            return Err(Error::conflict(
                ConflictKind::NotApplicable,
                "a public client has no secret",
            ));
        }
        let (secret, hash) = new_secret();
        stored.secret_hash = Some(hash);
        stored.client.updated_at = self.core.now();
        let client = stored.client.clone();
        let event = Event::new("oidc.client.secret_rotated", SUCCESS);
        self.replace(op, stored, event).await?;
        Ok(IssuedClient {
            client,
            client_secret: Some(secret),
        })
    }
}

#[async_trait]
impl OidcClientService for OidcClients {
    async fn create_client(&self, caller: &Caller, input: OidcClientInput) -> Result<IssuedClient> {
        let op = self.admin(caller).await?;
        self.create(&op, input).await
    }

    async fn list_clients(&self, caller: &Caller, query: RawClientQuery) -> Result<ClientPage> {
        self.admin(caller).await?;
        self.list(query).await
    }

    async fn get_client(&self, caller: &Caller, id: &str) -> Result<OidcClient> {
        self.admin(caller).await?;
        Ok(self.stored(client_id(id)?).await?.client)
    }

    async fn update_client(
        &self,
        caller: &Caller,
        id: &str,
        patch: OidcClientPatch,
    ) -> Result<OidcClient> {
        let op = self.admin(caller).await?;
        self.update(&op, id, patch).await
    }

    async fn delete_client(&self, caller: &Caller, id: &str) -> Result<()> {
        let op = self.admin(caller).await?;
        self.delete(&op, id).await
    }

    async fn rotate_client_secret(&self, caller: &Caller, id: &str) -> Result<IssuedClient> {
        let op = self.admin(caller).await?;
        self.rotate_secret(&op, id).await
    }

    async fn create_service_account(
        &self,
        caller: &Caller,
        input: ServiceAccountInput,
    ) -> Result<IssuedServiceAccount> {
        let op = self.admin(caller).await?;
        self.create_account(&op, input).await
    }

    async fn list_service_accounts(&self, caller: &Caller) -> Result<Vec<ServiceAccount>> {
        self.admin(caller).await?;
        self.accounts().await
    }

    async fn get_service_account(&self, caller: &Caller, id: uuid::Uuid) -> Result<ServiceAccount> {
        self.admin(caller).await?;
        self.account(id).await
    }

    async fn rotate_service_account_secret(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: SecretRotationInput,
    ) -> Result<IssuedServiceAccount> {
        let op = self.admin(caller).await?;
        self.rotate_account_secret(&op, id, input).await
    }

    async fn delete_service_account(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let op = self.admin(caller).await?;
        self.delete_account(&op, id).await
    }
}
