//! `OidcProvider`: the OpenID Connect authorization code flow.
//!
//! - **SSO session**: signing in on the hosted login page is a login as `POST /auth/login` does
//!   it (lockout, verified email, status: the same code, [`Auth`]'s); the session it opens is the
//!   browser's SSO session and its refresh token the cookie's value (checked by its stored
//!   SHA-256, never rotated through the cookie).
//! - **Codes**: 256 random bits, stored as their SHA-256, single use, 60 s, bound to the client,
//!   the redirect URI, the PKCE challenge, the nonce, the scopes, the SSO session and its
//!   `auth_time`. Spending one opens a *token session* (a refresh-token family of its own, with
//!   its grant) in one transaction; a code spent twice revokes that session.
//! - **Tokens**: access tokens are RFC 9068 JWTs (`typ: at+jwt`, RS256, `sid` = the token
//!   session, so revocation reaches them as it reaches every arcana token); ID tokens are RS256
//!   or EdDSA as the client registered; refresh tokens (`offline_access` only) are
//!   `oidc.<session>.<secret>`, rotated with reuse detection by the same code as the API's and
//!   refused by the API's refresh (and the API's by this one).
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crypto::OidcKeys;
use crypto::oidc::SigningAlg;
use domain::{
    Authorization, AuthorizeRequest, ClientAuth, ClientTokenRequest, CodeRedemption, Consent,
    ConsoleAccess, EndSession, EndSessionRequest, Error, Grant, IdTokenAlg, Interaction,
    IssuedTokens, LoginInput, LoginOutcome, MfaVerifyInput, NewCode, OAuthError, OidcClient,
    OidcProvider, Redeemed, RequestContext, Result, RevokeReason, SUPPORTED_SCOPES, SessionEnd,
    SessionOwner, SignInOutcome, SsoSignIn, StoredClient, Timestamp, TokenRequest, User,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::{Event, FAILURE, SUCCESS};
use crate::auth::Auth;
use crate::core::{Core, chrono_duration, new_refresh_token, refresh_token_session};
use crate::machines::access_token_alg;

/// How long an authorization code may be spent.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// The prefix of the refresh tokens issued to OpenID Connect clients.
const REFRESH_PREFIX: &str = "oidc.";
/// The longest `nonce` and `state` accepted (they come back in tokens and redirects).
const MAX_ECHOED: usize = 512;

/// The client `$req` (with `client_id`, `client_secret`, `auth`) authenticates as; the
/// refusal is answered as is.
macro_rules! authenticated {
    ($self:ident, $req:expr) => {
        match $self
            .authenticate_client(
                $req.client_id.as_deref(),
                $req.client_secret.as_deref(),
                $req.auth,
            )
            .await?
        {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        }
    };
}

/// The in-process [`OidcProvider`].
pub struct Provider {
    core: Arc<Core>,
    auth: Arc<Auth>,
    /// Userinfo answers by access token (its SHA-256) for [`USERINFO_CACHE_TTL`]: the
    /// signature and the session's liveness checked once per token per window. Emptied by every
    /// revocation this provider makes; others reach it within the window, as they reach API
    /// tokens through the edge's session cache.
    userinfo: moka::sync::Cache<String, Arc<Answered>>,
}

/// A userinfo answer and when its token expires (Unix seconds).
type Answered = (i64, Map<String, Value>);

/// How long a userinfo answer is reused (the revocation bound of every arcana token is 5 s).
pub const USERINFO_CACHE_TTL: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").finish_non_exhaustive()
    }
}

/// The claims of an access token (RFC 9068).
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: String,
    aud: String,
    client_id: String,
    scope: String,
    sid: String,
    iat: i64,
    exp: i64,
    jti: String,
    auth_time: i64,
}

/// A live token of this provider: its session and owner, its grant, and (for an access token)
/// its claims.
struct LiveToken {
    owner: SessionOwner,
    grant: Grant,
    access: Option<AccessClaims>,
}

/// The answer to the client, wherever the request came from: its redirect URI with `state` and
/// `iss` (RFC 9207).
struct Back<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Back<'_> {
    fn with(&self, params: &[(&str, &str)]) -> Authorization {
        // The URI is registered (parsed when it was), so it parses.
        let location = match url::Url::parse(self.redirect_uri) {
            Ok(mut url) => {
                {
                    let mut q = url.query_pairs_mut();
                    for (k, v) in params {
                        q.append_pair(k, v);
                    }
                    if let Some(state) = self.state {
                        q.append_pair("state", state);
                    }
                    q.append_pair("iss", self.issuer);
                }
                url.to_string()
            }
            Err(_) => {
                return Authorization::Refused {
                    message: "The redirect URI of this application is not valid.".into(),
                };
            }
        };
        Authorization::Redirect { location }
    }

    fn error(&self, error: &str, description: &str) -> Authorization {
        self.with(&[("error", error), ("error_description", description)])
    }
}

fn refused(message: &str) -> Result<Authorization> {
    Ok(Authorization::Refused {
        message: message.to_owned(),
    })
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new("invalid_grant", description)
}

fn invalid_request(description: &str) -> OAuthError {
    OAuthError::new("invalid_request", description)
}

/// The `prompt` values asked for.
#[derive(Default)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

fn parse_prompt(s: Option<&str>) -> std::result::Result<Prompt, &'static str> {
    let mut p = Prompt::default();
    for v in s.unwrap_or_default().split_whitespace() {
        match v {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            "select_account" => {}
            _ => return Err("prompt may hold only none, login, consent and select_account"),
        }
    }
    if p.none && (p.login || p.consent) {
        return Err("prompt=none cannot be combined with other values");
    }
    Ok(p)
}

/// A PKCE challenge: 43 to 128 characters of `[A-Za-z0-9._~-]` (RFC 7636 §4.2).
fn valid_challenge(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn signing_alg(alg: IdTokenAlg) -> SigningAlg {
    match alg {
        IdTokenAlg::RS256 => SigningAlg::Rs256,
        IdTokenAlg::EdDSA => SigningAlg::EdDsa,
    }
}

/// The claims of `user` that `scopes` allow (`sub` always).
pub(crate) fn user_claims(user: &User, scopes: &[String]) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id.to_string()));
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        c.insert("preferred_username".into(), json!(user.username));
        let name = [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        c.insert(
            "name".into(),
            json!(if name.is_empty() {
                user.username.clone()
            } else {
                name
            }),
        );
        if let Some(g) = &user.first_name {
            c.insert("given_name".into(), json!(g));
        }
        if let Some(f) = &user.last_name {
            c.insert("family_name".into(), json!(f));
        }
        c.insert("updated_at".into(), json!(user.updated_at.timestamp()));
    }
    if has("email") {
        c.insert("email".into(), json!(user.email));
        c.insert("email_verified".into(), json!(user.is_verified));
    }
    if has("roles") {
        c.insert("roles".into(), json!([user.role.as_str()]));
    }
    c
}

/// What a token response is made of, to be signed off the async workers.
struct Minting {
    keys: Arc<OidcKeys>,
    issuer: String,
    ttl: Duration,
    client: OidcClient,
    user: User,
    grant: Grant,
    scopes: Vec<String>,
    nonce: Option<String>,
    refresh_token: Option<String>,
    /// How the SSO session behind the grant was authenticated (RFC 8176 values).
    amr: Vec<String>,
    now: Timestamp,
}

/// The `acr` of a session authenticated with `amr`: two factors, or a password alone.
pub(crate) fn acr(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == "mfa") {
        domain::ACR_MFA
    } else {
        domain::ACR_PASSWORD
    }
}

impl Minting {
    fn sign(self) -> Result<IssuedTokens> {
        let Minting {
            keys,
            issuer,
            ttl,
            client,
            user,
            grant,
            scopes,
            nonce,
            refresh_token,
            amr,
            now,
        } = self;
        let iat = now.timestamp();
        let exp = iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let scope = scopes.join(" ");
        let claims = AccessClaims {
            iss: issuer.clone(),
            sub: user.id.to_string(),
            aud: client.client_id.to_string(),
            client_id: client.client_id.to_string(),
            scope: scope.clone(),
            sid: grant.session_id.to_string(),
            iat,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            auth_time: grant.auth_time.timestamp(),
        };
        let access_token = keys.sign(access_token_alg(&keys), "at+jwt", &claims)?;
        let alg = signing_alg(client.id_token_signed_response_alg);
        let mut id = user_claims(&user, &scopes);
        id.insert("iss".into(), json!(issuer));
        id.insert("aud".into(), json!(client.client_id.to_string()));
        id.insert("azp".into(), json!(client.client_id.to_string()));
        id.insert("iat".into(), json!(iat));
        id.insert("exp".into(), json!(exp));
        id.insert("auth_time".into(), json!(grant.auth_time.timestamp()));
        id.insert("sid".into(), json!(grant.sso_session_id.to_string()));
        id.insert("acr".into(), json!(acr(&amr)));
        id.insert("amr".into(), json!(amr));
        id.insert(
            "at_hash".into(),
            json!(crypto::oidc::half_hash(alg, &access_token)),
        );
        if let Some(n) = nonce {
            id.insert("nonce".into(), json!(n));
        }
        let id_token = keys.sign(alg, "JWT", &Value::Object(id))?;
        Ok(IssuedTokens {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl.as_secs(),
            id_token: Some(id_token),
            refresh_token,
            scope,
        })
    }
}

impl Provider {
    pub(crate) fn new(core: Arc<Core>, auth: Arc<Auth>) -> Self {
        let userinfo = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(USERINFO_CACHE_TTL)
            .build();
        Self {
            core,
            auth,
            userinfo,
        }
    }

    /// Forget every cached userinfo answer (after a revocation).
    fn revoked(&self) {
        self.userinfo.invalidate_all();
    }

    /// `ARCANA_PUBLIC_URL` without a trailing slash.
    pub fn issuer(&self) -> &str {
        self.core.issuer()
    }

    fn keys(&self) -> Result<&OidcKeys> {
        self.core
            .config
            .oidc_keys
            .0
            .as_deref()
            .ok_or_else(|| Error::internal("no OpenID Connect signing key is configured"))
    }

    /// The live SSO session `token` names, with its owner; `None` for anything else.
    async fn sso_owner(&self, token: &str, now: Timestamp) -> Result<Option<SessionOwner>> {
        let Some(sid) = refresh_token_session(token) else {
            return Ok(None);
        };
        let presented = crypto::sha256_hex(token);
        let owner = self.core.repos.sessions.find_with_owner(sid).await?;
        Ok(owner.filter(|o| {
            o.is_live(now)
                && crypto::tokens::constant_time_eq(&presented, &o.session.refresh_token_hash)
                && (o.user.is_verified || !self.core.config.recovery.require_verified_email)
        }))
    }

    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>> {
        match uuid::Uuid::parse_str(client_id) {
            Ok(id) => self.core.repos.oidc.find_client(id).await,
            Err(_) => Ok(None),
        }
    }

    /// End an SSO session and the token sessions issued from it, audited as `auth.logout`.
    async fn end_sso(&self, ctx: &RequestContext, owner: &SessionOwner, via: &str) -> Result<u64> {
        let core = &self.core;
        let event = Event::new("auth.logout", SUCCESS)
            .own(owner.user.id)
            .detail("session_id", owner.session.id.to_string())
            .detail("via", via)
            .detail("sessions_revoked", 0);
        let end = SessionEnd {
            id: owner.session.id,
            user_id: Some(owner.user.id),
            reason: RevokeReason::Logout,
            live_only: false,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        let n = core.repos.oidc.end_sso_session(end).await?;
        self.revoked();
        Ok(n)
    }

    /// The client a request authenticates as (`client_id`, secret, method), or the refusal.
    async fn authenticate_client(
        &self,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        auth: ClientAuth,
    ) -> Result<std::result::Result<StoredClient, OAuthError>> {
        let unknown = || OAuthError::new("invalid_client", "client authentication failed");
        let Some(id) = client_id.filter(|s| !s.is_empty()) else {
            return Ok(Err(OAuthError::new(
                "invalid_client",
                "client_id is required (HTTP Basic or the form)",
            )));
        };
        let Some(stored) = self.client(id).await? else {
            return Ok(Err(unknown()));
        };
        let ok = match (&stored.secret_hash, auth, client_secret) {
            (Some(hash), ClientAuth::Basic | ClientAuth::Post, Some(secret)) => {
                crypto::tokens::constant_time_eq(&crypto::sha256_hex(secret), hash)
            }
            (None, ClientAuth::None, None) => true,
            _ => false,
        };
        Ok(if ok { Ok(stored) } else { Err(unknown()) })
    }

    /// Access token, ID token and (with `offline_access`) the refresh token of a token session,
    /// signed on a blocking thread: an RSA-2048 signature costs about a millisecond of CPU and
    /// a response takes two, which must not hold an async worker.
    #[allow(clippy::too_many_arguments)]
    async fn mint(
        &self,
        client: &OidcClient,
        user: &User,
        grant: &Grant,
        scopes: &[String],
        nonce: Option<&str>,
        refresh_token: Option<String>,
        amr: Vec<String>,
        now: Timestamp,
    ) -> Result<IssuedTokens> {
        let minting = Minting {
            keys: self.core.signing_keys()?,
            issuer: self.issuer().to_owned(),
            ttl: self.core.config.access_ttl,
            client: client.clone(),
            user: user.clone(),
            grant: grant.clone(),
            scopes: scopes.to_vec(),
            nonce: nonce.map(str::to_owned),
            refresh_token,
            amr,
            now,
        };
        tokio::task::spawn_blocking(move || minting.sign())
            .await
            .map_err(Error::internal)?
    }

    /// The live token session `token` (an access or a refresh token of this provider) belongs
    /// to, with its grant; `None` for anything else.
    async fn live_token(&self, token: &str) -> Result<Option<LiveToken>> {
        let core = &self.core;
        let now = core.now();
        let token = token.trim();
        let (sid, access) = match token.strip_prefix(REFRESH_PREFIX) {
            Some(rest) => match refresh_token_session(rest) {
                Some(sid) => (sid, None),
                None => return Ok(None),
            },
            None => {
                let Ok(keys) = self.keys() else {
                    return Ok(None);
                };
                let Ok(claims) = keys.verify_typed::<AccessClaims>(token, "at+jwt", self.issuer())
                else {
                    return Ok(None);
                };
                match uuid::Uuid::parse_str(&claims.sid) {
                    Ok(sid) => (sid, Some(claims)),
                    Err(_) => return Ok(None),
                }
            }
        };
        let Some(grant) = core.repos.oidc.find_grant(sid).await? else {
            return Ok(None);
        };
        let Some(owner) = core.repos.sessions.find_with_owner(sid).await? else {
            return Ok(None);
        };
        let genuine = match &access {
            Some(claims) => claims.sub == owner.user.id.to_string(),
            None => crypto::tokens::constant_time_eq(
                &crypto::sha256_hex(token),
                &owner.session.refresh_token_hash,
            ),
        };
        Ok((genuine && owner.is_live(now)).then_some(LiveToken {
            owner,
            grant,
            access,
        }))
    }

    /// RFC 6749 §4.4: a service account's client id and secret (HTTP Basic or the form) for an
    /// RFC 9068 access token with the account's scopes, or those of `scope` (a subset). No
    /// refresh token, no ID token.
    async fn client_credentials_grant(
        &self,
        ctx: &RequestContext,
        req: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>> {
        let core = &self.core;
        let refused = || OAuthError::new("invalid_client", "client authentication failed");
        let (Some(client_id), Some(secret)) =
            (req.client_id.as_deref(), req.client_secret.as_deref())
        else {
            return Ok(Err(refused()));
        };
        let Some(account) = core.service_account_by_secret(client_id, secret).await? else {
            if let Some(id) = domain::service_account_of(client_id) {
                let event = Event::new("oauth2.client_credentials", crate::audit::FAILURE)
                    .subject(id)
                    .detail("reason", "bad_secret");
                core.audit(ctx, event).await;
            }
            return Ok(Err(refused()));
        };
        let Some(scopes) = domain::requested_scopes(req.scope.as_deref(), account.scopes) else {
            return Ok(Err(OAuthError::new(
                "invalid_scope",
                "scope names one the service account does not hold",
            )));
        };
        let now = core.now();
        let ttl = core.machine_token_ttl();
        let iat = now.timestamp();
        let claims = crate::machines::MachineClaims {
            iss: self.issuer().to_owned(),
            sub: account.id.to_string(),
            aud: core.config.audience.clone(),
            client_id: client_id.to_owned(),
            scope: scopes.to_text(),
            iat,
            exp: iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let keys = core.signing_keys()?;
        let access_token = tokio::task::spawn_blocking(move || {
            keys.sign(access_token_alg(&keys), "at+jwt", &claims)
        })
        .await
        .map_err(Error::internal)??;
        let event = Event::new("oauth2.client_credentials", SUCCESS)
            .subject(account.id)
            .detail("client_id", client_id)
            .detail("scope", scopes.to_text());
        core.audit(ctx, event).await;
        Ok(Ok(IssuedTokens {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl.as_secs(),
            id_token: None,
            refresh_token: None,
            scope: scopes.to_text(),
        }))
    }

    async fn code_grant(
        &self,
        ctx: &RequestContext,
        stored: &StoredClient,
        req: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>> {
        let core = &self.core;
        let client = &stored.client;
        let (Some(code), Some(redirect_uri)) = (req.code.as_deref(), req.redirect_uri.as_deref())
        else {
            return Ok(Err(invalid_request("code and redirect_uri are required")));
        };
        let hash = crypto::sha256_hex(code);
        let Some(found) = core.repos.oidc.find_code(&hash).await? else {
            return Ok(Err(invalid_grant("the code is unknown or expired")));
        };
        let c = &found.code;
        if c.client_id != client.client_id || c.redirect_uri != redirect_uri {
            return Ok(Err(invalid_grant(
                "the code was issued to another client or redirect_uri",
            )));
        }
        let pkce_ok = match (&c.code_challenge, req.code_verifier.as_deref()) {
            (Some(challenge), Some(verifier)) => {
                crypto::tokens::constant_time_eq(&crypto::oidc::pkce_s256(verifier), challenge)
            }
            (None, None) => true,
            _ => false,
        };
        if !pkce_ok {
            return Ok(Err(invalid_grant("the code_verifier does not match")));
        }
        let now = core.now();
        let Some(creds) = core
            .repos
            .users
            .find_credentials_by_id(c.user_id)
            .await?
            .filter(|cr| cr.user.status == domain::Status::Active)
        else {
            return Ok(Err(invalid_grant("the user can no longer sign in")));
        };
        // The token session is authenticated as the SSO session it came from was.
        let amr = core
            .repos
            .sessions
            .find(c.sso_session_id)
            .await?
            .map(|s| s.amr)
            .unwrap_or_else(|| vec!["pwd".to_owned()]);
        let methods: Vec<&str> = amr.iter().map(String::as_str).collect();
        let (mut session, _) =
            core.new_session(ctx, c.user_id, creds.credential_version, now, &methods)?;
        let refresh = format!("{REFRESH_PREFIX}{}", new_refresh_token(session.id));
        session.refresh_token_hash = crypto::sha256_hex(&refresh);
        let client_id = client.client_id.to_string();
        let issued = Event::new("oidc.token", SUCCESS)
            .subject(c.user_id)
            .detail("client_id", client_id.clone())
            .detail("grant_type", "authorization_code")
            .detail("session_id", session.id.to_string());
        let reused = Event::new("oidc.code_reuse", FAILURE)
            .subject(c.user_id)
            .detail("client_id", client_id);
        let redemption = CodeRedemption {
            code_hash: hash,
            session,
            audit: core.records(ctx, vec![issued]),
            reuse_audit: core.records(ctx, vec![reused]),
            now,
        };
        match core.repos.oidc.redeem_code(redemption).await? {
            Redeemed::Issued(grant) => {
                let refresh = grant
                    .scopes
                    .iter()
                    .any(|s| s == "offline_access")
                    .then_some(refresh);
                let tokens = self
                    .mint(
                        client,
                        &creds.user,
                        &grant,
                        &grant.scopes,
                        c.nonce.as_deref(),
                        refresh,
                        amr.clone(),
                        now,
                    )
                    .await?;
                Ok(Ok(tokens))
            }
            Redeemed::Reused { revoked } => {
                self.revoked();
                tracing::warn!(client_id = %client.client_id, revoked, "authorization code presented twice: its tokens are revoked");
                Ok(Err(invalid_grant("the code was already used")))
            }
            Redeemed::Unusable => Ok(Err(invalid_grant("the code is unknown or expired"))),
        }
    }

    async fn refresh_grant(
        &self,
        ctx: &RequestContext,
        stored: &StoredClient,
        req: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>> {
        let core = &self.core;
        let client = &stored.client;
        let Some(token) = req.refresh_token.as_deref() else {
            return Ok(Err(invalid_request("refresh_token is required")));
        };
        let invalid = || Ok(Err(invalid_grant("the refresh token is not valid")));
        let Some(sid) = token
            .trim()
            .strip_prefix(REFRESH_PREFIX)
            .and_then(refresh_token_session)
        else {
            return invalid();
        };
        let Some(grant) = core
            .repos
            .oidc
            .find_grant(sid)
            .await?
            .filter(|g| g.client_id == client.client_id)
        else {
            return invalid();
        };
        let scopes: Vec<String> = match req.scope.as_deref() {
            None => grant.scopes.clone(),
            Some(s) => {
                let asked: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
                if asked.iter().any(|a| !grant.scopes.contains(a)) {
                    return Ok(Err(OAuthError::new(
                        "invalid_scope",
                        "a refresh may only narrow the scopes granted",
                    )));
                }
                asked
            }
        };
        let rotated = self
            .auth
            .rotate_refresh(ctx, token, REFRESH_PREFIX, |owner, _, next, now| {
                Ok((owner.user.clone(), owner.session.amr.clone(), next, now))
            })
            .await;
        match rotated {
            Ok((user, amr, next, now)) => {
                let tokens = self
                    .mint(client, &user, &grant, &scopes, None, Some(next), amr, now)
                    .await?;
                Ok(Ok(tokens))
            }
            Err(Error::Unauthorized | Error::EmailNotVerified) => {
                // A reused refresh token may have ended the grant.
                self.revoked();
                invalid()
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl OidcProvider for Provider {
    async fn authorize(
        &self,
        ctx: &RequestContext,
        req: &AuthorizeRequest,
        sso: Option<&str>,
        interaction: Interaction,
    ) -> Result<Authorization> {
        let core = &self.core;
        let Some(client_id) = req.client_id.as_deref().filter(|s| !s.is_empty()) else {
            return refused(
                "The request does not say which application asks (client_id is missing).",
            );
        };
        let Some(stored) = self.client(client_id).await? else {
            return refused(
                "The application that sent you here is not registered with this sign-in service.",
            );
        };
        let client = stored.client;
        let Some(redirect_uri) = req.redirect_uri.as_deref() else {
            return refused("The request does not say where to return (redirect_uri is missing).");
        };
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return refused(
                "The address this application asked to return to is not registered for it.",
            );
        }
        if req.state.as_deref().is_some_and(|s| s.len() > MAX_ECHOED) {
            return refused("The request's state is too long.");
        }
        let back = Back {
            redirect_uri,
            state: req.state.as_deref(),
            issuer: self.issuer(),
        };
        if req.response_type.as_deref() != Some("code") {
            return Ok(back.error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        let asked: Vec<&str> = req
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if !asked.contains(&"openid") {
            return Ok(back.error("invalid_scope", "scope must contain openid"));
        }
        // Unknown scopes, and those the client may not have, are dropped.
        let scopes: Vec<String> = SUPPORTED_SCOPES
            .iter()
            .filter(|s| asked.contains(s) && client.allowed_scopes.iter().any(|a| a == *s))
            .map(|s| (*s).to_owned())
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Ok(back.error("invalid_scope", "this client may not ask for openid"));
        }
        let prompt = match parse_prompt(req.prompt.as_deref()) {
            Ok(p) => p,
            Err(e) => return Ok(back.error("invalid_request", e)),
        };
        let max_age = match req.max_age.as_deref() {
            None => None,
            Some(s) => match s.parse::<u32>() {
                Ok(n) => Some(i64::from(n)),
                Err(_) => {
                    return Ok(back.error("invalid_request", "max_age must be a number of seconds"));
                }
            },
        };
        if req.nonce.as_deref().is_some_and(|n| n.len() > MAX_ECHOED) {
            return Ok(back.error("invalid_request", "nonce is too long"));
        }
        let challenge = match (
            req.code_challenge.as_deref(),
            req.code_challenge_method.as_deref(),
        ) {
            (Some(c), Some("S256")) if valid_challenge(c) => Some(c.to_owned()),
            (Some(_), Some("S256")) => {
                return Ok(back.error("invalid_request", "code_challenge is malformed"));
            }
            (Some(_), _) => {
                return Ok(back.error("invalid_request", "code_challenge_method must be S256"));
            }
            (None, _) if client.public => {
                return Ok(back.error(
                    "invalid_request",
                    "a public client must use PKCE (code_challenge with S256)",
                ));
            }
            (None, _) => None,
        };

        let now = core.now();
        let owner = match sso {
            Some(token) => self.sso_owner(token, now).await?,
            None => None,
        };
        // prompt=login and max_age are asked of the browser as it arrives; the login page
        // answers them (and consent follows it).
        let stale = |o: &SessionOwner| {
            interaction == Interaction::Arrived
                && (prompt.login
                    || max_age.is_some_and(|m| (now - o.session.created_at).num_seconds() >= m))
        };
        let owner = match owner {
            Some(o) if !stale(&o) => o,
            _ if prompt.none => {
                return Ok(back.error("login_required", "the user is not signed in"));
            }
            _ => {
                return Ok(Authorization::SignIn {
                    client_name: client.name,
                    login_hint: req.login_hint.clone(),
                });
            }
        };
        let user = &owner.user;
        if interaction == (Interaction::Consented { allow: false }) {
            return Ok(back.error("access_denied", "the user declined"));
        }
        if client.require_consent {
            if interaction == (Interaction::Consented { allow: true }) {
                let previous = core
                    .repos
                    .oidc
                    .find_consent(user.id, client.client_id)
                    .await?;
                let mut all: Vec<String> = previous.map(|c| c.scopes).unwrap_or_default();
                all.extend(scopes.iter().cloned());
                let all: Vec<String> = SUPPORTED_SCOPES
                    .iter()
                    .filter(|s| all.iter().any(|a| a == *s))
                    .map(|s| (*s).to_owned())
                    .collect();
                let event = Event::new("oidc.consent", SUCCESS)
                    .own(user.id)
                    .detail("client_id", client.client_id.to_string())
                    .detail("scopes", all.join(" "));
                let consent = Consent {
                    user_id: user.id,
                    client_id: client.client_id,
                    scopes: all,
                    granted_at: now,
                };
                core.repos
                    .oidc
                    .save_consent(consent, core.records(ctx, vec![event]))
                    .await?;
            } else {
                let given = core
                    .repos
                    .oidc
                    .find_consent(user.id, client.client_id)
                    .await?;
                let covered = given.is_some_and(|c| scopes.iter().all(|s| c.scopes.contains(s)));
                if !covered || prompt.consent {
                    if prompt.none {
                        return Ok(back.error("consent_required", "the user has not consented"));
                    }
                    return Ok(Authorization::Consent {
                        client_name: client.name,
                        scopes,
                        username: user.username.clone(),
                    });
                }
            }
        }
        let code = crypto::new_refresh_token();
        let expires_at = now
            .checked_add_signed(chrono_duration(CODE_TTL))
            .ok_or_else(|| Error::internal("code TTL out of range"))?;
        core.repos
            .oidc
            .create_code(NewCode {
                code_hash: crypto::sha256_hex(&code),
                client_id: client.client_id,
                user_id: user.id,
                sso_session_id: owner.session.id,
                redirect_uri: redirect_uri.to_owned(),
                scopes,
                nonce: req.nonce.clone(),
                code_challenge: challenge,
                auth_time: owner.session.created_at,
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(back.with(&[("code", &code)]))
    }

    async fn sign_in(&self, ctx: &RequestContext, input: LoginInput) -> Result<SignInOutcome> {
        match domain::AuthService::login(self.auth.as_ref(), ctx, input).await? {
            LoginOutcome::Session(session) => Ok(SignInOutcome::Signed(SsoSignIn {
                token: session.tokens.refresh_token,
                expires_in: self.core.config.refresh_ttl.as_secs(),
            })),
            LoginOutcome::MfaRequired(pending) => Ok(SignInOutcome::SecondFactor(pending)),
        }
    }

    async fn sign_in_mfa(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<SsoSignIn> {
        let session = domain::AuthService::mfa_verify(self.auth.as_ref(), ctx, input).await?;
        Ok(SsoSignIn {
            token: session.tokens.refresh_token,
            expires_in: self.core.config.refresh_ttl.as_secs(),
        })
    }

    async fn sign_in_passkey(
        &self,
        ctx: &RequestContext,
        input: domain::PasskeyLoginInput,
    ) -> Result<SsoSignIn> {
        let session =
            domain::AuthService::passkey_login_finish(self.auth.as_ref(), ctx, input).await?;
        Ok(SsoSignIn {
            token: session.tokens.refresh_token,
            expires_in: self.core.config.refresh_ttl.as_secs(),
        })
    }

    async fn console_access(
        &self,
        _ctx: &RequestContext,
        sso: &str,
    ) -> Result<Option<ConsoleAccess>> {
        let now = self.core.now();
        let Some(owner) = self.sso_owner(sso, now).await? else {
            return Ok(None);
        };
        let (access_token, expires_in) =
            self.core.access_token(&owner.user, owner.session.id, now)?;
        Ok(Some(ConsoleAccess {
            access_token,
            expires_in,
        }))
    }

    async fn sign_out(&self, ctx: &RequestContext, sso: &str) -> Result<()> {
        let core = &self.core;
        let now = core.now();
        let Some(owner) = self.sso_owner(sso, now).await? else {
            return Ok(());
        };
        self.end_sso(ctx, &owner, "hosted_page").await?;
        Ok(())
    }

    async fn token(
        &self,
        ctx: &RequestContext,
        req: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>> {
        self.keys()?;
        if req.grant_type.as_deref() == Some("client_credentials")
            && req
                .client_id
                .as_deref()
                .is_some_and(|id| domain::service_account_of(id).is_some())
        {
            return self.client_credentials_grant(ctx, req).await;
        }
        let client = authenticated!(self, req);
        if req.grant_type.as_deref() == Some("client_credentials") {
            return Ok(Err(OAuthError::new(
                "unauthorized_client",
                "client_credentials is for service accounts; this client signs users in",
            )));
        }
        match req.grant_type.as_deref() {
            Some("authorization_code") => self.code_grant(ctx, &client, req).await,
            Some("refresh_token") => self.refresh_grant(ctx, &client, req).await,
            None => Ok(Err(invalid_request("grant_type is required"))),
            Some(_) => Ok(Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            ))),
        }
    }

    async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>> {
        let key = crypto::sha256_hex(access_token);
        let now = self.core.now();
        if let Some(hit) = self.userinfo.get(&key)
            && hit.0 > now.timestamp()
        {
            return Ok(hit.1.clone());
        }
        let keys = self.keys()?;
        let claims: AccessClaims = keys.verify_typed(access_token, "at+jwt", self.issuer())?;
        let sid = uuid::Uuid::parse_str(&claims.sid).map_err(|_| Error::Unauthorized)?;
        let owner = self
            .core
            .repos
            .sessions
            .find_with_owner(sid)
            .await?
            .filter(|o| o.is_live(now) && o.user.id.to_string() == claims.sub)
            .ok_or(Error::Unauthorized)?;
        let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
        let answer = user_claims(&owner.user, &scopes);
        self.userinfo
            .insert(key, Arc::new((claims.exp, answer.clone())));
        Ok(answer)
    }

    async fn revoke(
        &self,
        ctx: &RequestContext,
        req: ClientTokenRequest,
    ) -> Result<std::result::Result<(), OAuthError>> {
        let client = authenticated!(self, req);
        let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(Err(invalid_request("token is required")));
        };
        let core = &self.core;
        // Unknown, dead or another client's token: nothing to do, and nothing to say (RFC 7009 §2.2).
        if let Some(live) = self.live_token(token).await?
            && live.grant.client_id == client.client.client_id
        {
            let event = Event::new("oidc.revoke", SUCCESS)
                .subject(live.owner.user.id)
                .detail("client_id", client.client.client_id.to_string())
                .detail("session_id", live.grant.session_id.to_string())
                .detail(
                    "token",
                    if live.access.is_some() {
                        "access_token"
                    } else {
                        "refresh_token"
                    },
                );
            let end = SessionEnd {
                id: live.grant.session_id,
                user_id: Some(live.owner.user.id),
                reason: RevokeReason::TokenRevoked,
                live_only: false,
                audit: core.records(ctx, vec![event]),
                now: core.now(),
            };
            core.repos.sessions.end_session(end).await?;
            self.revoked();
        }
        Ok(Ok(()))
    }

    async fn introspect(
        &self,
        _ctx: &RequestContext,
        req: ClientTokenRequest,
    ) -> Result<std::result::Result<Map<String, Value>, OAuthError>> {
        let client = authenticated!(self, req);
        if client.secret_hash.is_none() {
            return Ok(Err(OAuthError::new(
                "invalid_client",
                "introspection is for confidential clients",
            )));
        }
        let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(Err(invalid_request("token is required")));
        };
        let mut out = Map::new();
        let Some(live) = self.live_token(token).await? else {
            // A service account's token (RFC 9068, client_credentials), or nothing alive.
            match self.core.machine_token(token).await? {
                Some((claims, account, granted)) => {
                    let scope = granted.intersect(account.scopes).to_text();
                    out.insert("active".into(), json!(true));
                    out.insert("scope".into(), json!(scope));
                    out.insert("client_id".into(), json!(claims.client_id));
                    out.insert("username".into(), json!(account.name));
                    out.insert("sub".into(), json!(claims.sub));
                    out.insert("aud".into(), json!(claims.aud));
                    out.insert("exp".into(), json!(claims.exp));
                    out.insert("iat".into(), json!(claims.iat));
                    out.insert("iss".into(), json!(self.issuer()));
                    out.insert("token_type".into(), json!("Bearer"));
                }
                None => {
                    out.insert("active".into(), json!(false));
                }
            }
            return Ok(Ok(out));
        };
        let (scope, exp, iat, kind) = match &live.access {
            Some(c) => (c.scope.clone(), c.exp, c.iat, "Bearer"),
            None => (
                live.grant.scopes.join(" "),
                live.owner.session.expires_at.timestamp(),
                live.owner
                    .session
                    .rotated_at
                    .unwrap_or(live.owner.session.created_at)
                    .timestamp(),
                "refresh_token",
            ),
        };
        out.insert("active".into(), json!(true));
        out.insert("scope".into(), json!(scope));
        out.insert("client_id".into(), json!(live.grant.client_id.to_string()));
        out.insert("username".into(), json!(live.owner.user.username));
        out.insert("sub".into(), json!(live.owner.user.id.to_string()));
        out.insert("exp".into(), json!(exp));
        out.insert("iat".into(), json!(iat));
        out.insert("iss".into(), json!(self.issuer()));
        out.insert("token_type".into(), json!(kind));
        out.insert("sid".into(), json!(live.grant.session_id.to_string()));
        Ok(Ok(out))
    }

    async fn end_session(
        &self,
        ctx: &RequestContext,
        req: &EndSessionRequest,
        sso: Option<&str>,
    ) -> Result<EndSession> {
        let core = &self.core;
        #[derive(Deserialize)]
        struct Hint {
            sub: String,
            aud: String,
        }
        let hint: Option<Hint> = match (req.id_token_hint.as_deref(), self.keys()) {
            (Some(h), Ok(keys)) => keys.verify_hint(h, self.issuer()).ok(),
            _ => None,
        };
        let client_id = hint
            .as_ref()
            .map(|h| h.aud.clone())
            .or_else(|| req.client_id.clone());
        if let (Some(hint_client), Some(asked)) = (hint.as_ref().map(|h| &h.aud), &req.client_id)
            && hint_client != asked
        {
            return Ok(EndSession::Refused {
                message: "The logout request names two different applications.".into(),
            });
        }
        let client = match client_id.as_deref() {
            Some(id) => self.client(id).await?.map(|s| s.client),
            None => None,
        };
        let redirect = match req.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(uri) => match &client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                    let mut url = url::Url::parse(uri).map_err(Error::internal)?;
                    if let Some(state) = &req.state {
                        url.query_pairs_mut().append_pair("state", state);
                    }
                    Some(url.to_string())
                }
                _ => {
                    return Ok(EndSession::Refused {
                        message: "The address to return to after signing out is not registered for this application.".into(),
                    });
                }
            },
        };
        let Some(hint) = hint else {
            // Nothing proves the request comes from the application the person used: ask.
            return Ok(EndSession::Confirm);
        };
        let now = core.now();
        if let Some(token) = sso
            && let Some(owner) = self.sso_owner(token, now).await?
            && owner.user.id.to_string() == hint.sub
        {
            self.end_sso(ctx, &owner, "rp_initiated").await?;
        }
        Ok(EndSession::SignedOut { redirect })
    }
}
