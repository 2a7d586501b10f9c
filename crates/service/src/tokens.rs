//! Personal access tokens: made, listed and revoked by their owner from a signed-in session,
//! checked (by hash) for every token verifier. A token acts for its owner with the owner's
//! current role, narrowed by its scopes (`domain::admit` applies the table); it dies with its
//! revocation, its expiry, a password change or reset (credential version), the owner's
//! suspension or deletion, and a demotion below one of its scopes.
use std::time::Duration;

use crypto::tokens::{new_refresh_token, sha256_hex};
use domain::{
    AccessToken, AccessTokenInfo, AccessTokenInput, Caller, DEFAULT_PAT_LIFETIME, Error,
    FieldErrors, IssuedAccessToken, MAX_PAT_LIFETIME, PAT_PREFIX, PAT_USE_GRANULARITY, Principal,
    Result, Role, Scopes, Status, StoredAccessToken,
};
use uuid::Uuid;

use crate::audit::{Event, SUCCESS};
use crate::auth::Auth;
use crate::passkeys::parse_name;
use crate::recovery::security_notice;

/// The shortest lifetime a token may be given.
pub(crate) const MIN_PAT_LIFETIME: Duration = Duration::from_secs(3600);
/// `arc_pat_` and 43 characters of base64url.
const PAT_LEN: usize = PAT_PREFIX.len() + 43;

/// The input's name, scopes and lifetime, or every field's problem.
fn validate(input: &AccessTokenInput, role: Role) -> Result<(String, Scopes, Duration)> {
    let mut errors = FieldErrors::new();
    let name = errors.check(
        "name",
        parse_name(&input.name)
            .map_err(|_| "must be 1 to 64 characters, without control characters".to_owned()),
    );
    let scopes = domain::parse_scopes(&input.scopes, Some(role), &mut errors);
    let lifetime = match input.expires_in {
        None => Some(DEFAULT_PAT_LIFETIME),
        Some(s) if (MIN_PAT_LIFETIME.as_secs()..=MAX_PAT_LIFETIME.as_secs()).contains(&s) => {
            Some(Duration::from_secs(s))
        }
        Some(_) => {
            errors.add(
                "expires_in",
                format!(
                    "must be {} to {} seconds (1 hour to 1 year)",
                    MIN_PAT_LIFETIME.as_secs(),
                    MAX_PAT_LIFETIME.as_secs()
                ),
            );
            None
        }
    };
    errors.into_result()?;
    match (name, lifetime) {
        (Some(name), Some(lifetime)) => Ok((name, scopes, lifetime)),
        _ => Err(Error::internal("a validated token input lost a field")),
    }
}

impl Auth {
    pub(crate) async fn create_token(
        &self,
        caller: &Caller,
        input: AccessTokenInput,
    ) -> Result<IssuedAccessToken> {
        let core = &self.core;
        let (name, scopes, lifetime) = validate(&input, caller.who.role)?;
        let creds = core
            .repos
            .users
            .find_credentials_by_id(caller.who.user_id)
            .await?
            .filter(|c| c.user.status == Status::Active)
            .ok_or(Error::Unauthorized)?;
        let token = format!("{PAT_PREFIX}{}", new_refresh_token());
        let now = core.now();
        let expires_at = now + chrono::Duration::from_std(lifetime).map_err(Error::internal)?;
        let stored = StoredAccessToken {
            id: Uuid::new_v4(),
            user_id: creds.user.id,
            name,
            token_hash: sha256_hex(&token),
            scopes,
            credential_version: creds.credential_version,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let info = stored.info();
        let event = Event::new("token.created", SUCCESS)
            .own(creds.user.id)
            .detail("token_id", info.id.to_string())
            .detail("name", info.name.clone())
            .detail("scopes", scopes.to_text())
            .detail("expires_at", expires_at.to_rfc3339());
        let audit = core.records(&caller.ctx, vec![event]);
        // The owner hears of it (a stolen session could mint one): what, never the name given.
        let change = format!(
            "a personal access token was created (scopes: {}; it expires {})",
            scopes.names().join(", "),
            expires_at.format("%Y-%m-%d %H:%M UTC")
        );
        let mail = security_notice(&core.config.recovery, &creds.user, &change, now);
        core.repos
            .tokens
            .create_access_token(stored, audit, Some(mail))
            .await?;
        core.mail_queued.notify_waiters();
        Ok(IssuedAccessToken { info, token })
    }

    pub(crate) async fn tokens_of(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>> {
        let core = &self.core;
        Ok(core
            .repos
            .tokens
            .list_access_tokens(caller.who.user_id, core.now())
            .await?
            .iter()
            .map(StoredAccessToken::info)
            .collect())
    }

    pub(crate) async fn revoke_token(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let core = &self.core;
        let user = caller.who.user_id;
        let event = Event::new("token.revoked", SUCCESS)
            .own(user)
            .detail("token_id", id.to_string());
        let audit = core.records(&caller.ctx, vec![event]);
        let now = core.now();
        if core
            .repos
            .tokens
            .revoke_access_token(user, id, audit, now)
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// The caller a live personal access token or a service account's access token makes;
    /// `None` for anything else. Records a personal token's use (at most one write a minute).
    pub(crate) async fn principal_of(&self, token: &AccessToken) -> Result<Option<Principal>> {
        let token = token.expose();
        if !token.starts_with(PAT_PREFIX) {
            // A service account's access token, or nothing.
            return self.core.machine_principal(token).await;
        }
        if token.len() != PAT_LEN {
            return Ok(None);
        }
        let core = &self.core;
        let Some(owner) = core
            .repos
            .tokens
            .find_access_token(&sha256_hex(token))
            .await?
        else {
            return Ok(None);
        };
        let now = core.now();
        if !owner.is_live(now) {
            return Ok(None);
        }
        let granularity = chrono::Duration::from_std(PAT_USE_GRANULARITY).unwrap_or_default();
        if owner
            .token
            .last_used_at
            .is_none_or(|at| now - at >= granularity)
        {
            // Best effort: a lost "last used" never refuses the call.
            if let Err(e) = core
                .repos
                .tokens
                .touch_access_token(owner.token.id, now)
                .await
            {
                tracing::warn!(error = %e, token_id = %owner.token.id, "token use not recorded");
            }
        }
        Ok(Some(owner.principal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Scope;

    fn input(name: &str, scopes: &[&str], expires_in: Option<u64>) -> AccessTokenInput {
        AccessTokenInput {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_in,
        }
    }

    #[test]
    fn every_field_is_checked_and_named() {
        let e = validate(&input(" ", &["users:read", "root"], Some(10)), Role::User).unwrap_err();
        let Error::Validation(f) = e else {
            panic!("{e:?}")
        };
        let fields: Vec<&String> = f.0.keys().collect();
        assert_eq!(fields, ["expires_in", "name", "scopes[1]"]);
        assert!(validate(&input("ci", &[], None), Role::User).is_err());
        assert!(
            validate(
                &input("ci", &["users:read"], Some(MAX_PAT_LIFETIME.as_secs() + 1)),
                Role::User
            )
            .is_err()
        );
    }

    #[test]
    fn admin_scope_is_for_admins_and_the_default_lifetime_is_thirty_days() {
        assert!(validate(&input("ci", &["admin"], None), Role::User).is_err());
        let (name, scopes, lifetime) =
            validate(&input(" ci ", &["admin", "users:read"], None), Role::Admin).unwrap();
        assert_eq!(name, "ci");
        assert_eq!(scopes, Scopes::of(&[Scope::Admin, Scope::UsersRead]));
        assert_eq!(lifetime, DEFAULT_PAT_LIFETIME);
    }
}
