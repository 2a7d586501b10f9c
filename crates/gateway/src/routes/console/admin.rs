//! `/admin`: users (search, filters, keyset pages; detail with every administrative action),
//! the audit log, and the OpenID Connect clients. Admins only: every call goes through the
//! service ports, which refuse anyone else (and, with `ARCANA_REQUIRE_MFA_FOR_ADMINS`, an admin
//! without a second factor); the pages only say so.
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use domain::{
    AuditEvent, Caller, ForgotPasswordInput, IssuedClient, OidcClient, OidcClientInput, PageInfo,
    RawAuditQuery, RawClientQuery, RawUserQuery, Role, SessionInfo, Status, User, UserPatch,
};

use super::{
    Admin, Frame, Problems, Refusal, Signed, confirmed, done, flash, if_confirmed, page_error,
    pairs, query_pairs, refusal, render,
};
use crate::AppState;
use crate::extract::Client;
use crate::routes::oidc::take;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/users", get(users_page))
        .route("/admin/users/{id}", get(user_page))
        .route("/admin/users/{id}/profile", post(save_user))
        .route("/admin/users/{id}/verify", post(verify_user))
        .route("/admin/users/{id}/role", post(set_role))
        .route("/admin/users/{id}/status", post(set_status))
        .route("/admin/users/{id}/reset-link", post(reset_link))
        .route("/admin/users/{id}/unlock", post(unlock_user))
        .route("/admin/users/{id}/mfa/remove", post(remove_mfa))
        .route("/admin/users/{id}/delete", post(delete_user))
        .route("/admin/audit", get(audit_page))
        .route("/admin/clients", get(clients_page).post(create_client))
        .route("/admin/clients/{id}/rotate", post(rotate_secret))
        .route("/admin/clients/{id}/delete", post(delete_client))
}

fn next_cursor(p: &PageInfo) -> Option<String> {
    match p {
        PageInfo::Keyset { next_cursor, .. } => next_cursor.clone(),
        PageInfo::Offset { .. } => None,
    }
}

/// The query of the next page: the filters as given, the new cursor.
fn next_query(filters: &[(&str, &str)], cursor: &str) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    s.append_pair("cursor", cursor).finish()
}

// ---- users ------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    f: Frame,
    search: String,
    role: String,
    status: String,
    users: Vec<User>,
    next: Option<String>,
    p: Problems,
}

async fn users_page(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let (search, role, status) = (
        take(&q, "search").unwrap_or_default(),
        take(&q, "role").unwrap_or_default(),
        take(&q, "status").unwrap_or_default(),
    );
    let query = RawUserQuery {
        per_page: Some("25".into()),
        role: Some(role.clone()),
        status: Some(status.clone()),
        search: Some(search.trim().to_owned()),
        // Keyset pages: as fast on the last page of a million users as on the first.
        cursor: Some(take(&q, "cursor").unwrap_or_default()),
        ..RawUserQuery::default()
    };
    let mut f = Frame::new(&state, &me, "admin", "users");
    f.flash = flash(&q);
    let (status_code, users, next, p) = match state.users.list_users(&caller, query).await {
        Ok(page) => {
            let next = next_cursor(&page.pagination).map(|c| {
                next_query(
                    &[("search", &search), ("role", &role), ("status", &status)],
                    &c,
                )
            });
            (StatusCode::OK, page.items, next, Problems::default())
        }
        Err(e) => match refusal(&state, e, "/admin/users") {
            Refusal::Page(r) => return *r,
            Refusal::Form(s, p) => (s, Vec::new(), None, p),
        },
    };
    let page = UsersPage {
        f,
        search,
        role,
        status,
        users,
        next,
        p,
    };
    render(status_code, page.render())
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    f: Frame,
    user: User,
    first_name: String,
    last_name: String,
    email: String,
    events: Vec<AuditEvent>,
    sessions: Vec<SessionInfo>,
    p: Problems,
    /// Which form the problems are about.
    form: &'static str,
    roles: &'static [Role],
    statuses: &'static [Status],
}

fn parse_id(id: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(id).ok()
}

#[allow(clippy::too_many_arguments)]
async fn user(
    state: &AppState,
    caller: &Caller,
    me: &User,
    id: uuid::Uuid,
    status: StatusCode,
    flash_msg: Option<&'static str>,
    values: Option<&[(String, String)]>,
    p: Problems,
    form: &'static str,
) -> Response {
    let here = format!("/admin/users/{id}");
    let events = RawAuditQuery {
        user_id: Some(id.to_string()),
        per_page: Some("15".into()),
        cursor: Some(String::new()),
        ..RawAuditQuery::default()
    };
    let (user, events, sessions) = match tokio::try_join!(
        state.users.get_user(caller, id),
        state.users.list_audit_events(caller, events),
        state.users.list_user_sessions(caller, id)
    ) {
        Ok(x) => x,
        Err(e) => return page_error(state, e, &here),
    };
    let value = |name: &str, current: &Option<String>| match values {
        Some(v) => take(v, name).unwrap_or_default(),
        None => current.clone().unwrap_or_default(),
    };
    let mut f = Frame::new(state, me, "admin", "users");
    f.flash = flash_msg;
    let page = UserPage {
        f,
        first_name: value("first_name", &user.first_name),
        last_name: value("last_name", &user.last_name),
        email: value("email", &Some(user.email.clone())),
        user,
        events: events.items,
        sessions,
        p,
        form,
        roles: Role::ALL,
        statuses: &[Status::Active, Status::Inactive, Status::Suspended],
    };
    render(status, page.render())
}

async fn user_page(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return page_error(&state, domain::Error::NotFound, "/admin/users");
    };
    let flash_msg = flash(&query_pairs(&q));
    user(
        &state,
        &caller,
        &me,
        id,
        StatusCode::OK,
        flash_msg,
        None,
        Problems::default(),
        "",
    )
    .await
}

/// One administrative action on a user: the form, then the port call; back to the user's page
/// saying what the call answered it did (or, for a deletion, to the list), or the page again
/// with the problems at `form_name`.
async fn act<F, Fut>(
    state: AppState,
    Signed { caller, me }: Signed,
    id: String,
    body: Bytes,
    form_name: &'static str,
    call: F,
) -> Response
where
    F: FnOnce(AppState, Caller, uuid::Uuid, User, Vec<(String, String)>) -> Fut,
    Fut: std::future::Future<Output = Result<&'static str, Refusal>>,
{
    let Some(id) = parse_id(&id) else {
        return page_error(&state, domain::Error::NotFound, "/admin/users");
    };
    let form = pairs(&body);
    match call(state.clone(), caller.clone(), id, me.clone(), form.clone()).await {
        Ok("/admin/users") => done("/admin/users", "deleted"),
        Ok(what) => done(&format!("/admin/users/{id}"), what),
        Err(Refusal::Page(r)) => *r,
        Err(Refusal::Form(status, p)) => {
            let values = (form_name == "profile").then_some(form.as_slice());
            user(&state, &caller, &me, id, status, None, values, p, form_name).await
        }
    }
}

fn refused(state: &AppState, id: uuid::Uuid) -> impl Fn(domain::Error) -> Refusal + '_ {
    move |e| refusal(state, e, &format!("/admin/users/{id}"))
}

async fn save_user(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "profile",
        |state, caller, id, _, form| async move {
            let optional = |name: &str| {
                Some(
                    take(&form, name)
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty()),
                )
            };
            let current = state
                .users
                .get_user(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            let email = take(&form, "email")
                .map(|e| e.trim().to_owned())
                .filter(|e| *e != current.email);
            let patch = UserPatch {
                current_password: None,
                email,
                first_name: optional("first_name"),
                last_name: optional("last_name"),
                phone: None,
                avatar_url: None,
            };
            state
                .users
                .update_user(&caller, id, patch)
                .await
                .map_err(refused(&state, id))?;
            Ok("saved")
        },
    )
    .await
}

async fn verify_user(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "verify",
        |state, caller, id, _, _| async move {
            state
                .users
                .verify_user(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            Ok("verified")
        },
    )
    .await
}

async fn set_role(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "role",
        |state, caller, id, _, form| async move {
            let role = take(&form, "role").unwrap_or_default();
            state
                .users
                .set_role(&caller, id, &role)
                .await
                .map_err(refused(&state, id))?;
            Ok("role")
        },
    )
    .await
}

async fn set_status(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "status",
        |state, caller, id, _, form| async move {
            let status = take(&form, "status").unwrap_or_default();
            // Suspending signs the user out everywhere: confirmed first.
            if status != "active" {
                confirmed(&form)?;
            }
            state
                .users
                .set_status(&caller, id, &status)
                .await
                .map_err(refused(&state, id))?;
            Ok("status")
        },
    )
    .await
}

async fn reset_link(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    client: Client,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = client.ctx.clone();
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "reset",
        |state, caller, id, _, _| async move {
            // The user's own "forgot password" (its rules, its rate limit, its mail).
            let user = state
                .users
                .get_user(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            state
                .auth
                .forgot_password(&ctx, ForgotPasswordInput { email: user.email })
                .await
                .map_err(refused(&state, id))?;
            Ok("reset")
        },
    )
    .await
}

async fn unlock_user(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "unlock",
        |state, caller, id, _, _| async move {
            state
                .users
                .unlock_user(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            Ok("unlocked")
        },
    )
    .await
}

async fn remove_mfa(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "mfa",
        |state, caller, id, _, form| async move {
            confirmed(&form)?;
            state
                .users
                .remove_mfa(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            Ok("mfa-removed")
        },
    )
    .await
}

async fn delete_user(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(
        state,
        Signed { caller, me },
        id,
        body,
        "delete",
        |state, caller, id, _, form| async move {
            confirmed(&form)?;
            state
                .users
                .delete_user(&caller, id)
                .await
                .map_err(refused(&state, id))?;
            Ok("/admin/users")
        },
    )
    .await
}

// ---- audit log --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    f: Frame,
    user_id: String,
    kind: String,
    outcome: String,
    since: String,
    until: String,
    events: Vec<AuditEvent>,
    next: Option<String>,
    p: Problems,
}

async fn audit_page(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let field = |n: &str| take(&q, n).unwrap_or_default().trim().to_owned();
    let (user_id, kind, outcome, since, until) = (
        field("user_id"),
        field("type"),
        field("outcome"),
        field("since"),
        field("until"),
    );
    let query = RawAuditQuery {
        user_id: Some(user_id.clone()),
        r#type: Some(kind.clone()),
        outcome: Some(outcome.clone()),
        since: Some(since.clone()),
        until: Some(until.clone()),
        per_page: Some("50".into()),
        cursor: Some(take(&q, "cursor").unwrap_or_default()),
    };
    let (status, events, next, p) = match state.users.list_audit_events(&caller, query).await {
        Ok(page) => {
            let next = next_cursor(&page.pagination).map(|c| {
                next_query(
                    &[
                        ("user_id", &user_id),
                        ("type", &kind),
                        ("outcome", &outcome),
                        ("since", &since),
                        ("until", &until),
                    ],
                    &c,
                )
            });
            (StatusCode::OK, page.items, next, Problems::default())
        }
        Err(e) => match refusal(&state, e, "/admin/audit") {
            Refusal::Page(r) => return *r,
            Refusal::Form(s, p) => (s, Vec::new(), None, p),
        },
    };
    let page = AuditPage {
        f: Frame::new(&state, &me, "admin", "audit"),
        user_id,
        kind,
        outcome,
        since,
        until,
        events,
        next,
        p,
    };
    render(status, page.render())
}

// ---- OpenID Connect clients -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    f: Frame,
    clients: Vec<OidcClient>,
    next: Option<String>,
    p: Problems,
    /// Which form the problems are about (`create` or a client id).
    form: String,
    name: String,
    redirect_uris: String,
    public: bool,
}

#[derive(Template)]
#[template(path = "console/client_secret.html")]
struct SecretPage {
    f: Frame,
    issued: IssuedClient,
    created: bool,
}

#[allow(clippy::too_many_arguments)]
async fn clients(
    state: &AppState,
    caller: &Caller,
    me: &User,
    status: StatusCode,
    cursor: String,
    flash_msg: Option<&'static str>,
    p: Problems,
    form: String,
    values: Option<&[(String, String)]>,
) -> Response {
    let query = RawClientQuery {
        per_page: Some("50".into()),
        cursor: (!cursor.is_empty()).then_some(cursor),
    };
    let page = match state.oidc_clients.list_clients(caller, query).await {
        Ok(p) => p,
        Err(e) => return page_error(state, e, "/admin/clients"),
    };
    let mut f = Frame::new(state, me, "admin", "clients");
    f.flash = flash_msg;
    let v = |n: &str| values.and_then(|v| take(v, n)).unwrap_or_default();
    let page = ClientsPage {
        f,
        next: next_cursor(&page.pagination).map(|c| next_query(&[], &c)),
        clients: page.items,
        p,
        form,
        name: v("name"),
        redirect_uris: v("redirect_uris"),
        public: v("public") == "yes",
    };
    render(status, page.render())
}

async fn clients_page(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let cursor = take(&q, "cursor").unwrap_or_default();
    clients(
        &state,
        &caller,
        &me,
        StatusCode::OK,
        cursor,
        flash(&q),
        Problems::default(),
        String::new(),
        None,
    )
    .await
}

/// A client secret (or a public client's id) shown once, in the answer to the POST that made it.
fn secret_page(state: &AppState, me: &User, issued: IssuedClient, created: bool) -> Response {
    let page = SecretPage {
        f: Frame::new(state, me, "admin", "clients"),
        issued,
        created,
    };
    render(StatusCode::OK, page.render())
}

async fn create_client(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let input = OidcClientInput {
        name: take(&form, "name").unwrap_or_default(),
        redirect_uris: take(&form, "redirect_uris")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        public: Some(take(&form, "public").as_deref() == Some("yes")),
        require_consent: Some(take(&form, "skip_consent").as_deref() != Some("yes")),
        ..OidcClientInput::default()
    };
    match state.oidc_clients.create_client(&caller, input).await {
        Ok(issued) => secret_page(&state, &me, issued, true),
        Err(e) => match refusal(&state, e, "/admin/clients") {
            Refusal::Page(r) => *r,
            Refusal::Form(status, p) => {
                clients(
                    &state,
                    &caller,
                    &me,
                    status,
                    String::new(),
                    None,
                    p,
                    "create".into(),
                    Some(&form),
                )
                .await
            }
        },
    }
}

async fn rotate_secret(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let act = state.oidc_clients.rotate_client_secret(&caller, &id);
    let outcome = if_confirmed(&state, &form, "/admin/clients", act).await;
    match outcome {
        Ok(issued) => secret_page(&state, &me, issued, false),
        Err(Refusal::Page(r)) => *r,
        Err(Refusal::Form(status, p)) => {
            clients(
                &state,
                &caller,
                &me,
                status,
                String::new(),
                None,
                p,
                format!("rotate-{id}"),
                None,
            )
            .await
        }
    }
}

async fn delete_client(
    State(state): State<AppState>,
    Admin(Signed { caller, me }): Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let act = state.oidc_clients.delete_client(&caller, &id);
    let outcome = if_confirmed(&state, &form, "/admin/clients", act).await;
    match outcome {
        Ok(()) => done("/admin/clients", "deleted"),
        Err(Refusal::Page(r)) => *r,
        Err(Refusal::Form(status, p)) => {
            clients(
                &state,
                &caller,
                &me,
                status,
                String::new(),
                None,
                p,
                format!("delete-{id}"),
                None,
            )
            .await
        }
    }
}
