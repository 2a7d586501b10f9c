//! The account console (`/account`) and the admin console (`/admin`): server-rendered pages at
//! the edge, signed in with the hosted login's SSO cookie, acting through the same service ports
//! (and so the same rules, audit and errors) as the REST API.
//!
//! A page turns the browser's SSO session into an access token of that session
//! (`OidcProvider::console_access`, cached here for a minute) and calls the ports as its owner;
//! the token never reaches the browser. Forms post to this origin only (the strict CSP's
//! `form-action 'self'`), cross-site posts are refused by tower-http's `csrf` layer
//! (`Sec-Fetch-Site` / `Origin`) and the cookie is `SameSite=Lax`. Every answer that shows a
//! secret (a client secret, recovery codes, a TOTP seed) is the answer to the POST that made
//! it, `no-store`, and never shown again. Pages work without JavaScript; the one script adds a
//! passkey (WebAuthn needs it), with the hosted login's script.
use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use domain::{AccessToken, Caller, Error, Timestamp, User};

use super::oidc::{self, set_cookie, sso_cookie};
use crate::AppState;
use crate::extract::Client;

mod account;
mod admin;

/// The hosted pages' one script (here: adding a passkey), inline and pinned by its hash in the
/// CSP.
use super::oidc::PASSKEY_SCRIPT as SCRIPT;

/// How long a console access token is reused before another is asked for (the session's
/// liveness is still checked on every page, within `authn::SESSION_CACHE_TTL`).
pub const TOKEN_REUSE: Duration = Duration::from_secs(60);

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(account::router())
        .merge(admin::router())
        .layer(tower_http::csrf::CsrfLayer::new())
}

/// The access tokens of consoles in use, by SHA-256 of the SSO cookie.
pub fn token_cache() -> moka::sync::Cache<String, String> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(TOKEN_REUSE)
        .build()
}

/// To the hosted login, back to `next` (a console path) once signed in.
fn to_login(state: &AppState, next: &str, clear_cookie: bool) -> Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    let mut r = Redirect::to(&format!("/login?{q}")).into_response();
    if clear_cookie {
        r.headers_mut()
            .append(header::SET_COOKIE, set_cookie(state, "", 0));
    }
    r
}

/// The person signed in to this browser, as a caller of the service ports; or the answer to
/// send instead (the login page, or the provider's absence).
async fn caller(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    next: &str,
) -> Result<Caller, Response> {
    let Some(provider) = state.oidc.clone() else {
        return Err(crate::error::ApiError::RouteNotFound.into_response());
    };
    let Some(sso) = sso_cookie(state, headers) else {
        return Err(to_login(state, next, false));
    };
    let key = crypto::sha256_hex(&sso);
    for fresh in [false, true] {
        let cached = if fresh {
            None
        } else {
            state.console_tokens.get(&key)
        };
        let token = match cached {
            Some(t) => t,
            None => match provider.console_access(&client.ctx, &sso).await {
                Ok(Some(a)) => {
                    state
                        .console_tokens
                        .insert(key.clone(), a.access_token.clone());
                    a.access_token
                }
                Ok(None) => return Err(to_login(state, next, true)),
                Err(e) => return Err(oidc::unavailable(state, &e)),
            },
        };
        match state.authn.authenticate(&token).await {
            Ok(who) => {
                return Ok(Caller {
                    who,
                    ctx: client.ctx.clone(),
                    token: Some(AccessToken::new(token)),
                });
            }
            // Expired, or the session or role changed since: ask once more.
            Err(Error::Unauthorized | Error::TokenExpired) => state.console_tokens.invalidate(&key),
            Err(e) => return Err(oidc::unavailable(state, &e)),
        }
    }
    Err(to_login(state, next, true))
}

/// The person signed in to this browser and their account (an extractor); instead, the login
/// page when nobody is, or a page saying why not.
pub(crate) struct Signed {
    pub caller: Caller,
    pub me: User,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let next = return_path(parts);
        let client = Client::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = caller(state, &client, &parts.headers, &next).await?;
        // From the user context, which the profile's writes go to (in microservices mode the
        // auth context may hold a cached copy for a moment).
        let me = state
            .users
            .get_user(&caller, caller.who.user_id)
            .await
            .map_err(|e| page_error(state, e, &next))?;
        Ok(Self { caller, me })
    }
}

/// A signed-in administrator (an extractor); anyone else gets a 403 page (the ports would refuse
/// them anyway).
pub(crate) struct Admin(pub Signed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let signed = Signed::from_request_parts(parts, state).await?;
        if signed.me.role != domain::Role::Admin {
            return Err(oidc::message(
                state,
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This page is for administrators. Your own account is in the account console.",
                true,
                Some(("/account", "Your account")),
            ));
        }
        Ok(Self(signed))
    }
}

/// Where a sign-in this request starts comes back to: the page itself (a GET), or the
/// section's first page (a form's POST is not repeated).
fn return_path(parts: &Parts) -> String {
    let path = parts.uri.path();
    if parts.method == Method::GET {
        path.to_owned()
    } else if path.starts_with("/admin") {
        "/admin/users".into()
    } else {
        "/account".into()
    }
}

/// An error where no form can take it: a page that says it.
pub(crate) fn page_error(state: &AppState, e: Error, next: &str) -> Response {
    match refusal(state, e, next) {
        Refusal::Page(r) => *r,
        Refusal::Form(status, p) => oidc::message(
            state,
            status,
            "This cannot be done",
            if p.fields.is_empty() {
                p.general.unwrap_or_default()
            } else {
                p.fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            true,
            Some(("/account", "Back to your account")),
        ),
    }
}

/// What went wrong with a form, said next to its fields (or above the form).
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub fields: BTreeMap<String, String>,
    pub general: Option<String>,
}

impl Problems {
    pub fn field(name: &str, text: impl Into<String>) -> Self {
        let mut p = Self::default();
        p.fields.insert(name.to_owned(), text.into());
        p
    }
    pub fn general(text: impl Into<String>) -> Self {
        Self {
            general: Some(text.into()),
            ..Self::default()
        }
    }
    /// The problem of field `name`, for the template.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// How a refused form is answered: the page again, with this status and these problems; or
/// something else altogether (the login page, an error page).
pub(crate) enum Refusal {
    Form(StatusCode, Problems),
    Page(Box<Response>),
}

/// A domain error as a person reads it. `next`: the page to come back to after signing in.
pub(crate) fn refusal(state: &AppState, e: Error, next: &str) -> Refusal {
    match refusal_of(e) {
        Ok((status, problems)) => Refusal::Form(status, problems),
        Err(Error::Unauthorized | Error::TokenExpired) => {
            Refusal::Page(Box::new(to_login(state, next, false)))
        }
        Err(e) => Refusal::Page(Box::new(oidc::unavailable(state, &e))),
    }
}

/// The status and problems a form shows for `e`; the error back when no form can say it.
fn refusal_of(e: Error) -> Result<(StatusCode, Problems), Error> {
    let minutes = |d: Duration| d.as_secs().div_ceil(60).max(1);
    let (status, problems) = match e {
        Error::Validation(f) => {
            // A list's entries (`redirect_uris[1]`) are said at the list's one field.
            let mut fields: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in f.0 {
                let (base, entry) = match k.split_once('[') {
                    Some((base, rest)) => (base.to_owned(), format!("line {}: ", entry_no(rest))),
                    None => (k, String::new()),
                };
                let text = sentence(&format!("{entry}{}", v.join("; ")));
                fields
                    .entry(base)
                    .and_modify(|t| {
                        t.push(' ');
                        t.push_str(&text);
                    })
                    .or_insert(text);
            }
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Problems {
                    fields,
                    general: Some("Some fields need another look.".into()),
                },
            )
        }
        Error::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            Problems::field("current_password", "This is not your current password."),
        ),
        Error::InvalidMfaCode => (
            StatusCode::UNAUTHORIZED,
            Problems::field(
                "code",
                "That code is not right, or was already used. Try the next one.",
            ),
        ),
        Error::Conflict { message, .. } => {
            (StatusCode::CONFLICT, Problems::general(sentence(&message)))
        }
        // The password check of a sensitive change (`UserService`): said at its field.
        Error::Forbidden(reason) if reason.contains("current password") => (
            StatusCode::FORBIDDEN,
            Problems::field("current_password", "This is not your current password."),
        ),
        Error::Forbidden(reason) => (
            StatusCode::FORBIDDEN,
            Problems::general(format!("Not allowed: {reason}.")),
        ),
        Error::MfaRequired => (
            StatusCode::FORBIDDEN,
            Problems::general(
                "Administrators must set up a second factor first (Account → Security).",
            ),
        ),
        Error::NotFound => (
            StatusCode::NOT_FOUND,
            Problems::general("It does not exist (any more)."),
        ),
        Error::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            Problems::general("Verify your email address first: follow the link we sent you."),
        ),
        Error::RateLimited { retry_after } | Error::Locked { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            Problems::general(format!(
                "Too many attempts: try again in {} minute{}.",
                minutes(retry_after),
                if minutes(retry_after) == 1 { "" } else { "s" }
            )),
        ),
        e => return Err(e),
    };
    Ok((status, problems))
}

/// `1]` (the rest of `field[0]`) as the 1-based line a person typed it on.
fn entry_no(rest: &str) -> String {
    rest.trim_end_matches(']')
        .parse::<usize>()
        .map(|i| (i + 1).to_string())
        .unwrap_or_else(|_| rest.trim_end_matches(']').to_owned())
}

/// A message from the domain as a sentence: capital first letter, full stop.
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The request's form as pairs; a malformed one is an empty form (every field is then
/// reported missing by the rules behind the port).
pub(crate) fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    oidc::params(raw).unwrap_or_default()
}

/// The query as pairs, as [`pairs`].
pub(crate) fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    pairs(q.as_deref().unwrap_or_default().as_bytes())
}

/// After a form that worked: back to `to` (a page of this site), which says what happened.
pub(crate) fn done(to: &str, what: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={what}")).into_response()
}

/// The confirmation a `done=` parameter stands for (a fixed list: nothing from the address is
/// shown).
pub(crate) fn flash(query: &[(String, String)]) -> Option<&'static str> {
    Some(match oidc::take(query, "done")?.as_str() {
        "profile" => "Your profile is saved.",
        "email" => "Saved. We sent a link to the new address: follow it to verify it.",
        "verification" => "We sent you a new verification link.",
        "password" => "Your password is changed. Your other sessions were signed out.",
        "session" => "That session is signed out.",
        "token-revoked" => "The token is revoked: it no longer works.",
        "totp-off" => "The authenticator app no longer signs you in.",
        "passkey-added" => "The passkey is added.",
        "passkey-renamed" => "The passkey is renamed.",
        "passkey-removed" => "The passkey is removed.",
        "saved" => "Saved.",
        "verified" => "The email address is marked as verified.",
        "role" => "The role is changed. The user's sessions were signed out.",
        "status" => "The status is changed.",
        "reset" => "A password reset link is on its way to the user's address.",
        "unlocked" => "Every sign-in lockout of the user is lifted.",
        "mfa-removed" => "The user's second factors are removed; their sessions were signed out.",
        "deleted" => "Deleted.",
        _ => return None,
    })
}

/// `act` when the form's confirmation box is ticked (else the box's refusal, and `act` never
/// runs: a future does nothing until awaited), its error as a refusal answered on page `to`.
pub(crate) async fn if_confirmed<T>(
    state: &AppState,
    form: &[(String, String)],
    to: &str,
    act: impl std::future::Future<Output = domain::Result<T>>,
) -> Result<T, Refusal> {
    confirmed(form)?;
    act.await.map_err(|e| refusal(state, e, to))
}

/// A form's checkbox that confirms a destructive action.
pub(crate) fn confirmed(form: &[(String, String)]) -> Result<(), Refusal> {
    if oidc::take(form, "confirm").as_deref() == Some("yes") {
        Ok(())
    } else {
        Err(Refusal::Form(
            StatusCode::UNPROCESSABLE_ENTITY,
            Problems::field("confirm", "Tick the box to confirm."),
        ))
    }
}

/// A page of the console: its HTML, the strict policy, never stored (pages show personal data).
pub(crate) fn render(status: StatusCode, html: askama::Result<String>) -> Response {
    let mut r = oidc::page(status, html, None);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What every console page shows around its content.
pub(crate) struct Frame {
    pub product: String,
    /// `account` or `admin`.
    pub section: &'static str,
    /// The tab within the section.
    pub tab: &'static str,
    pub admin: bool,
    pub username: String,
    pub flash: Option<&'static str>,
}

impl Frame {
    pub fn new(state: &AppState, me: &User, section: &'static str, tab: &'static str) -> Self {
        Self {
            product: state.config.product_name.clone(),
            section,
            tab,
            admin: me.role == domain::Role::Admin,
            username: me.username.clone(),
            flash: None,
        }
    }

    /// A time as the pages show it (UTC, to the minute).
    pub fn when(&self, t: &Timestamp) -> String {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// A time that may be absent.
    pub fn when_opt(&self, t: &Option<Timestamp>) -> String {
        t.as_ref()
            .map(|t| self.when(t))
            .unwrap_or_else(|| "never".into())
    }

    /// An audit event's type as a person reads it.
    pub fn describe(&self, e: &domain::AuditEvent) -> String {
        describe_event(&e.r#type)
    }

    /// An audit event's type as recorded (`r#type` is no name a template can spell).
    pub fn kind_of<'e>(&self, e: &'e domain::AuditEvent) -> &'e str {
        &e.r#type
    }
}

/// An audit event's type as a person reads it.
fn describe_event(kind: &str) -> String {
    let text = match kind {
        "auth.login" => "Sign-in",
        "auth.logout" => "Sign-out",
        "auth.logout_all" => "Signed out everywhere",
        "auth.lockout" => "Sign-in locked after failed attempts",
        "auth.register" => "Account registered",
        "auth.refresh_reuse" => "A stolen session token was refused (session ended)",
        "auth.session_revoked" => "Session signed out",
        "auth.password_reset" => "Password reset",
        "auth.password_reset_requested" => "Password reset requested",
        "auth.email_verification_requested" => "Verification link requested",
        "auth.email_verified" => "Email address verified",
        "mfa.totp_setup" => "Authenticator app set up started",
        "mfa.totp_enabled" => "Authenticator app turned on",
        "mfa.totp_disabled" => "Authenticator app turned off",
        "mfa.recovery_codes" => "New recovery codes",
        "mfa.removed" => "Second factors removed by an administrator",
        "mfa.passkey_added" => "Passkey added",
        "mfa.passkey_renamed" => "Passkey renamed",
        "mfa.passkey_deleted" => "Passkey removed",
        "oidc.consent" => "Access granted to an application",
        "oidc.token" => "Application signed in",
        "oidc.revoke" => "Application access revoked",
        "oidc.code_reuse" => "A reused sign-in code was refused",
        "oidc.client.created" => "OpenID Connect client created",
        "oidc.client.updated" => "OpenID Connect client changed",
        "oidc.client.deleted" => "OpenID Connect client deleted",
        "oidc.client.secret_rotated" => "OpenID Connect client secret rotated",
        "user.created" => "Account created",
        "user.updated" => "Profile changed",
        "user.deleted" => "Account deleted",
        "user.email_reverted" => "Email change undone",
        "user.password_changed" => "Password changed",
        "user.role_changed" => "Role changed",
        "user.status_changed" => "Status changed",
        "user.verified" => "Email marked verified",
        "user.unlocked" => "Sign-in lockouts lifted by an administrator",
        other => return other.to_owned(),
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::oidc::console_next;

    #[test]
    fn sign_in_returns_only_to_a_console_page() {
        let next = |q: &str| console_next(&Some(q.to_owned()));
        assert_eq!(
            next("next=%2Fadmin%2Fusers").as_deref(),
            Some("/admin/users")
        );
        assert_eq!(next("next=/account").as_deref(), Some("/account"));
        for evil in [
            "next=https%3A%2F%2Fevil.example",
            "next=%2F%2Fevil.example",
            "next=/accounts",
            "next=/admin/../oauth2/logout",
            "next=/account?x=1",
            "next=/admin%0d%0aSet-Cookie:x",
            "other=/account",
        ] {
            assert_eq!(next(evil), None, "{evil}");
        }
        assert_eq!(console_next(&None), None);
    }

    #[test]
    fn domain_words_become_sentences_at_their_fields() {
        assert_eq!(sentence("must not be empty"), "Must not be empty.");
        assert_eq!(sentence("Done!"), "Done!");
        assert_eq!(entry_no("0]"), "1");
        let mut f = domain::FieldErrors::new();
        f.add("redirect_uris[1]", "must use https");
        f.add("redirect_uris[0]", "is not a URI");
        f.add("name", "must not be empty");
        let Ok(state_free) = refusal_of(Error::Validation(f)) else {
            panic!("a validation error is a form's problem")
        };
        assert_eq!(state_free.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            state_free.1.get("redirect_uris"),
            Some("Line 1: is not a URI. Line 2: must use https.")
        );
        assert_eq!(state_free.1.get("name"), Some("Must not be empty."));
        assert_eq!(flash(&[("done".into(), "<script>".into())]), None);
    }
}
