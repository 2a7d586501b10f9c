//! The OpenID Connect provider at the edge: discovery, the authorization and token endpoints,
//! userinfo, and the hosted pages (`/login`, `/consent`, `/logout`, `/forgot-password`).
//!
//! Every rule lives behind [`domain::OidcProvider`]; this module speaks HTTP: it refuses repeated
//! or oversized parameters before anything else, reads the SSO cookie and client credentials,
//! renders the askama pages (one stylesheet, no script, a strict CSP whose `form-action` names
//! only this origin and the client's), and answers the token endpoint in RFC 6749's words. Forms
//! are protected from cross-site posts by tower-http's `csrf` layer (`Sec-Fetch-Site` / `Origin`)
//! and the cookie's `SameSite=Lax`.
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use domain::{
    Authorization, AuthorizeRequest, ClientAuth, ClientTokenRequest, EndSession, EndSessionRequest,
    Error, Interaction, LoginInput, MfaMethod, MfaPending, MfaVerifyInput, OidcProvider,
    PasskeyLoginInput, SignInOutcome, TokenRequest,
};
use serde_json::json;

use crate::AppState;
use crate::extract::Client;
use crate::ratelimit::Bucket;

/// The longest query or form the protocol endpoints read.
pub const MAX_PARAMS: usize = 8 * 1024;
/// The longest single parameter value.
const MAX_VALUE: usize = 2048;

const STYLESHEET: &str = include_str!("../../assets/arcana.css");

/// What each scope lets a client see, as the consent page says it.
fn describe_scope(scope: &str) -> (&'static str, &'static str) {
    match scope {
        "openid" => ("Know who you are", "Your account's unique identifier"),
        "profile" => ("See your profile", "Your username and name"),
        "email" => ("See your email address", "And whether it is verified"),
        "roles" => ("See your role", "Whether you are an administrator"),
        "offline_access" => (
            "Stay connected",
            "Keep access while you are away, until you sign out",
        ),
        _ => (
            "Other access",
            "A permission this service does not describe",
        ),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/authorize", get(authorize).post(authorize))
        .route("/oauth2/token", axum::routing::post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/revoke", axum::routing::post(revoke))
        .route("/oauth2/introspect", axum::routing::post(introspect))
        .route("/oauth2/logout", get(end_session).post(end_session))
        .route("/login", get(login_page).post(login))
        .route("/consent", axum::routing::post(consent))
        .route("/logout", get(logout_page).post(logout))
        .route("/forgot-password", get(forgot_page).post(forgot))
        .route("/assets/arcana.css", get(stylesheet))
        .layer(tower_http::csrf::CsrfLayer::new())
}

// ---- parameters -----------------------------------------------------------------------------

/// A query or form as pairs, refusing what a careful server refuses: too long, repeated names,
/// oversized values.
pub(crate) fn params(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    if raw.len() > MAX_PARAMS {
        return Err("The request is too long.".into());
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("The parameter {k:?} appears more than once."));
        }
        if v.len() > MAX_VALUE {
            return Err(format!("The parameter {k:?} is too long."));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// A GET carries its parameters in the query, a POST in the form.
fn query_or_form<'a>(query: &'a Option<String>, body: &'a Bytes) -> &'a [u8] {
    if body.is_empty() {
        query.as_deref().unwrap_or_default().as_bytes()
    } else {
        body
    }
}

pub(crate) fn take(p: &[(String, String)], name: &str) -> Option<String> {
    p.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

fn authorize_request(p: &[(String, String)]) -> AuthorizeRequest {
    AuthorizeRequest {
        client_id: take(p, "client_id"),
        redirect_uri: take(p, "redirect_uri"),
        response_type: take(p, "response_type"),
        scope: take(p, "scope"),
        state: take(p, "state"),
        nonce: take(p, "nonce"),
        prompt: take(p, "prompt"),
        max_age: take(p, "max_age"),
        login_hint: take(p, "login_hint"),
        code_challenge: take(p, "code_challenge"),
        code_challenge_method: take(p, "code_challenge_method"),
    }
}

/// The authorization request again, as the query of the page's form action.
fn as_query(req: &AuthorizeRequest) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("client_id", &req.client_id),
        ("redirect_uri", &req.redirect_uri),
        ("response_type", &req.response_type),
        ("scope", &req.scope),
        ("state", &req.state),
        ("nonce", &req.nonce),
        ("prompt", &req.prompt),
        ("max_age", &req.max_age),
        ("login_hint", &req.login_hint),
        ("code_challenge", &req.code_challenge),
        ("code_challenge_method", &req.code_challenge_method),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// The provider, or the 404 of a deployment that serves none.
fn provider(state: &AppState) -> Option<Arc<dyn OidcProvider>> {
    state.oidc.clone()
}

fn not_served() -> Response {
    crate::error::ApiError::RouteNotFound.into_response()
}

// ---- cookies --------------------------------------------------------------------------------

/// The SSO cookie's name: `__Host-` (Secure, whole host, path /) when the issuer is https.
fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-arcana_sso"
    } else {
        "arcana_sso"
    }
}

fn secure(state: &AppState) -> bool {
    state.config.issuer.starts_with("https://")
}

pub(crate) fn sso_cookie(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(crate) fn set_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    let v = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(state)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("arcana_sso=; Max-Age=0"))
}

// ---- pages ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    product: &'a str,
    client_name: Option<String>,
    error: Option<String>,
    username: String,
    action: String,
    script: &'static str,
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage<'a> {
    product: &'a str,
    client_name: Option<String>,
    error: Option<String>,
    mfa_token: String,
    totp: bool,
    recovery: bool,
    passkey: Option<String>,
    action: String,
    restart: String,
    script: &'static str,
}

/// The one script of the hosted pages and the consoles: the WebAuthn calls of "Use your
/// passkey", "Sign in with a passkey" and "Add a passkey" (the pages work without it). Inline,
/// pinned by its hash in the CSP.
pub(crate) const PASSKEY_SCRIPT: &str = include_str!("../../assets/passkey.js");
static PASSKEY_SCRIPT_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("'sha256-{}'", crypto::sha256_base64(PASSKEY_SCRIPT)));

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    product: &'a str,
    client_name: String,
    scopes: Vec<(&'static str, &'static str)>,
    username: String,
    action: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    product: &'a str,
    title: &'a str,
    message: String,
    error: bool,
    link: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    product: &'a str,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    product: &'a str,
    sent: bool,
    error: Option<String>,
}

/// The origin (`scheme://host[:port]`) of a URI, for `form-action`.
fn origin(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    let origin = u.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// A page with its policy: nothing but this origin's stylesheet, forms posted here (and, when a
/// form's answer redirects to a client, to that client's origin), never framed.
pub(crate) fn page(
    status: StatusCode,
    html: askama::Result<String>,
    form_to: Option<&str>,
) -> Response {
    let html = match html {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            return (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response();
        }
    };
    let extra = form_to
        .and_then(origin)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    // Only the passkey script may run (by hash), and only where a page carries it.
    let script = if html.contains("<script>") {
        format!("script-src {}; connect-src 'self'; ", *PASSKEY_SCRIPT_HASH)
    } else {
        String::new()
    };
    let csp = format!(
        "default-src 'none'; {script}style-src 'self'; img-src 'self'; \
         form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    );
    let csp = HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    (status, [(header::CONTENT_SECURITY_POLICY, csp)], Html(html)).into_response()
}

pub(crate) fn message(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: impl Into<String>,
    error: bool,
    link: Option<(&str, &str)>,
) -> Response {
    let p = MessagePage {
        product: &state.config.product_name,
        title,
        message: message.into(),
        error,
        link,
    };
    page(status, p.render(), None)
}

fn refused(state: &AppState, text: impl Into<String>) -> Response {
    message(
        state,
        StatusCode::BAD_REQUEST,
        "This sign-in request cannot be completed",
        text,
        true,
        None,
    )
}

/// The console page a sign-in without a client returns to (`/login?next=/admin/…`): a path of
/// this site's consoles only, never another origin.
pub(crate) fn console_next(query: &Option<String>) -> Option<String> {
    let q = query.as_deref()?;
    let (_, next) = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "next")?;
    let local = ["/account", "/admin"].iter().any(|root| {
        next.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) && next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b))
        && !next.contains("//");
    local.then(|| next.into_owned())
}

/// Where the login page's forms post: `/login` with the authorization request.
fn login_action(req: &AuthorizeRequest, next: Option<&str>) -> String {
    let query = match (req.client_id.as_ref(), next) {
        (None, Some(next)) => form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish(),
        _ => as_query(req),
    };
    if query.is_empty() {
        "/login".to_owned()
    } else {
        format!("/login?{query}")
    }
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    req: &AuthorizeRequest,
    client_name: Option<String>,
    username: String,
    error: Option<String>,
    next: Option<&str>,
) -> Response {
    let action = login_action(req, next);
    let p = LoginPage {
        product: &state.config.product_name,
        client_name,
        error,
        username,
        action,
        script: PASSKEY_SCRIPT,
    };
    page(status, p.render(), req.redirect_uri.as_deref())
}

/// Answer an authorization step: a page, or the redirect to the client.
fn outcome(
    state: &AppState,
    req: &AuthorizeRequest,
    a: Authorization,
    cookie: Option<HeaderValue>,
) -> Response {
    let mut resp = match a {
        Authorization::Refused { message } => refused(state, message),
        Authorization::Redirect { location } => Redirect::to(&location).into_response(),
        Authorization::SignIn {
            client_name,
            login_hint,
        } => login_form(
            state,
            StatusCode::OK,
            req,
            Some(client_name),
            login_hint.unwrap_or_default(),
            None,
            None,
        ),
        Authorization::Consent {
            client_name,
            scopes,
            username,
        } => {
            let p = ConsentPage {
                product: &state.config.product_name,
                client_name,
                scopes: scopes.iter().map(|s| describe_scope(s)).collect(),
                username,
                action: format!("/consent?{}", as_query(req)),
            };
            page(StatusCode::OK, p.render(), req.redirect_uri.as_deref())
        }
    };
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// A domain error on a page: said so a person understands it.
fn sign_in_error(e: &Error) -> Option<(StatusCode, String)> {
    let minutes = |d: std::time::Duration| d.as_secs().div_ceil(60).max(1);
    Some(match e {
        Error::InvalidCredentials | Error::Validation(_) => (
            StatusCode::UNAUTHORIZED,
            "The username or password is not correct.".into(),
        ),
        Error::Locked { retry_after } => (
            StatusCode::LOCKED,
            format!(
                "Too many failed attempts: sign-in from your network is locked for {} more minute{}.",
                minutes(*retry_after),
                if minutes(*retry_after) == 1 { "" } else { "s" }
            ),
        ),
        Error::RateLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many attempts from your network. Try again in {} second{}.",
                retry_after.as_secs().max(1),
                if retry_after.as_secs() <= 1 { "" } else { "s" }
            ),
        ),
        Error::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            "Verify your email address first: follow the link we sent you.".into(),
        ),
        Error::Forbidden(reason) => (
            StatusCode::FORBIDDEN,
            format!("This account cannot sign in ({reason})."),
        ),
        _ => return None,
    })
}

pub(crate) fn unavailable(state: &AppState, e: &Error) -> Response {
    if matches!(e, Error::Internal(_)) {
        tracing::error!(error = %e, "OpenID Connect step failed");
    }
    message(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        "The sign-in service cannot answer right now. Try again in a moment.",
        true,
        None,
    )
}

// ---- handlers -------------------------------------------------------------------------------

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// OpenID Connect Discovery 1.0.
async fn discovery(State(state): State<AppState>) -> Response {
    if provider(&state).is_none() {
        return not_served();
    }
    let iss = state.config.issuer.trim_end_matches('/');
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "end_session_endpoint": format!("{iss}/oauth2/logout"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": domain::SUPPORTED_SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp", "amr", "acr",
            "preferred_username", "name", "given_name", "family_name", "updated_at",
            "email", "email_verified", "roles"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": [domain::ACR_PASSWORD, domain::ACR_MFA],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(doc),
    )
        .into_response()
}

async fn authorize(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let req = match params(query_or_form(&query, &body)) {
        Ok(p) => authorize_request(&p),
        Err(e) => return refused(&state, e),
    };
    let sso = sso_cookie(&state, &headers);
    match provider
        .authorize(&client.ctx, &req, sso.as_deref(), Interaction::Arrived)
        .await
    {
        Ok(a) => outcome(&state, &req, a, None),
        Err(e) => unavailable(&state, &e),
    }
}

async fn login_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let req = match params(query.as_deref().unwrap_or_default().as_bytes()) {
        Ok(p) => authorize_request(&p),
        Err(e) => return refused(&state, e),
    };
    let hint = req.login_hint.clone().unwrap_or_default();
    login_form(
        &state,
        StatusCode::OK,
        &req,
        None,
        hint,
        None,
        console_next(&query).as_deref(),
    )
}

async fn login(
    State(state): State<AppState>,
    client: Client,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let req = match params(query.as_deref().unwrap_or_default().as_bytes()) {
        Ok(p) => authorize_request(&p),
        Err(e) => return refused(&state, e),
    };
    let next = console_next(&query);
    let next = next.as_deref();
    let form = match params(&body) {
        Ok(f) => f,
        Err(e) => return refused(&state, e),
    };
    // The login endpoint's budget, on the page too (both steps).
    let admitted = match client.ip {
        Some(ip) => state.rate_limit.admit(Bucket::Login, ip).await,
        None => Ok(()),
    };
    // A passkey alone: the script put the ceremony and the assertion in the form.
    if take(&form, "mfa_token").is_none()
        && let (Some(challenge_id), Some(passkey)) =
            (take(&form, "challenge_id"), take(&form, "passkey"))
    {
        let input = match (
            uuid::Uuid::parse_str(challenge_id.trim()),
            serde_json::from_str(&passkey),
        ) {
            (Ok(challenge_id), Ok(credential)) => Ok(PasskeyLoginInput {
                challenge_id,
                credential,
            }),
            _ => Err(Error::InvalidCredentials),
        };
        let signed = match (admitted, input) {
            (Err(retry_after), _) => Err(Error::RateLimited { retry_after }),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(input)) => provider.sign_in_passkey(&client.ctx, input).await,
        };
        return match signed {
            Ok(sso) => signed_in(&state, &client, &req, provider.as_ref(), sso, next).await,
            Err(e) => {
                let (status, text) = match (&e, sign_in_error(&e)) {
                    (Error::InvalidCredentials | Error::Unauthorized, _) => (
                        StatusCode::UNAUTHORIZED,
                        "That passkey could not sign you in. Try again, or use your password."
                            .into(),
                    ),
                    (_, Some(answer)) => answer,
                    (_, None) => return unavailable(&state, &e),
                };
                let client_name = client_name_of(&client, &req, provider.as_ref()).await;
                with_retry_after(
                    login_form(
                        &state,
                        status,
                        &req,
                        client_name,
                        String::new(),
                        Some(text),
                        next,
                    ),
                    &e,
                )
            }
        };
    }
    // The second step: the form carries the mfa_token of the first.
    if let Some(mfa_token) = take(&form, "mfa_token") {
        let input = MfaVerifyInput {
            mfa_token: mfa_token.clone(),
            code: take(&form, "code").filter(|c| !c.trim().is_empty()),
            recovery_code: take(&form, "recovery_code").filter(|c| !c.trim().is_empty()),
            passkey: take(&form, "passkey")
                .filter(|p| !p.trim().is_empty())
                .map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::Null)),
        };
        let signed = match admitted {
            Err(retry_after) => Err(Error::RateLimited { retry_after }),
            Ok(()) => provider.sign_in_mfa(&client.ctx, input).await,
        };
        return match signed {
            Ok(sso) => signed_in(&state, &client, &req, provider.as_ref(), sso, next).await,
            Err(e @ (Error::InvalidMfaCode | Error::Validation(_))) => {
                let client_name = client_name_of(&client, &req, provider.as_ref()).await;
                let text = if matches!(e, Error::InvalidMfaCode) {
                    "That code is not right, or was already used. Try the next one."
                } else {
                    "Enter the code your authenticator app shows."
                };
                let pending = MfaPending {
                    mfa_required: true,
                    mfa_token,
                    methods: vec![MfaMethod::Totp, MfaMethod::RecoveryCode],
                    passkey: None,
                };
                mfa_form(
                    &state,
                    StatusCode::UNAUTHORIZED,
                    &req,
                    client_name,
                    pending,
                    Some(text.into()),
                    next,
                )
            }
            Err(e) => {
                let (status, text) = match (&e, sign_in_error(&e)) {
                    (Error::Unauthorized, _) => (
                        StatusCode::UNAUTHORIZED,
                        "This sign-in took too long or was already completed: sign in again."
                            .into(),
                    ),
                    (_, Some(answer)) => answer,
                    (_, None) => return unavailable(&state, &e),
                };
                let client_name = client_name_of(&client, &req, provider.as_ref()).await;
                with_retry_after(
                    login_form(
                        &state,
                        status,
                        &req,
                        client_name,
                        String::new(),
                        Some(text),
                        next,
                    ),
                    &e,
                )
            }
        };
    }
    let username = take(&form, "username").unwrap_or_default();
    let input = LoginInput {
        username_or_email: username.clone(),
        password: take(&form, "password").unwrap_or_default(),
    };
    let signed = match admitted {
        Err(retry_after) => Err(Error::RateLimited { retry_after }),
        Ok(()) => provider.sign_in(&client.ctx, input).await,
    };
    match signed {
        Ok(SignInOutcome::Signed(sso)) => {
            signed_in(&state, &client, &req, provider.as_ref(), sso, next).await
        }
        Ok(SignInOutcome::SecondFactor(pending)) => {
            let client_name = client_name_of(&client, &req, provider.as_ref()).await;
            mfa_form(
                &state,
                StatusCode::OK,
                &req,
                client_name,
                pending,
                None,
                next,
            )
        }
        Err(e) => match sign_in_error(&e) {
            Some((status, text)) => {
                // The page names the client again (the request is checked as on arrival).
                let client_name = client_name_of(&client, &req, provider.as_ref()).await;
                with_retry_after(
                    login_form(
                        &state,
                        status,
                        &req,
                        client_name,
                        username,
                        Some(text),
                        next,
                    ),
                    &e,
                )
            }
            None => unavailable(&state, &e),
        },
    }
}

/// The client's name for a page, when the request names a client (checked as on arrival).
async fn client_name_of(
    client: &Client,
    req: &AuthorizeRequest,
    provider: &dyn domain::OidcProvider,
) -> Option<String> {
    req.client_id.as_ref()?;
    match provider
        .authorize(&client.ctx, req, None, Interaction::Arrived)
        .await
    {
        Ok(Authorization::SignIn { client_name, .. }) => Some(client_name),
        _ => None,
    }
}

/// `Retry-After` on a page answering a lock or a rate limit.
fn with_retry_after(mut r: Response, e: &Error) -> Response {
    if let Error::RateLimited { retry_after } | Error::Locked { retry_after } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The second step's page: the code (and, when the account has them, a recovery code).
fn mfa_form(
    state: &AppState,
    status: StatusCode,
    req: &AuthorizeRequest,
    client_name: Option<String>,
    pending: MfaPending,
    error: Option<String>,
    next: Option<&str>,
) -> Response {
    let action = login_action(req, next);
    let p = MfaPage {
        product: &state.config.product_name,
        client_name,
        error,
        mfa_token: pending.mfa_token,
        totp: pending.methods.contains(&MfaMethod::Totp),
        recovery: pending.methods.contains(&MfaMethod::RecoveryCode),
        passkey: pending.passkey.map(|o| o.to_string()),
        restart: action.clone(),
        action,
        script: PASSKEY_SCRIPT,
    };
    let mut r = page(status, p.render(), req.redirect_uri.as_deref());
    // The page holds a live mfa_token: never stored.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A sign-in completed: the SSO cookie, then the authorization continues (or, without a
/// client, the signed-in page).
async fn signed_in(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    provider: &dyn domain::OidcProvider,
    sso: domain::SsoSignIn,
    next: Option<&str>,
) -> Response {
    let cookie = set_cookie(state, &sso.token, sso.expires_in);
    if req.client_id.is_none() {
        // Signed in for this site itself: to the console page that asked, else the account.
        let mut r = Redirect::to(next.unwrap_or("/account")).into_response();
        r.headers_mut().append(header::SET_COOKIE, cookie);
        return r;
    }
    match provider
        .authorize(&client.ctx, req, Some(&sso.token), Interaction::SignedIn)
        .await
    {
        Ok(a) => outcome(state, req, a, Some(cookie)),
        Err(e) => unavailable(state, &e),
    }
}

async fn consent(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let req = match params(query.as_deref().unwrap_or_default().as_bytes()) {
        Ok(p) => authorize_request(&p),
        Err(e) => return refused(&state, e),
    };
    let allow = match params(&body).map(|f| take(&f, "decision")) {
        Ok(Some(d)) if d == "allow" => true,
        Ok(Some(d)) if d == "deny" => false,
        _ => {
            return refused(
                &state,
                "The consent form was not answered with allow or deny.",
            );
        }
    };
    let sso = sso_cookie(&state, &headers);
    match provider
        .authorize(
            &client.ctx,
            &req,
            sso.as_deref(),
            Interaction::Consented { allow },
        )
        .await
    {
        Ok(a) => outcome(&state, &req, a, None),
        Err(e) => unavailable(&state, &e),
    }
}

async fn logout_page(State(state): State<AppState>) -> Response {
    let p = LogoutPage {
        product: &state.config.product_name,
    };
    page(StatusCode::OK, p.render(), None)
}

async fn logout(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    if let Some(sso) = sso_cookie(&state, &headers)
        && let Err(e) = provider.sign_out(&client.ctx, &sso).await
    {
        return unavailable(&state, &e);
    }
    let mut r = signed_out(&state);
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, "", 0));
    r
}

fn signed_out(state: &AppState) -> Response {
    message(
        state,
        StatusCode::OK,
        "You are signed out",
        format!(
            "You are signed out of {} in this browser.",
            state.config.product_name
        ),
        false,
        Some(("/login", "Sign in again")),
    )
}

async fn forgot_page(State(state): State<AppState>) -> Response {
    let p = ForgotPage {
        product: &state.config.product_name,
        sent: false,
        error: None,
    };
    page(StatusCode::OK, p.render(), None)
}

async fn forgot(State(state): State<AppState>, client: Client, body: Bytes) -> Response {
    let email = params(&body)
        .ok()
        .and_then(|f| take(&f, "email"))
        .unwrap_or_default();
    let admitted = match client.ip {
        Some(ip) => state.rate_limit.admit(Bucket::Recovery, ip).await,
        None => Ok(()),
    };
    let answer = match admitted {
        Err(retry_after) => Err(Error::RateLimited { retry_after }),
        Ok(()) => {
            state
                .auth
                .forgot_password(&client.ctx, domain::ForgotPasswordInput { email })
                .await
        }
    };
    let (status, sent, error) = match answer {
        Ok(()) => (StatusCode::OK, true, None),
        Err(Error::Validation(_)) => (
            StatusCode::BAD_REQUEST,
            false,
            Some("Enter a valid email address.".to_owned()),
        ),
        Err(e) => match sign_in_error(&e) {
            Some((status, text)) => (status, false, Some(text)),
            None => return unavailable(&state, &e),
        },
    };
    let p = ForgotPage {
        product: &state.config.product_name,
        sent,
        error,
    };
    page(status, p.render(), None)
}

/// The client's credentials: HTTP Basic (each part form-urlencoded, RFC 6749 §2.3.1) or the
/// form; both at once is refused.
fn client_credentials(
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<(Option<String>, Option<String>, ClientAuth), &'static str> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let form_secret = take(form, "client_secret");
    match basic {
        Some(b) => {
            use base64::Engine;
            if form_secret.is_some() {
                return Err("use one client authentication method");
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or("the Basic credentials are malformed")?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or("the Basic credentials are malformed")?;
            let unescape = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let id = unescape(id);
            if take(form, "client_id").is_some_and(|f| f != id) {
                return Err("client_id differs from the Basic credentials");
            }
            Ok((Some(id), Some(unescape(secret)), ClientAuth::Basic))
        }
        None => match form_secret {
            Some(secret) => Ok((take(form, "client_id"), Some(secret), ClientAuth::Post)),
            None => Ok((take(form, "client_id"), None, ClientAuth::None)),
        },
    }
}

/// A refusal of the provider, with its RFC 6749 status.
fn refusal(e: &domain::OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    oauth_error(status, &e.error, &e.error_description)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        [(header::PRAGMA, "no-cache")],
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"arcana\""),
        );
    }
    r
}

async fn token(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let form = match params(&body) {
        Ok(f) => f,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let (client_id, client_secret, auth) = match client_credentials(&headers, &form) {
        Ok(c) => c,
        Err(e) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", e),
    };
    // The refresh grant shares the API refresh's budget.
    if take(&form, "grant_type").as_deref() == Some("refresh_token")
        && let Some(ip) = client.ip
        && let Err(retry_after) = state.rate_limit.admit(Bucket::Refresh, ip).await
    {
        let mut r = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many token requests from this address",
        );
        if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let req = TokenRequest {
        grant_type: take(&form, "grant_type"),
        code: take(&form, "code"),
        redirect_uri: take(&form, "redirect_uri"),
        code_verifier: take(&form, "code_verifier"),
        refresh_token: take(&form, "refresh_token"),
        scope: take(&form, "scope"),
        client_id,
        client_secret,
        auth,
    };
    match provider.token(&client.ctx, req).await {
        Ok(Ok(tokens)) => ([(header::PRAGMA, "no-cache")], axum::Json(tokens)).into_response(),
        Ok(Err(e)) => refusal(&e),
        Err(e) => server_error(&e),
    }
}

/// UserInfo (OpenID Connect Core §5.3), the access token in the `Authorization` header.
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let invalid = |desc: &str| {
        let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{desc}\"");
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\"")),
            )],
            axum::Json(json!({"error": "invalid_token", "error_description": desc})),
        )
            .into_response()
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        *r.body_mut() = axum::body::Body::from(
            json!({"error": "invalid_request", "error_description": "a bearer token is required"})
                .to_string(),
        );
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    };
    match provider.userinfo(token.trim()).await {
        Ok(claims) => axum::Json(claims).into_response(),
        Err(Error::Unauthorized | Error::TokenExpired) => {
            invalid("the access token is invalid, expired or revoked")
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "temporarily_unavailable"})),
            )
                .into_response()
        }
    }
}

/// The form of a client's token call (revocation, introspection): checked as the token
/// endpoint checks its own, with the client's credentials.
fn client_token_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ClientTokenRequest, Box<Response>> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )));
    }
    let form = params(body)
        .map_err(|e| Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e)))?;
    let (client_id, client_secret, auth) = client_credentials(headers, &form)
        .map_err(|e| Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", e)))?;
    Ok(ClientTokenRequest {
        token: take(&form, "token"),
        token_type_hint: take(&form, "token_type_hint"),
        client_id,
        client_secret,
        auth,
    })
}

fn server_error(e: &Error) -> Response {
    match e {
        Error::Unavailable => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again in a moment",
        ),
        e => {
            tracing::error!(error = %e, "OpenID Connect endpoint failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

/// RFC 7009.
async fn revoke(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let req = match client_token_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match provider.revoke(&client.ctx, req).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => refusal(&e),
        Err(e) => server_error(&e),
    }
}

/// RFC 7662.
async fn introspect(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let req = match client_token_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match provider.introspect(&client.ctx, req).await {
        Ok(Ok(claims)) => axum::Json(claims).into_response(),
        Ok(Err(e)) => refusal(&e),
        Err(e) => server_error(&e),
    }
}

/// RP-Initiated Logout 1.0 (GET query or POST form).
async fn end_session(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let p = match params(query_or_form(&query, &body)) {
        Ok(p) => p,
        Err(e) => return refused(&state, e),
    };
    let req = EndSessionRequest {
        id_token_hint: take(&p, "id_token_hint"),
        post_logout_redirect_uri: take(&p, "post_logout_redirect_uri"),
        state: take(&p, "state"),
        client_id: take(&p, "client_id"),
    };
    let sso = sso_cookie(&state, &headers);
    match provider
        .end_session(&client.ctx, &req, sso.as_deref())
        .await
    {
        Ok(EndSession::Refused { message }) => refused(&state, message),
        Ok(EndSession::Confirm) => logout_page(State(state)).await,
        Ok(EndSession::SignedOut { redirect }) => {
            let mut r = match redirect {
                Some(to) => Redirect::to(&to).into_response(),
                None => signed_out(&state),
            };
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&state, "", 0));
            r
        }
        Err(e) => unavailable(&state, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_oversized_and_plain_parameters() {
        assert!(params(b"a=1&b=2").is_ok());
        assert!(params(b"a=1&a=2").unwrap_err().contains("more than once"));
        let long = format!("a={}", "x".repeat(MAX_VALUE + 1));
        assert!(params(long.as_bytes()).unwrap_err().contains("too long"));
        let huge = "a=1&".repeat(MAX_PARAMS);
        assert!(params(huge.as_bytes()).is_err());
    }

    #[test]
    fn the_request_survives_the_form_action() {
        let p = params(
            b"client_id=c&redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1&scope=openid+email&state=s%26t",
        )
        .unwrap();
        let req = authorize_request(&p);
        let again = authorize_request(&params(as_query(&req).as_bytes()).unwrap());
        assert_eq!(req, again);
        assert_eq!(
            req.redirect_uri.as_deref(),
            Some("https://a.example/cb?x=1")
        );
        assert_eq!(req.state.as_deref(), Some("s&t"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine;
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        let (id, secret, auth) = client_credentials(&h, &[]).unwrap();
        assert_eq!(
            (id.as_deref(), secret.as_deref(), auth),
            (Some("my id"), Some("s:cret"), ClientAuth::Basic)
        );
        let both = [("client_secret".to_owned(), "x".to_owned())];
        assert!(client_credentials(&h, &both).is_err());
    }
}
