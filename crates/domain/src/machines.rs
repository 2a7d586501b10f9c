//! Service accounts: principals that administrators make for other services. No password, no
//! login page: a client id and secret, used with the OAuth2 `client_credentials` grant at the
//! token endpoint, give an RFC 9068 access token that acts with the account's role, narrowed by
//! its scopes (the table of [`crate::tokens`]).
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, FieldErrors, Result};
use crate::model::{Role, Timestamp};
use crate::services::{Principal, redacted_debug};
use crate::tokens::Scopes;

/// What every service account's `client_id` starts with (then its id, 32 hex digits).
pub const SERVICE_ACCOUNT_PREFIX: &str = "sa_";
/// The longest a previous secret may keep working after a rotation.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the previous secret keeps working when a rotation names no overlap.
pub const DEFAULT_SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The most service accounts one installation holds (they are listed in one answer).
pub const MAX_SERVICE_ACCOUNTS: u64 = 1000;

/// The `client_id` of service account `id`.
pub fn service_client_id(id: Uuid) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{}", id.simple())
}

/// The service account a `client_id` names, if it has the form of one.
pub fn service_account_of(client_id: &str) -> Option<Uuid> {
    let hex = client_id.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    (hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| Uuid::parse_str(hex).ok())
    .flatten()
}

/// `POST /service-accounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceAccountInput {
    /// What calls with it ("billing sync"): 1 to 64 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*\S[^\u0000-\u001F\u007F-\u009F]*$",
            example = "billing sync"
        )
    )]
    pub name: String,
    /// `guest`, `user` or `admin`: what its calls may do, as for a person of that role.
    #[cfg_attr(feature = "openapi", schema(example = "admin"))]
    pub role: String,
    /// At least one of `users:read`, `users:write`, `audit:read`, `admin` (an admin account's).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, example = json!(["users:read"])))]
    pub scopes: Vec<String>,
}

/// `POST /service-accounts/{id}/secret`: how long the secret it replaces keeps working.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretRotationInput {
    /// Seconds, 0 to 604800 (7 days); default 86400. During it both secrets work.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 604800, example = 86400)
    )]
    pub overlap_seconds: Option<u64>,
}

impl SecretRotationInput {
    pub fn overlap(&self) -> Result<Duration> {
        match self.overlap_seconds {
            None => Ok(DEFAULT_SECRET_OVERLAP),
            Some(s) if s <= MAX_SECRET_OVERLAP.as_secs() => Ok(Duration::from_secs(s)),
            Some(_) => Err(Error::validation(
                "overlap_seconds",
                format!("must be 0 to {} (7 days)", MAX_SECRET_OVERLAP.as_secs()),
            )),
        }
    }
}

/// A service account as administrators see it: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceAccount {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: Uuid,
    pub name: String,
    /// `sa_` and the id's 32 hex digits: the `client_id` of the client-credentials grant.
    pub client_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub secret_rotated_at: Timestamp,
    /// Until when the secret the last rotation replaced still works (absent: it does not).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub previous_secret_expires_at: Option<Timestamp>,
}

/// The answer to creating an account or rotating its secret: the secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedServiceAccount {
    #[serde(flatten)]
    pub account: ServiceAccount,
    /// 43 characters of base64url (256 random bits). Shown once.
    pub client_secret: String,
}

redacted_debug!(IssuedServiceAccount, account);

/// A service account as stored: the SHA-256 (hex) of its secret and of the one before it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredServiceAccount {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub scopes: Scopes,
    pub secret_hash: String,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub secret_rotated_at: Timestamp,
}

redacted_debug!(StoredServiceAccount, id, name, role, scopes);

impl StoredServiceAccount {
    pub fn account(&self) -> ServiceAccount {
        ServiceAccount {
            id: self.id,
            name: self.name.clone(),
            client_id: service_client_id(self.id),
            role: self.role,
            scopes: self.scopes.names(),
            created_at: self.created_at,
            secret_rotated_at: self.secret_rotated_at,
            previous_secret_expires_at: self.previous_secret_expires_at,
        }
    }

    /// Whether `hash` (the SHA-256 of a presented secret) is the secret's, or the previous
    /// one's while its overlap lasts. Compares hashes, in constant time per candidate.
    pub fn accepts(&self, hash: &str, now: Timestamp, eq: impl Fn(&str, &str) -> bool) -> bool {
        let current = eq(hash, &self.secret_hash);
        let previous = match (&self.previous_secret_hash, self.previous_secret_expires_at) {
            (Some(p), Some(until)) => eq(hash, p) && now < until,
            _ => false,
        };
        current | previous
    }

    /// The caller one of its access tokens makes, with `granted` (the token's scopes) narrowed
    /// to the account's current ones; the account's id stands for user and session.
    pub fn principal(&self, granted: Scopes) -> Principal {
        Principal {
            user_id: self.id,
            session_id: self.id,
            role: self.role,
            scopes: granted.intersect(self.scopes).machine(),
        }
    }
}

/// Validate a new account's name, role and scopes (every problem named).
pub fn validate_service_account(input: &ServiceAccountInput) -> Result<(String, Role, Scopes)> {
    let mut errors = FieldErrors::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        errors.add(
            "name",
            "must be 1 to 64 characters, without control characters",
        );
    }
    let role = errors.check(
        "role",
        input.role.parse::<Role>().map_err(|e| e.to_string()),
    );
    let scopes = crate::tokens::parse_scopes(&input.scopes, role, &mut errors);
    errors.into_result()?;
    match role {
        Some(role) => Ok((name.to_owned(), role, scopes)),
        None => Err(Error::internal("a validated role went missing")),
    }
}

/// The scopes a `scope` request parameter asks for (space-separated; absent: all of the
/// account's), or `None` when it names one the account does not hold (`invalid_scope`).
pub fn requested_scopes(scope: Option<&str>, held: Scopes) -> Option<Scopes> {
    match scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(held),
        Some(text) => {
            let asked = Scopes::parse_text(text)?;
            (asked.intersect(held) == asked && !asked.is_empty()).then_some(asked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Scope;

    #[test]
    fn client_ids_name_their_account_and_nothing_else() {
        let id = Uuid::new_v4();
        let client_id = service_client_id(id);
        assert_eq!(service_account_of(&client_id), Some(id));
        assert_eq!(client_id.len(), 35);
        for bad in [
            "sa_",
            "sa_xyz",
            &id.to_string(),
            &client_id.to_uppercase(),
            &format!("{client_id}0"),
        ] {
            assert_eq!(service_account_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_previous_secret_works_only_during_its_overlap() {
        let now = chrono::Utc::now();
        let sa = StoredServiceAccount {
            id: Uuid::new_v4(),
            name: "sync".into(),
            role: Role::Admin,
            scopes: Scopes::of(&[Scope::UsersRead]),
            secret_hash: "new".into(),
            previous_secret_hash: Some("old".into()),
            previous_secret_expires_at: Some(now + chrono::Duration::seconds(10)),
            created_at: now,
            secret_rotated_at: now,
        };
        let eq = |a: &str, b: &str| a == b;
        assert!(sa.accepts("new", now, eq));
        assert!(sa.accepts("old", now, eq));
        assert!(!sa.accepts("old", now + chrono::Duration::seconds(10), eq));
        assert!(!sa.accepts("other", now, eq));
        let who = sa.principal(Scopes::of(&[Scope::UsersRead, Scope::UsersWrite]));
        assert_eq!(who.scopes.iter().collect::<Vec<_>>(), [Scope::UsersRead]);
        assert!(who.scopes.is_machine() && !who.scopes.is_session());
    }

    #[test]
    fn a_scope_parameter_may_only_narrow() {
        let held = Scopes::of(&[Scope::UsersRead, Scope::UsersWrite]);
        assert_eq!(requested_scopes(None, held), Some(held));
        assert_eq!(
            requested_scopes(Some("users:read"), held),
            Some(Scopes::of(&[Scope::UsersRead]))
        );
        assert_eq!(requested_scopes(Some("admin"), held), None);
        assert_eq!(requested_scopes(Some("users:read nope"), held), None);
    }

    #[test]
    fn inputs_name_every_bad_field() {
        let e = validate_service_account(&ServiceAccountInput {
            name: "".into(),
            role: "root".into(),
            scopes: vec!["users:read".into(), "nope".into()],
        })
        .unwrap_err();
        let Error::Validation(f) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            f.0.keys().collect::<Vec<_>>(),
            ["name", "role", "scopes[1]"]
        );
        let e = validate_service_account(&ServiceAccountInput {
            name: "sync".into(),
            role: "user".into(),
            scopes: vec!["admin".into()],
        })
        .unwrap_err();
        assert!(matches!(e, Error::Validation(_)));
    }
}
