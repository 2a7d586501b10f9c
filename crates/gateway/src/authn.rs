//! Caller authentication at the edge.
//!
//! A bearer token is accepted when its signature and claims verify locally (`TokenVerifier`
//! holds only the public key or the HS256 secret) AND its session is still live according to the
//! service layer (`AuthService::session_live`). The liveness answer is cached per session for
//! `SESSION_CACHE_TTL`, so a logout, suspension, deletion or role change (all of which revoke
//! sessions) stops the token within that time in every deployment mode, while a busy client costs
//! one liveness lookup per session per TTL rather than one per request.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use crypto::jwt::TokenVerifier;
use domain::{AuthService, Error, Principal, SessionId};

use crate::AppState;
use crate::error::ApiError;

/// How long a session-liveness answer is trusted. Must stay well under the 5 s revocation promise.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);

pub struct Authenticator {
    verifier: Arc<TokenVerifier>,
    auth: Arc<dyn AuthService>,
    live: moka::sync::Cache<SessionId, bool>,
}

impl Authenticator {
    pub fn new(verifier: Arc<TokenVerifier>, auth: Arc<dyn AuthService>) -> Self {
        let live = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SESSION_CACHE_TTL)
            .build();
        Self {
            verifier,
            auth,
            live,
        }
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verify `token` and check its session is live.
    pub async fn authenticate(&self, token: &str) -> domain::Result<Principal> {
        let p = self.verifier.verify(token)?;
        let live = match self.live.get(&p.session_id) {
            Some(live) => live,
            None => {
                let live = self.auth.session_live(p.user_id, p.session_id).await?;
                self.live.insert(p.session_id, live);
                live
            }
        };
        if live {
            Ok(p)
        } else {
            Err(Error::Unauthorized)
        }
    }

    /// Forget what is cached about a session (this process just revoked it).
    pub fn forget(&self, sid: SessionId) {
        self.live.invalidate(&sid);
    }

    /// Forget everything cached (this process just revoked many sessions).
    pub fn forget_all(&self) {
        self.live.invalidate_all();
    }
}

/// The authenticated caller of a handler.
pub struct Caller(pub Principal);

/// The token from `Authorization: Bearer <token>`.
pub fn bearer(value: Option<&str>) -> Result<&str, Error> {
    let v = value.ok_or(Error::Unauthorized)?;
    let (scheme, token) = v.trim().split_once(' ').ok_or(Error::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized);
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = bearer(header)?;
        Ok(Caller(state.authn.authenticate(token).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        assert!(bearer(None).is_err());
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
        assert!(bearer(Some("Bearer")).is_err());
    }
}
