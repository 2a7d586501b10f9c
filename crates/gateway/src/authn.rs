//! Caller authentication at the edge.
//!
//! A bearer token is accepted when its signature and claims verify locally (`TokenVerifier`
//! holds only the public key or the HS256 secret) AND its session is still live according to the
//! service layer (`AuthService::session_live`). The liveness answer is cached per session for
//! `SESSION_CACHE_TTL`, so a logout, suspension, deletion or role change (all of which revoke
//! sessions) stops the token within that time in every deployment mode, while a busy client costs
//! one liveness lookup per session per TTL rather than one per request.
//!
//! A personal access token (`arc_pat_…`) is looked up by the service layer
//! (`AuthService::token_principal`: by its SHA-256, with its owner), and a service account's
//! access token (`typ: at+jwt`) verified there with the provider's keys and its account looked
//! up; the answer is cached by the token's hash for the same TTL, so revoking it, suspending or
//! demoting its owner, deleting the account stops it within seconds, and a revocation made
//! through this process at once (the ports tell [`Authenticator`]).
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath};
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
    /// Personal access tokens by the SHA-256 of the token: the caller it made (`None`: not a
    /// live token), and when that was asked.
    tokens: moka::sync::Cache<String, (Option<Principal>, Instant)>,
    /// Sessions and tokens this process revoked, and when (as `revoked_users`).
    revoked_sessions: moka::sync::Cache<SessionId, Instant>,
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
        let tokens = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SESSION_CACHE_TTL)
            .build();
        let revoked_sessions = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SESSION_CACHE_TTL)
            .build();
        Self {
            verifier,
            auth,
            live,
            revoked_users,
            tokens,
            revoked_sessions,
        }
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verify `token` and check its session is live; or, for a personal access token, the
    /// caller it makes while it is live.
    pub async fn authenticate(&self, token: &str) -> domain::Result<Principal> {
        if token.starts_with(domain::PAT_PREFIX) || crypto::oidc::is_at_jwt(token) {
            // A personal access token, or a service account's RFC 9068 access token: the
            // service layer knows what it makes.
            return self.personal(token).await;
        }
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

    async fn personal(&self, token: &str) -> domain::Result<Principal> {
        let key = crypto::tokens::sha256_hex(token);
        let fresh = |who: &Option<Principal>, asked: Instant| {
            who.is_none_or(|p| {
                self.revoked_users
                    .get(&p.user_id)
                    .is_none_or(|at| asked > at)
                    && self
                        .revoked_sessions
                        .get(&p.session_id)
                        .is_none_or(|at| asked > at)
            })
        };
        let who = match self
            .tokens
            .get(&key)
            .filter(|(who, asked)| fresh(who, *asked))
        {
            Some((who, _)) => who,
            None => {
                let asked = Instant::now();
                let who = self.auth.token_principal(&AccessToken::new(token)).await?;
                self.tokens.insert(key, (who, asked));
                who
            }
        };
        who.ok_or(Error::Unauthorized)
    }

    /// Forget what is cached about a session or a personal access token (it was just revoked).
    pub fn forget(&self, sid: SessionId) {
        for role in Role::ALL {
            self.live.invalidate(&(sid, *role));
        }
        self.revoked_sessions.insert(sid, Instant::now());
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
        let who = state.authenticate(token.expose()).await?;
        // What a token's scopes allow on this route, per the one table (a session passes).
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        domain::admit_route(&who, parts.method.as_str(), route)?;
        let Client { ctx, .. } = Client::from_request_parts(parts, state).await?;
        Ok(Authed(Caller {
            who,
            ctx,
            token: Some(token),
        }))
    }
}

/// Middleware: a request that carries a token in its URL (`?access_token=…`, RFC 6750 §2.3, or
/// any query value that is a personal access token) is refused with `VALIDATION_FAILED` before
/// anything reads it: URLs end up in logs, proxies and browser histories. The token is not
/// checked, so the answer tells nothing about it.
pub async fn refuse_token_in_url(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().query().is_some_and(query_holds_token) {
        return ApiError::Domain(Error::validation(
            "access_token",
            "send tokens in the Authorization header, never in the URL",
        ))
        .into_response();
    }
    next.run(req).await
}

fn query_holds_token(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| {
        k.eq_ignore_ascii_case("access_token") || v.trim_start().starts_with(domain::PAT_PREFIX)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_in_queries_are_found_however_spelled() {
        use super::query_holds_token as q;
        assert!(q("access_token=abc"));
        assert!(q("a=1&ACCESS_TOKEN=x"));
        assert!(q("x=arc_pat_abcdef"));
        assert!(q("x=%61rc_pat_abcdef"), "percent-encoded");
        assert!(!q("q=alice&per_page=10"));
        assert!(!q("next=/account"));
    }
}
