//! Caller authentication at the edge.
//!
//! A bearer token is accepted when its signature and claims verify locally (`TokenVerifier`
//! holds only the public key or the HS256 secret) AND its session is still live according to the
//! service layer (`AuthService::session_live`). The liveness answer is cached per session for
//! `SESSION_CACHE_TTL`, so a logout, suspension, deletion or role change (all of which revoke
//! sessions) stops the token within that time in every deployment mode, while a busy client costs
//! one liveness lookup per session per TTL rather than one per request.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use crypto::jwt::TokenVerifier;
use domain::{
    AccessToken, AuthService, Caller, Error, Principal, RevocationListener, Revoked, Role,
    SessionId, UserId,
};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Client;

/// How long a session-liveness answer is trusted. Must stay well under the 5 s revocation promise.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);

pub struct Authenticator {
    verifier: Arc<TokenVerifier>,
    auth: Arc<dyn AuthService>,
    /// Liveness per (session, role of the token): a role change leaves tokens of both roles
    /// with one session id for a moment, and only the current role's may pass.
    live: moka::sync::Cache<(SessionId, Role), Liveness>,
    /// Users whose sessions this process revoked, and when: answers looked up before that are
    /// stale. Lives as long as a cached answer can, so it stays small.
    revoked_users: moka::sync::Cache<UserId, Instant>,
}

#[derive(Clone, Copy)]
struct Liveness {
    live: bool,
    user: UserId,
    /// When the lookup started (an answer from before a revocation is stale).
    asked: Instant,
}

impl Authenticator {
    pub fn new(verifier: Arc<TokenVerifier>, auth: Arc<dyn AuthService>) -> Self {
        let live = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SESSION_CACHE_TTL)
            .build();
        let revoked_users = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SESSION_CACHE_TTL)
            .build();
        Self {
            verifier,
            auth,
            live,
            revoked_users,
        }
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verify `token` and check its session is live.
    pub async fn authenticate(&self, token: &str) -> domain::Result<Principal> {
        let p = self.verifier.verify(token)?;
        let key = (p.session_id, p.role);
        let cached = self.live.get(&key).filter(|l| {
            self.revoked_users
                .get(&l.user)
                .is_none_or(|revoked| l.asked > revoked)
        });
        let live = match cached {
            Some(l) => l.live,
            None => {
                let asked = Instant::now();
                let live = self.auth.session_live(&p).await?;
                self.live.insert(
                    key,
                    Liveness {
                        live,
                        user: p.user_id,
                        asked,
                    },
                );
                live
            }
        };
        if live {
            Ok(p)
        } else {
            Err(Error::Unauthorized)
        }
    }

    /// Forget what is cached about a session (it was just revoked).
    pub fn forget(&self, sid: SessionId) {
        for role in Role::ALL {
            self.live.invalidate(&(sid, *role));
        }
    }

    /// Forget what is cached about every session of `user` (this process just revoked them, or
    /// changed the user's role or status); other users' answers stay cached.
    pub fn forget_user(&self, user: UserId) {
        self.revoked_users.insert(user, Instant::now());
    }
}

/// Told by the ports (`domain::Revocations`) about every revocation made through this process.
impl RevocationListener for Authenticator {
    fn revoked(&self, what: Revoked) {
        match what {
            Revoked::Session(sid) => self.forget(sid),
            Revoked::User(user) => self.forget_user(user),
        }
    }
}

/// The authenticated caller of a handler, with the facts of its request.
pub struct Authed(pub Caller);

/// The token from `Authorization: Bearer <token>` (one parser for REST and both gRPC ports).
pub use rpc::service::parse_bearer as bearer;

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = AccessToken::new(bearer(header)?);
        let who = state.authn.authenticate(token.expose()).await?;
        let Client { ctx, .. } = Client::from_request_parts(parts, state).await?;
        Ok(Authed(Caller {
            who,
            ctx,
            token: Some(token),
        }))
    }
}
