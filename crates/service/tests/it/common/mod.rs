//! A service layer over a fresh SQLite file per test, with a clock the test moves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use crypto::{JwtKeys, TokenVerifier};
use domain::{
    AuditEvent, AuditQuery, AuditRepository, AuthService, AuthSession, Caller, LoginInput, NewUser,
    Principal, RegisterInput, RequestContext, Result, User, UserId, UserRepository,
};
use repository::Database;
use repository::testing::TestDb;
use service::{Auth, Hasher, ManualClock, Repositories, ServiceConfig, Users};

pub const PASSWORD: &str = "Secret123";
pub const ITERATIONS: u32 = 1000;

/// An active user `username` (email `<username>@example.com`) with the stored hash `hash`.
pub fn new_user(username: &str, hash: &str) -> NewUser {
    NewUser {
        email: format!("{username}@example.com"),
        password_hash: hash.into(),
        created_at: chrono::Utc::now(),
        ..domain::testing::new_user(username)
    }
}

/// Store a user with the given hash directly in the repository (no service rule applies).
pub async fn insert_with_hash(app: &TestApp, username: &str, hash: &str) -> User {
    UserRepository::create(app.repo(), new_user(username, hash))
        .await
        .unwrap()
}

pub struct TestApp {
    pub db: TestDb,
    pub auth: Arc<Auth>,
    pub users: Arc<Users>,
    pub oidc_clients: Arc<service::OidcClients>,
    pub webhooks: Arc<service::Webhooks>,
    pub oidc: Arc<service::Provider>,
    pub hasher: Arc<Hasher>,
    pub clock: Arc<ManualClock>,
    pub verifier: TokenVerifier,
    pub config: ServiceConfig,
    /// The access token of every session [`TestApp::principal`] was asked about.
    tokens: std::sync::Mutex<std::collections::HashMap<domain::SessionId, String>>,
}

pub fn config() -> ServiceConfig {
    ServiceConfig {
        password_iterations: ITERATIONS,
        hash_workers: 2,
        hash_queue: 64,
        ..ServiceConfig::default()
    }
}

pub fn ctx() -> RequestContext {
    RequestContext {
        request_id: Some("test-request".into()),
        ip: Some("192.0.2.7".into()),
        user_agent: Some("service-tests".into()),
    }
}

/// `who` calling with the test request's facts.
pub fn by(who: &Principal) -> Caller {
    Caller {
        who: *who,
        ctx: ctx(),
        token: None,
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(config()).await
    }

    pub async fn with_config(config: ServiceConfig) -> Self {
        let db = TestDb::sqlite();
        let repos = Repositories::from_one(db.db().clone());
        Self::with_repos(db, repos, config)
    }

    /// Same database, but some ports replaced (fault injection).
    pub fn with_repos(db: TestDb, repos: Repositories, config: ServiceConfig) -> Self {
        let keys = JwtKeys::hs256(b"service-tests-secret-0123456789abcdef").unwrap();
        let clock = Arc::new(ManualClock::default());
        let services =
            service::build_with_clock(repos, config.clone(), Some(&keys), clock.clone()).unwrap();
        Self {
            db,
            auth: services.auth,
            users: services.users,
            oidc_clients: services.oidc_clients,
            webhooks: services.webhooks,
            oidc: services.oidc,
            hasher: services.hasher,
            clock,
            verifier: keys.verifier(&config.issuer, &config.audience),
            config,
            tokens: Default::default(),
        }
    }

    pub fn repo(&self) -> &Database {
        self.db.db()
    }

    pub async fn register(&self, username: &str) -> AuthSession {
        self.auth
            .register(
                &ctx(),
                RegisterInput {
                    username: username.into(),
                    email: format!("{username}@example.com"),
                    password: PASSWORD.into(),
                    first_name: None,
                    last_name: None,
                },
            )
            .await
            .unwrap()
    }

    pub async fn login(&self, login: &str, password: &str) -> Result<AuthSession> {
        self.login_from("192.0.2.7", login, password).await
    }

    /// A login from the client address `ip`.
    pub async fn login_from(&self, ip: &str, login: &str, password: &str) -> Result<AuthSession> {
        self.auth
            .login(
                &RequestContext {
                    ip: Some(ip.into()),
                    ..ctx()
                },
                LoginInput {
                    username_or_email: login.into(),
                    password: password.into(),
                },
            )
            .await
            .map(|o| o.session().expect("an account without a second factor"))
    }

    /// The principal the gateway would derive from this session's access token.
    pub fn principal(&self, s: &AuthSession) -> Principal {
        let p = self
            .verifier
            .verify_at(&s.tokens.access_token, self.clock.now_secs())
            .unwrap();
        self.tokens
            .lock()
            .unwrap()
            .insert(p.session_id, s.tokens.access_token.clone());
        p
    }

    /// `who` calling with the test request's facts and the access token of its session (what
    /// a gRPC client adapter forwards to a service layer in another process).
    pub fn caller(&self, who: &Principal) -> Caller {
        Caller {
            token: self
                .tokens
                .lock()
                .unwrap()
                .get(&who.session_id)
                .map(|t| domain::AccessToken::new(t.clone())),
            ..by(who)
        }
    }

    /// Checks tokens as a service layer's internal port does, at this app's time.
    pub fn token_check(&self) -> rpc::service::VerifyToken {
        let (verifier, clock) = (self.verifier.clone(), self.clock.clone());
        Arc::new(move |token: &str| verifier.verify_at(token, clock.now_secs()))
    }

    /// A registered user with role `user`, signed in.
    pub async fn user(&self, username: &str) -> (AuthSession, Principal) {
        let s = self.register(username).await;
        let p = self.principal(&s);
        (s, p)
    }

    /// An active admin, signed in.
    pub async fn admin(&self, username: &str) -> (AuthSession, Principal) {
        self.users
            .create_admin(username, &format!("{username}@example.com"), PASSWORD)
            .await
            .unwrap();
        let s = self.login(username, PASSWORD).await.unwrap();
        let p = self.principal(&s);
        (s, p)
    }

    /// The newest 100 events about `subject` (acted upon, not acting).
    pub async fn audit(&self, subject: UserId) -> Vec<AuditEvent> {
        let page = AuditRepository::list_events(self.repo(), &AuditQuery::about(subject, 100))
            .await
            .unwrap();
        page.items
            .into_iter()
            .filter(|e| e.subject_id == Some(subject))
            .collect()
    }

    pub async fn audit_actions(&self, subject: UserId) -> Vec<String> {
        self.audit(subject)
            .await
            .into_iter()
            .map(|e| format!("{}:{}", e.r#type, e.outcome))
            .collect()
    }

    pub async fn session_live(&self, p: &Principal) -> bool {
        self.auth.session_live(p).await.unwrap()
    }

    pub async fn fetch(&self, id: UserId) -> User {
        domain::UserRepository::find_by_id(self.repo(), id)
            .await
            .unwrap()
            .unwrap()
    }
}

pub trait ClockExt {
    fn now_secs(&self) -> i64;
    fn advance_secs(&self, secs: u64);
}

impl ClockExt for ManualClock {
    fn now_secs(&self) -> i64 {
        service::Clock::now(self).timestamp()
    }
    fn advance_secs(&self, secs: u64) {
        self.advance(Duration::from_secs(secs));
    }
}

pub fn field_errors(e: &domain::Error) -> Vec<String> {
    match e {
        domain::Error::Validation(f) => f.0.keys().cloned().collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}
