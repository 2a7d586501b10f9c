//! The OpenID Connect provider port: what the edge's protocol endpoints and hosted pages ask of
//! the service layer. Requests arrive raw (as the browser or the client sent them) and every
//! rule is applied behind the port, so the monolith and the gRPC hop answer alike.
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::services::{LoginInput, RequestContext};

/// An authorization request (`/oauth2/authorize`, query or form), every value as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
}

/// What the person did on a hosted page just before this authorization step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// Nothing: the browser arrived from the client.
    Arrived,
    /// Signed in on the login page (so `prompt=login` and `max_age` are satisfied).
    SignedIn,
    /// Answered the consent page.
    Consented { allow: bool },
}

/// Where an authorization step leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The request names no registered client or redirect URI: say so on a page, never
    /// redirect (RFC 6749 §4.1.2.1).
    Refused { message: String },
    /// Send the browser to the client: a code, or an error.
    Redirect { location: String },
    /// Ask the person to sign in.
    SignIn {
        client_name: String,
        login_hint: Option<String>,
    },
    /// Ask the person whether the client may have these scopes.
    Consent {
        client_name: String,
        scopes: Vec<String>,
        username: String,
    },
}

/// A sign-in on the hosted login page: the SSO session's opaque token (the cookie's value) and
/// how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoSignIn {
    pub token: String,
    pub expires_in: u64,
}

/// The `acr` of an ID token whose sign-in took a password alone.
pub const ACR_PASSWORD: &str = "urn:arcana:acr:pwd";
/// The `acr` of an ID token whose sign-in took a password and a second factor.
pub const ACR_MFA: &str = "urn:arcana:acr:mfa";

/// What the hosted page's sign-in answers: the SSO session, or the second step the account
/// needs (`OidcProvider::sign_in_mfa` completes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInOutcome {
    Signed(SsoSignIn),
    SecondFactor(crate::mfa::MfaPending),
}

impl fmt::Debug for SsoSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoSignIn")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An access token for the SSO session of a browser: the account and admin consoles act with
/// it through the same service ports (and rules) as the API. Lives as long as an access token
/// of a login; dies with the SSO session.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleAccess {
    pub access_token: String,
    pub expires_in: u64,
}

impl fmt::Debug for ConsoleAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleAccess")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// How a client authenticated at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post,
    /// `client_id` only (`none`: a public client).
    #[default]
    None,
}

/// A token request (`/oauth2/token`), every value as sent; the client's credentials as the
/// edge found them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth: ClientAuth,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A refusal in the words of RFC 6749 §5.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error_description: String,
}

impl OAuthError {
    pub fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            error_description: description.into(),
        }
    }
    /// 401 for `invalid_client` (with `WWW-Authenticate`), 400 otherwise.
    pub fn status(&self) -> u16 {
        if self.error == "invalid_client" {
            401
        } else {
            400
        }
    }
}

/// A successful token response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token a client presents for revocation (RFC 7009) or introspection (RFC 7662), with its
/// credentials as the edge found them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTokenRequest {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth: ClientAuth,
}

impl fmt::Debug for ClientTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTokenRequest")
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// An RP-initiated logout request (`/oauth2/logout`), every value as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSessionRequest {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
}

/// Where an RP-initiated logout leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSession {
    /// Signed out (the SSO session and the tokens issued from it); back to the client when it
    /// registered where to, else a signed-out page.
    SignedOut { redirect: Option<String> },
    /// The request does not prove who asks: let the person confirm on the logout page.
    Confirm,
    /// The request names an unregistered return address: an error page.
    Refused { message: String },
}

/// The provider: authorization steps, the hosted sign-in, tokens and userinfo.
#[async_trait]
pub trait OidcProvider: Send + Sync {
    /// One step of the authorization code flow for `request`, with the SSO token of the
    /// browser's cookie (if any) and what the person just did.
    async fn authorize(
        &self,
        ctx: &RequestContext,
        request: &AuthorizeRequest,
        sso: Option<&str>,
        interaction: Interaction,
    ) -> Result<Authorization>;
    /// Sign in on the hosted page: the same rules as `AuthService::login` (lockout, verified
    /// email, status), and the same errors.
    async fn sign_in(&self, ctx: &RequestContext, input: LoginInput) -> Result<SignInOutcome>;
    /// The second step of a sign-in on the hosted page: the rules and errors of
    /// `AuthService::mfa_verify`.
    async fn sign_in_mfa(
        &self,
        ctx: &RequestContext,
        input: crate::mfa::MfaVerifyInput,
    ) -> Result<SsoSignIn>;
    /// A sign-in on the hosted page with a passkey alone: the rules and errors of
    /// `AuthService::passkey_login_finish`.
    async fn sign_in_passkey(
        &self,
        ctx: &RequestContext,
        input: crate::mfa::PasskeyLoginInput,
    ) -> Result<SsoSignIn>;
    /// An access token for the live SSO session `sso` names (the consoles' pages); `None` when
    /// it names none.
    async fn console_access(
        &self,
        ctx: &RequestContext,
        sso: &str,
    ) -> Result<Option<ConsoleAccess>>;
    /// End the browser's SSO session (the hosted logout page), if the token names a live one.
    async fn sign_out(&self, ctx: &RequestContext, sso: &str) -> Result<()>;
    /// The token endpoint: `Ok(Err(_))` is a refusal to send the client as is.
    async fn token(
        &self,
        ctx: &RequestContext,
        request: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>>;
    /// The claims of the user an access token was issued for, as its scopes allow;
    /// `Error::Unauthorized` for a token that is not (or no longer) good.
    async fn userinfo(
        &self,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>>;
    /// RFC 7009: revoke a token issued to the authenticating client (its whole token session);
    /// an unknown or foreign token is no error.
    async fn revoke(
        &self,
        ctx: &RequestContext,
        request: ClientTokenRequest,
    ) -> Result<std::result::Result<(), OAuthError>>;
    /// RFC 7662, for confidential clients: `{"active": false}` for anything not live.
    async fn introspect(
        &self,
        ctx: &RequestContext,
        request: ClientTokenRequest,
    ) -> Result<std::result::Result<serde_json::Map<String, serde_json::Value>, OAuthError>>;
    /// RP-initiated logout, with the browser's SSO token.
    async fn end_session(
        &self,
        ctx: &RequestContext,
        request: &EndSessionRequest,
        sso: Option<&str>,
    ) -> Result<EndSession>;
}
