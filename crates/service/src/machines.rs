//! Service accounts: made, listed, rotated and deleted by admins (REST, gRPC) or the operator
//! (`arcana service-account …`), every change audited in its transaction (`service_account.*`,
//! never a secret); their `client_credentials` tokens and what those tokens make of a caller.
use std::sync::Arc;
use std::time::Duration;

use crypto::OidcKeys;

use domain::{
    Error, IssuedServiceAccount, Principal, Result, Scopes, SecretRotationInput, ServiceAccount,
    ServiceAccountInput, StoredServiceAccount, service_account_of, validate_service_account,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::{Event, SUCCESS};
use crate::core::Core;
use crate::oidc::{OidcClients, Operator, new_secret};

/// How access tokens (RFC 9068) are signed: RS256 when an RSA key is there, else EdDSA.
pub(crate) fn access_token_alg(keys: &OidcKeys) -> crypto::oidc::SigningAlg {
    use crypto::oidc::SigningAlg;
    if keys.can_sign(SigningAlg::Rs256) {
        SigningAlg::Rs256
    } else {
        SigningAlg::EdDsa
    }
}

/// The claims of a service account's access token (RFC 9068): no session, no person.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MachineClaims {
    pub iss: String,
    /// The account's id.
    pub sub: String,
    pub aud: String,
    /// `sa_…`.
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

fn event(op: &Operator<'_>, action: &'static str, account: &StoredServiceAccount) -> Event {
    op.event(Event::new(action, SUCCESS))
        .subject(account.id)
        .detail("client_id", account.account().client_id)
        .detail("name", account.name.clone())
}

impl OidcClients {
    pub async fn create_account(
        &self,
        op: &Operator<'_>,
        input: ServiceAccountInput,
    ) -> Result<IssuedServiceAccount> {
        let core = &self.core;
        let (name, role, scopes) = validate_service_account(&input)?;
        let (secret, hash) = new_secret();
        let now = core.now();
        let stored = StoredServiceAccount {
            id: Uuid::new_v4(),
            name,
            role,
            scopes,
            secret_hash: hash,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: now,
            secret_rotated_at: now,
        };
        let e = event(op, "service_account.created", &stored)
            .detail("role", role.as_str())
            .detail("scopes", scopes.to_text());
        let audit = core.records(op.ctx(), vec![e]);
        let account = stored.account();
        core.repos
            .oidc
            .create_service_account(stored, audit)
            .await?;
        Ok(IssuedServiceAccount {
            account,
            client_secret: secret,
        })
    }

    pub async fn accounts(&self) -> Result<Vec<ServiceAccount>> {
        let all = self.core.repos.oidc.list_service_accounts().await?;
        Ok(all.iter().map(StoredServiceAccount::account).collect())
    }

    async fn stored_account(&self, id: Uuid) -> Result<StoredServiceAccount> {
        self.core
            .repos
            .oidc
            .find_service_account(id)
            .await?
            .ok_or(Error::NotFound)
    }

    pub async fn account(&self, id: Uuid) -> Result<ServiceAccount> {
        Ok(self.stored_account(id).await?.account())
    }

    /// A new secret; the one it replaces keeps working for the overlap asked for.
    pub async fn rotate_account_secret(
        &self,
        op: &Operator<'_>,
        id: Uuid,
        input: SecretRotationInput,
    ) -> Result<IssuedServiceAccount> {
        let core = &self.core;
        let overlap = input.overlap()?;
        let mut stored = self.stored_account(id).await?;
        let (secret, hash) = new_secret();
        let now = core.now();
        let until = now + chrono::Duration::from_std(overlap).map_err(Error::internal)?;
        let previous = std::mem::replace(&mut stored.secret_hash, hash);
        (
            stored.previous_secret_hash,
            stored.previous_secret_expires_at,
        ) = if overlap.is_zero() {
            (None, None)
        } else {
            (Some(previous), Some(until))
        };
        stored.secret_rotated_at = now;
        let e = event(op, "service_account.secret_rotated", &stored)
            .detail("overlap_seconds", overlap.as_secs());
        let audit = core.records(op.ctx(), vec![e]);
        let account = stored.account();
        if !core
            .repos
            .oidc
            .rotate_service_account_secret(stored, audit)
            .await?
        {
            return Err(Error::NotFound);
        }
        Ok(IssuedServiceAccount {
            account,
            client_secret: secret,
        })
    }

    pub async fn delete_account(&self, op: &Operator<'_>, id: Uuid) -> Result<()> {
        let core = &self.core;
        let stored = self.stored_account(id).await?;
        let audit = core.records(
            op.ctx(),
            vec![event(op, "service_account.deleted", &stored)],
        );
        if core.repos.oidc.delete_service_account(id, audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
}

impl Core {
    /// The OpenID Connect issuer: `ARCANA_PUBLIC_URL` without a trailing slash.
    pub(crate) fn issuer(&self) -> &str {
        self.config.recovery.public_url.trim_end_matches('/')
    }

    /// The provider's keys, to sign with; an error when none is configured.
    pub(crate) fn signing_keys(&self) -> Result<Arc<OidcKeys>> {
        self.config
            .oidc_keys
            .0
            .clone()
            .ok_or_else(|| Error::internal("no OpenID Connect signing key is configured"))
    }

    /// The service account a `client_id` and secret prove, if they do (the previous secret
    /// counts while its overlap lasts).
    pub(crate) async fn service_account_by_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<StoredServiceAccount>> {
        let Some(id) = service_account_of(client_id) else {
            return Ok(None);
        };
        let Some(stored) = self.repos.oidc.find_service_account(id).await? else {
            return Ok(None);
        };
        let hash = crypto::sha256_hex(secret);
        let now = self.now();
        Ok(stored
            .accepts(&hash, now, crypto::tokens::constant_time_eq)
            .then_some(stored))
    }

    /// A service account's access token as it stands: its claims, the account (which must
    /// still exist) and the scopes it grants. `None` for anything else (an OpenID Connect
    /// user's access token included: it is no API credential).
    pub(crate) async fn machine_token(
        &self,
        token: &str,
    ) -> Result<Option<(MachineClaims, StoredServiceAccount, Scopes)>> {
        let Some(keys) = self.config.oidc_keys.0.as_deref() else {
            return Ok(None);
        };
        let Ok(claims) = keys.verify_typed::<MachineClaims>(token, "at+jwt", self.issuer()) else {
            return Ok(None);
        };
        if claims.aud != self.config.audience || claims.exp <= self.now().timestamp() {
            return Ok(None);
        }
        let Some(id) = service_account_of(&claims.client_id) else {
            return Ok(None);
        };
        let Some(granted) = Scopes::parse_text(&claims.scope) else {
            return Ok(None);
        };
        if claims.sub != id.to_string() {
            return Ok(None);
        }
        let account = self.repos.oidc.find_service_account(id).await?;
        Ok(account.map(|a| (claims, a, granted)))
    }

    /// The caller a service account's access token makes while the account exists: its role,
    /// the token's scopes narrowed to the account's current ones.
    pub(crate) async fn machine_principal(&self, token: &str) -> Result<Option<Principal>> {
        Ok(self
            .machine_token(token)
            .await?
            .map(|(_, account, granted)| account.principal(granted)))
    }

    /// How long a service account's access token lives.
    pub(crate) fn machine_token_ttl(&self) -> Duration {
        self.config.access_ttl
    }
}
