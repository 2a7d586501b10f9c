//! `/account`: the signed-in person's own profile, password, second factors, sessions and
//! security events.
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::{
    AccessTokenInfo, AccessTokenInput, AuditEvent, Caller, IssuedAccessToken, MfaCodeInput,
    MfaStatus, PasskeyInfo, PasskeyRegistrationInput, PasskeyRename, PasswordInput, RawAuditQuery,
    SessionInfo, TotpDisableInput, TotpSetupInput, User, UserPatch,
};

use super::{
    Frame, Problems, Refusal, SCRIPT, Signed, done, flash, if_confirmed, page_error, pairs,
    query_pairs, refusal, render,
};
use crate::AppState;
use crate::extract::Client;
use crate::routes::oidc::take;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(profile_page))
        .route("/account/profile", post(save_profile))
        .route("/account/password", post(change_password))
        .route("/account/verification", post(resend_verification))
        .route("/account/security", get(security_page))
        .route("/account/totp/setup", post(totp_setup))
        .route("/account/totp/confirm", post(totp_confirm))
        .route("/account/totp/disable", post(totp_disable))
        .route("/account/recovery-codes", post(recovery_codes))
        .route("/account/passkeys/start", post(passkey_start))
        .route("/account/passkeys/finish", post(passkey_finish))
        .route("/account/passkeys/{id}/rename", post(passkey_rename))
        .route("/account/passkeys/{id}/delete", post(passkey_delete))
        .route("/account/sessions", get(sessions_page))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
        .route("/account/sessions/revoke-all", post(revoke_all))
        .route("/account/activity", get(activity_page))
        .route("/account/tokens", get(tokens_page).post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
}

// ---- profile and password ---------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    f: Frame,
    me: User,
    first_name: String,
    last_name: String,
    email: String,
    p: Problems,
    /// Which form the problems are about: `profile` or `password`.
    form: &'static str,
}

fn profile(
    state: &AppState,
    me: User,
    status: StatusCode,
    flash_msg: Option<&'static str>,
    values: Option<&[(String, String)]>,
    p: Problems,
    form: &'static str,
) -> Response {
    let value = |name: &str, current: &Option<String>| match values {
        Some(v) => take(v, name).unwrap_or_default(),
        None => current.clone().unwrap_or_default(),
    };
    let mut f = Frame::new(state, &me, "account", "profile");
    f.flash = flash_msg;
    let page = ProfilePage {
        first_name: value("first_name", &me.first_name),
        last_name: value("last_name", &me.last_name),
        email: value("email", &Some(me.email.clone())),
        f,
        me,
        p,
        form,
    };
    render(status, page.render())
}

async fn profile_page(
    State(state): State<AppState>,
    Signed { me, .. }: Signed,
    RawQuery(q): RawQuery,
) -> Response {
    let flash_msg = flash(&query_pairs(&q));
    profile(
        &state,
        me,
        StatusCode::OK,
        flash_msg,
        None,
        Problems::default(),
        "",
    )
}

/// An optional text field: blank clears it.
fn optional(form: &[(String, String)], name: &str) -> Option<Option<String>> {
    Some(
        take(form, name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
    )
}

async fn save_profile(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let email = take(&form, "email").map(|e| e.trim().to_owned());
    let email_changed = email.as_deref().is_some_and(|e| e != me.email);
    let patch = UserPatch {
        current_password: take(&form, "current_password").filter(|_| email_changed),
        email: email.filter(|_| email_changed),
        first_name: optional(&form, "first_name"),
        last_name: optional(&form, "last_name"),
        phone: None,
        avatar_url: None,
    };
    match state.users.update_user(&caller, me.id, patch).await {
        Ok(_) => done("/account", if email_changed { "email" } else { "profile" }),
        Err(e) => match refusal(&state, e, "/account") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => {
                profile(&state, me, status, None, Some(&form), p, "profile")
            }
        },
    }
}

async fn change_password(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    client: Client,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let new_password = take(&form, "new_password").unwrap_or_default();
    if take(&form, "confirm_password").unwrap_or_default() != new_password {
        let p = Problems::field("confirm_password", "The two new passwords differ.");
        return profile(
            &state,
            me,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            p,
            "password",
        );
    }
    let input = PasswordInput {
        current_password: Some(take(&form, "current_password").unwrap_or_default()),
        new_password,
    };
    let admitted = state
        .rate_limit
        .admit_password_change(me.id, client.ip)
        .await;
    let changed = match admitted {
        Err(retry_after) => Err(domain::Error::RateLimited { retry_after }),
        Ok(()) => state.users.change_password(&caller, me.id, input).await,
    };
    match changed {
        Ok(()) => done("/account", "password"),
        Err(e) => match refusal(&state, e, "/account") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => profile(&state, me, status, None, None, p, "password"),
        },
    }
}

async fn resend_verification(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
) -> Response {
    match state.auth.resend_verification(&caller).await {
        Ok(()) => done("/account", "verification"),
        Err(e) => match refusal(&state, e, "/account") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => profile(&state, me, status, None, None, p, "profile"),
        },
    }
}

// ---- second factors ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/security.html")]
struct SecurityPage {
    f: Frame,
    mfa: MfaStatus,
    passkeys: Vec<PasskeyInfo>,
    p: Problems,
    /// Which form the problems are about.
    form: String,
    script: &'static str,
}

async fn security(
    state: &AppState,
    caller: &Caller,
    me: &User,
    status: StatusCode,
    flash_msg: Option<&'static str>,
    p: Problems,
    form: &str,
) -> Response {
    let (mfa, passkeys) = match tokio::try_join!(
        state.auth.mfa_status(caller),
        state.auth.list_passkeys(caller)
    ) {
        Ok(x) => x,
        Err(e) => return page_error(state, e, "/account/security"),
    };
    let mut f = Frame::new(state, me, "account", "security");
    f.flash = flash_msg;
    let page = SecurityPage {
        f,
        mfa,
        passkeys,
        p,
        form: form.to_owned(),
        script: SCRIPT,
    };
    render(status, page.render())
}

async fn security_page(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    RawQuery(q): RawQuery,
) -> Response {
    let flash_msg = flash(&query_pairs(&q));
    security(
        &state,
        &caller,
        &me,
        StatusCode::OK,
        flash_msg,
        Problems::default(),
        "",
    )
    .await
}

/// A form of the security page refused: the page again with the problems at that form.
async fn security_refused(
    state: &AppState,
    caller: &Caller,
    me: &User,
    e: Refusal,
    form: &str,
) -> Response {
    match e {
        Refusal::Page(r) => *r,
        Refusal::Form(status, p) => security(state, caller, me, status, None, p, form).await,
    }
}

#[derive(Template)]
#[template(path = "console/totp.html")]
struct TotpPage {
    f: Frame,
    /// Set up just now: the secret, shown this once.
    qr_svg: Option<String>,
    secret: Option<String>,
    p: Problems,
}

#[derive(Template)]
#[template(path = "console/codes.html")]
struct CodesPage {
    f: Frame,
    codes: Vec<String>,
    first: bool,
}

/// The recovery codes, shown this once (`first`: the answer to turning the app on).
fn codes_page(state: &AppState, me: &User, codes: Vec<String>, first: bool) -> Response {
    let page = CodesPage {
        f: Frame::new(state, me, "account", "security"),
        codes,
        first,
    };
    render(StatusCode::OK, page.render())
}

async fn totp_setup(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = TotpSetupInput {
        current_password: take(&form, "current_password").unwrap_or_default(),
    };
    match state.auth.totp_setup(&caller, input).await {
        Ok(setup) => {
            let page = TotpPage {
                f: Frame::new(&state, &me, "account", "security"),
                qr_svg: Some(setup.qr_svg),
                secret: Some(setup.secret),
                p: Problems::default(),
            };
            render(StatusCode::OK, page.render())
        }
        Err(e) => {
            let r = refusal(&state, e, "/account/security");
            security_refused(&state, &caller, &me, r, "totp-setup").await
        }
    }
}

async fn totp_confirm(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = MfaCodeInput {
        code: take(&form, "code").unwrap_or_default(),
    };
    match state.auth.totp_confirm(&caller, input).await {
        Ok(codes) => codes_page(&state, &me, codes.recovery_codes, true),
        Err(e) => match refusal(&state, e, "/account/security") {
            Refusal::Page(r) => *r,
            // The secret is not shown again: the app has it from the first page.
            Refusal::Form(status, p) => {
                let page = TotpPage {
                    f: Frame::new(&state, &me, "account", "security"),
                    qr_svg: None,
                    secret: None,
                    p,
                };
                render(status, page.render())
            }
        },
    }
}

async fn totp_disable(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = TotpDisableInput {
        current_password: take(&form, "current_password").unwrap_or_default(),
        code: take(&form, "code").unwrap_or_default(),
    };
    match state.auth.totp_disable(&caller, input).await {
        Ok(()) => done("/account/security", "totp-off"),
        Err(e) => {
            let r = refusal(&state, e, "/account/security");
            security_refused(&state, &caller, &me, r, "totp-disable").await
        }
    }
}

async fn recovery_codes(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = MfaCodeInput {
        code: take(&form, "code").unwrap_or_default(),
    };
    match state.auth.regenerate_recovery_codes(&caller, input).await {
        Ok(codes) => codes_page(&state, &me, codes.recovery_codes, false),
        Err(e) => {
            let r = refusal(&state, e, "/account/security");
            security_refused(&state, &caller, &me, r, "recovery").await
        }
    }
}

/// The options of `navigator.credentials.create` for the console's script (JSON).
async fn passkey_start(State(state): State<AppState>, Signed { caller, .. }: Signed) -> Response {
    match state.auth.passkey_register_start(&caller).await {
        Ok(challenge) => axum::Json(challenge).into_response(),
        Err(e) => crate::error::ApiError::Domain(e).into_response(),
    }
}

async fn passkey_finish(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = PasskeyRegistrationInput {
        name: take(&form, "name").unwrap_or_default(),
        credential: take(&form, "credential")
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(serde_json::Value::Null),
        challenge_id: take(&form, "challenge_id").and_then(|c| uuid::Uuid::parse_str(&c).ok()),
    };
    match state.auth.passkey_register_finish(&caller, input).await {
        Ok(_) => done("/account/security", "passkey-added"),
        Err(e) => {
            let r = refusal(&state, e, "/account/security");
            security_refused(&state, &caller, &me, r, "passkey-add").await
        }
    }
}

async fn passkey_rename(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return page_error(&state, domain::Error::NotFound, "/account/security");
    };
    let input = PasskeyRename {
        name: take(&form, "name").unwrap_or_default(),
    };
    match state.auth.rename_passkey(&caller, id, input).await {
        Ok(_) => done("/account/security", "passkey-renamed"),
        Err(e) => {
            let r = refusal(&state, e, "/account/security");
            security_refused(&state, &caller, &me, r, &format!("passkey-{id}")).await
        }
    }
}

async fn passkey_delete(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return page_error(&state, domain::Error::NotFound, "/account/security");
    };
    let form = pairs(&body);
    let act = state.auth.delete_passkey(&caller, id);
    let outcome = if_confirmed(&state, &form, "/account/security", act).await;
    match outcome {
        Ok(()) => done("/account/security", "passkey-removed"),
        Err(r) => security_refused(&state, &caller, &me, r, &format!("passkey-{id}")).await,
    }
}

// ---- personal access tokens -----------------------------------------------------------------

/// One scope's checkbox.
struct ScopeBox {
    name: &'static str,
    text: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    f: Frame,
    tokens: Vec<AccessTokenInfo>,
    issued: Option<IssuedAccessToken>,
    name: String,
    scopes: Vec<ScopeBox>,
    lifetimes: &'static [(u64, &'static str)],
    expires_in: u64,
    p: Problems,
}

const LIFETIMES: &[(u64, &str)] = &[
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
    (90 * 86_400, "90 days"),
    (365 * 86_400, "1 year"),
];

/// What the form asked for (kept on a refusal), or the defaults.
struct TokenForm {
    name: String,
    scopes: Vec<String>,
    expires_in: u64,
}

impl Default for TokenForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            scopes: vec![domain::Scope::UsersRead.as_str().to_owned()],
            expires_in: LIFETIMES[1].0,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn tokens(
    state: &AppState,
    caller: &Caller,
    me: &User,
    status: StatusCode,
    flash_msg: Option<&'static str>,
    issued: Option<IssuedAccessToken>,
    form: TokenForm,
    p: Problems,
) -> Response {
    let list = match state.auth.list_access_tokens(caller).await {
        Ok(t) => t,
        Err(e) => return page_error(state, e, "/account/tokens"),
    };
    let scopes = domain::Scope::ALL
        .iter()
        .filter(|s| domain::Scopes::of(&[**s]).allowed_for(me.role))
        .map(|s| ScopeBox {
            name: s.as_str(),
            text: s.description(),
            checked: form.scopes.iter().any(|n| n == s.as_str()),
        })
        .collect();
    let mut f = Frame::new(state, me, "account", "tokens");
    f.flash = flash_msg;
    let page = TokensPage {
        f,
        tokens: list,
        issued,
        name: form.name,
        scopes,
        lifetimes: LIFETIMES,
        expires_in: form.expires_in,
        p,
    };
    render(status, page.render())
}

async fn tokens_page(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    RawQuery(q): RawQuery,
) -> Response {
    let flash_msg = flash(&query_pairs(&q));
    let form = TokenForm::default();
    let ok = StatusCode::OK;
    tokens(
        &state,
        &caller,
        &me,
        ok,
        flash_msg,
        None,
        form,
        Problems::default(),
    )
    .await
}

async fn create_token(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let asked = TokenForm {
        name: take(&form, "name").unwrap_or_default(),
        scopes: form
            .iter()
            .filter(|(k, _)| k == "scopes")
            .map(|(_, v)| v.clone())
            .collect(),
        expires_in: take(&form, "expires_in")
            .and_then(|v| v.parse().ok())
            .unwrap_or(LIFETIMES[1].0),
    };
    let input = AccessTokenInput {
        name: asked.name.clone(),
        scopes: asked.scopes.clone(),
        expires_in: Some(asked.expires_in),
    };
    match state.auth.create_access_token(&caller, input).await {
        // The token is in this answer only (no-store), with a fresh form.
        Ok(issued) => {
            let (ok, form) = (StatusCode::CREATED, TokenForm::default());
            let p = Problems::default();
            tokens(&state, &caller, &me, ok, None, Some(issued), form, p).await
        }
        Err(e) => match refusal(&state, e, "/account/tokens") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => {
                tokens(&state, &caller, &me, status, None, None, asked, p).await
            }
        },
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return page_error(&state, domain::Error::NotFound, "/account/tokens");
    };
    let form = pairs(&body);
    let act = state.auth.revoke_access_token(&caller, id);
    let outcome = if_confirmed(&state, &form, "/account/tokens", act).await;
    match outcome {
        Ok(()) => done("/account/tokens", "token-revoked"),
        Err(Refusal::Page(r)) => *r,
        Err(Refusal::Form(status, p)) => {
            let form = TokenForm::default();
            tokens(&state, &caller, &me, status, None, None, form, p).await
        }
    }
}

// ---- sessions ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/sessions.html")]
struct SessionsPage {
    f: Frame,
    sessions: Vec<SessionInfo>,
    p: Problems,
}

async fn sessions(
    state: &AppState,
    caller: &Caller,
    me: &User,
    status: StatusCode,
    flash_msg: Option<&'static str>,
    p: Problems,
) -> Response {
    let sessions = match state.auth.list_sessions(caller).await {
        Ok(s) => s,
        Err(e) => return page_error(state, e, "/account/sessions"),
    };
    let mut f = Frame::new(state, me, "account", "sessions");
    f.flash = flash_msg;
    render(status, SessionsPage { f, sessions, p }.render())
}

async fn sessions_page(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    RawQuery(q): RawQuery,
) -> Response {
    let flash_msg = flash(&query_pairs(&q));
    sessions(
        &state,
        &caller,
        &me,
        StatusCode::OK,
        flash_msg,
        Problems::default(),
    )
    .await
}

async fn revoke_session(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return page_error(&state, domain::Error::NotFound, "/account/sessions");
    };
    // Signing out this very session: the hosted logout does it and clears the cookie.
    if id == caller.who.session_id {
        return axum::response::Redirect::to("/logout").into_response();
    }
    match state.auth.revoke_session(&caller, id).await {
        Ok(()) => done("/account/sessions", "session"),
        Err(e) => match refusal(&state, e, "/account/sessions") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => sessions(&state, &caller, &me, status, None, p).await,
        },
    }
}

async fn revoke_all(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let act = state.auth.logout_all(&caller);
    let outcome = if_confirmed(&state, &form, "/account/sessions", act).await;
    match outcome {
        // This browser's session went too: the signed-out page, the cookie cleared.
        Ok(_) => {
            let mut r = crate::routes::oidc::message(
                &state,
                StatusCode::OK,
                "You are signed out everywhere",
                "Every session of your account has ended, this one included.",
                false,
                Some(("/login?next=/account", "Sign in again")),
            );
            r.headers_mut().append(
                axum::http::header::SET_COOKIE,
                crate::routes::oidc::set_cookie(&state, "", 0),
            );
            r
        }
        Err(Refusal::Page(r)) => *r,
        Err(Refusal::Form(status, p)) => sessions(&state, &caller, &me, status, None, p).await,
    }
}

// ---- activity ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/activity.html")]
struct ActivityPage {
    f: Frame,
    events: Vec<AuditEvent>,
    next: Option<String>,
}

async fn activity_page(
    State(state): State<AppState>,
    Signed { caller, me }: Signed,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let query = RawAuditQuery {
        user_id: Some(me.id.to_string()),
        per_page: Some("25".into()),
        cursor: Some(take(&q, "cursor").unwrap_or_default()),
        ..RawAuditQuery::default()
    };
    let page = match state.users.list_audit_events(&caller, query).await {
        Ok(p) => p,
        Err(e) => return page_error(&state, e, "/account/activity"),
    };
    let next = match page.pagination {
        domain::PageInfo::Keyset { next_cursor, .. } => next_cursor,
        domain::PageInfo::Offset { .. } => None,
    };
    let f = Frame::new(&state, &me, "account", "activity");
    render(
        StatusCode::OK,
        ActivityPage {
            f,
            events: page.items,
            next,
        }
        .render(),
    )
}
