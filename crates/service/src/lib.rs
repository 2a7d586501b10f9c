//! arcana service layer: the business rules of authentication and user administration.
//!
//! [`Auth`] implements [`domain::AuthService`] (register, login, lockout, refresh-token
//! rotation, logout, sessions) and [`Users`] implements [`domain::UserService`] (the admin and
//! self-service user operations). Both work only through the repository ports
//! ([`domain::UserRepository`], [`domain::SessionRepository`], [`domain::AuditRepository`]), so
//! the same code runs in the monolith (diesel adapters in-process) and in the service binaries
//! (gRPC clients of the repository layer). The rules know nothing of HTTP, gRPC or SQL (no
//! tonic, no diesel); the `rpc` crate serves the two ports over gRPC and implements them as gRPC
//! clients, so a gateway can hold this layer in-process or remote without noticing.
//!
//! # Passwords
//! Hashing and verification are CPU-bound (PBKDF2-SHA256, 600k iterations ≈ 80 ms). They run on
//! the [`Hasher`]: a fixed pool of OS threads fed by a bounded queue, never on the async
//! workers. When the queue is full the request fails at once with `Error::Unavailable` (503)
//! instead of queueing without bound; [`Hasher::queue_depth`] feeds the metrics.
//!
//! # Tokens
//! Login, registration and refresh create or rotate a *session* (one refresh-token family) and
//! return a pair:
//! - the **refresh token** `<session id, 32 hex>.<256 random bits, base64url>`; only its SHA-256
//!   is stored. Refresh swaps the stored hash with a compare-and-swap
//!   ([`domain::SessionRepository::rotate`]); presenting a token that is no longer current (an
//!   older one of the family, or the loser of a race) revokes the whole session
//!   (`refresh_reuse`) — theft detection;
//! - the **access token**, a JWT (see [`crypto::jwt`]) carrying `sub`, `role` and `sid`, the
//!   session id.
//!
//! # Revocation design: effective within 5 seconds in every mode
//! A JWT cannot be recalled, so the access token alone is never enough: every verifier (the
//! gateway, in every deployment mode) first checks the signature and claims locally, then asks
//! [`domain::AuthService::session_live`]`(sub, sid)` — "does this session exist for this user,
//! unrevoked and unexpired, and is the user still active?" — through a small cache in front of
//! it whose **positive** entries live at most 2 seconds (negative answers may be cached longer:
//! a dead session never comes back).
//!
//! Every event that must cut access off revokes sessions in the database:
//! logout (that session), logout-all and password change (all, or all others), session delete
//! (that one), suspension/deactivation, deletion and role change (all sessions of the user;
//! role change too because the role is baked into the token). Deletion and status changes are
//! additionally caught by the "user is active" half of the check. So an access token stops
//! working at most one cache lifetime (≤ 2 s) plus one request after the change — within the 5
//! seconds the API promises — whether the gateway calls this crate in-process (monolith) or
//! over gRPC (layered, microservices). Cost: one cached lookup per request, two indexed reads
//! on a cache miss. This crate provides `session_live`; the cache lives in the gateway.
//!
//! # Audit
//! Security events (register, login success/failure with a reason, lockout, logout, session
//! revocation, refresh reuse, user creation/deletion, role/status/password changes,
//! verification) are written through [`domain::AuditRepository`]. Details never contain a
//! password, hash or token. A failed audit write is logged and never fails the request.

mod audit;
mod auth;
pub mod cache;
pub mod clock;
mod core;
mod hasher;
mod machines;
pub mod mail;
pub mod maintenance;
mod mfa;
mod oidc;
mod passkeys;
mod provider;
pub mod recovery;
pub mod shared_cache;
mod tokens;
mod users;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use domain::{Error, LockoutPolicy, Result};

pub use auth::Auth;
pub use clock::{Clock, ManualClock, SystemClock};
pub use hasher::{Hasher, Priority};
pub use oidc::{OidcClients, Operator};
pub use provider::{CODE_TTL, Provider};
pub use users::Users;
pub use webhooks::{WebhookConfig, Webhooks};

/// Tunables of the service layer. `Default` is the production configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// PBKDF2 iterations for new hashes; stored hashes with another count are upgraded on login.
    pub password_iterations: u32,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub lockout: LockoutPolicy,
    /// `iss` and `aud` of the access tokens.
    pub issuer: String,
    pub audience: String,
    /// Threads of the password-hash pool.
    pub hash_workers: usize,
    /// Hash jobs that may wait for a thread; one more is refused with `Error::Unavailable`.
    /// Work other than login may fill only half of it, so logins always find room.
    pub hash_queue: usize,
    /// How long after a rotation the just-replaced refresh token is accepted once more (two
    /// tabs, a lost answer). Zero: any reuse revokes the session (theft detection).
    pub refresh_reuse_grace: Duration,
    /// Users kept by the read cache in front of the user repository (see [`cache`]); 0 turns
    /// it off. Not used with `shared_user_cache`.
    pub user_cache_size: u64,
    /// Password reset and email verification (see [`recovery`]).
    pub recovery: recovery::RecoveryConfig,
    /// The user cache shared through Redis (see [`shared_cache`]); `None`: off.
    pub shared_user_cache: Option<shared_cache::SharedCacheConfig>,
    /// Live sessions per user; opening one more revokes the oldest (`session_limit`). 0: no cap.
    pub max_sessions_per_user: u32,
    /// The keys ID tokens and OpenID Connect access tokens are signed with (the issuer is
    /// `recovery.public_url`); without them the token endpoint answers an internal error.
    pub oidc_keys: OidcSigning,
    pub mfa: MfaConfig,
    /// Lifecycle webhooks: where they may be sent, retries, concurrency.
    pub webhooks: WebhookConfig,
}

/// Second factors: the key that seals TOTP secrets at rest, and whether admins must have one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MfaConfig {
    pub data_key: DataKeyHandle,
    /// `ARCANA_REQUIRE_MFA_FOR_ADMINS`: admin endpoints answer `MFA_REQUIRED` to an admin
    /// without a second factor.
    pub require_for_admins: bool,
}

/// The data key (`ARCANA_DATA_KEY_FILE`), shared; equal when it is the same one.
#[derive(Clone, Default)]
pub struct DataKeyHandle(pub Option<Arc<crypto::mfa::DataKey>>);

impl PartialEq for DataKeyHandle {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for DataKeyHandle {}

impl std::fmt::Debug for DataKeyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(key) => key.fmt(f),
            None => f.write_str("DataKey(none)"),
        }
    }
}

/// The OpenID Connect signing keys of a service layer (compared by identity; never printed).
#[derive(Clone, Default)]
pub struct OidcSigning(pub Option<Arc<crypto::OidcKeys>>);

impl PartialEq for OidcSigning {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for OidcSigning {}

impl std::fmt::Debug for OidcSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(keys) => write!(f, "OidcSigning(kids {:?})", keys.key_ids()),
            None => f.write_str("OidcSigning(none)"),
        }
    }
}

/// The largest `refresh_reuse_grace` accepted.
pub const MAX_REFRESH_REUSE_GRACE: Duration = Duration::from_secs(60);

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            password_iterations: 600_000,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            lockout: LockoutPolicy::default(),
            issuer: "arcana".into(),
            audience: "arcana".into(),
            hash_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_queue: 64,
            refresh_reuse_grace: Duration::ZERO,
            user_cache_size: 10_000,
            recovery: recovery::RecoveryConfig::default(),
            shared_user_cache: None,
            max_sessions_per_user: 100,
            oidc_keys: OidcSigning::default(),
            mfa: MfaConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// The storage ports the service layer works through (diesel in-process, or gRPC clients).
pub use domain::Repositories;

/// The assembled service layer. `auth` and `users` share one [`Hasher`].
#[derive(Clone)]
pub struct Services {
    pub auth: Arc<Auth>,
    pub users: Arc<Users>,
    pub oidc_clients: Arc<OidcClients>,
    pub oidc: Arc<Provider>,
    /// The webhook admin API and this process's dispatcher (`spawn_dispatcher`).
    pub webhooks: Arc<Webhooks>,
    /// For metrics (`queue_depth`).
    pub hasher: Arc<Hasher>,
    /// Told when a mail was queued, so a delivery worker of this process sends it at once.
    pub mail_queued: Arc<tokio::sync::Notify>,
}

impl Services {
    /// The OpenID Connect issuer: `ARCANA_PUBLIC_URL` without a trailing slash.
    pub fn issuer(&self) -> &str {
        self.oidc.issuer()
    }
}

/// Assemble the service layer. `signing` must be able to sign (a private key or the HS256
/// secret) in a process that issues tokens (the auth context); `None` elsewhere (the user
/// context, admin commands): such a process answers a token request with an internal error
/// instead of signing with a throwaway key. Starts the hash pool and computes the dummy hash
/// used for unknown users.
pub fn build(
    repos: Repositories,
    config: ServiceConfig,
    signing: Option<&crypto::JwtKeys>,
) -> Result<Services> {
    build_with_clock(repos, config, signing, Arc::new(SystemClock))
}

/// As [`build`], with the clock the rules read (tests move time forward).
pub fn build_with_clock(
    repos: Repositories,
    config: ServiceConfig,
    signing: Option<&crypto::JwtKeys>,
    clock: Arc<dyn Clock>,
) -> Result<Services> {
    let issuer = signing
        .map(|keys| keys.issuer(&config.issuer, &config.audience))
        .transpose()?;
    let mut repos = repos;
    // With the shared store every replica sees every write at once; the in-process store is
    // used only without one (on top it would bring back its 2 s window).
    let store: Option<Arc<dyn cache::UserStore>> = match &config.shared_user_cache {
        Some(shared) => Some(Arc::new(
            shared_cache::Shared::new(&shared.url, &shared.prefix, shared.ttl)
                .map_err(Error::internal)?,
        )),
        None if config.user_cache_size > 0 => {
            Some(Arc::new(cache::InProcess::new(config.user_cache_size)))
        }
        None => None,
    };
    let mut caches: Vec<Arc<dyn cache::UserCache>> = Vec::new();
    if let Some(store) = store {
        let c = Arc::new(cache::CachedUsers::new(repos.users, store));
        repos.users = c.clone();
        caches.push(c);
    }
    let hasher = Arc::new(Hasher::new(
        config.hash_workers,
        config.hash_queue,
        config.password_iterations,
    )?);
    let mail_queued = Arc::new(tokio::sync::Notify::new());
    let core = Arc::new(core::Core::new(
        repos,
        config,
        hasher.clone(),
        issuer,
        clock,
        caches,
        mail_queued.clone(),
    ));
    let auth = Arc::new(Auth::new(core.clone()));
    Ok(Services {
        oidc: Arc::new(Provider::new(core.clone(), auth.clone())),
        auth,
        users: Arc::new(Users::new(core.clone())),
        webhooks: Arc::new(Webhooks::new(core.clone())?),
        oidc_clients: Arc::new(OidcClients::new(core)),
        hasher,
        mail_queued,
    })
}
