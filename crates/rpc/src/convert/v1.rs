//! Domain ↔ `arcana.v1` conversions, shared by the gRPC servers (wire → domain inputs, domain →
//! wire answers) and the client adapters (the reverse). Wire data that does not fit the domain
//! becomes an `Error::Validation` naming the field; nothing here panics.
use domain::{
    AuthSession, ChangePasswordInput, CreateUserInput, Error, FieldErrors, LoginInput, PageInfo,
    RawUserQuery, RegisterInput, Result, SessionInfo, TokenPair, User, UserId, UserPage, UserPatch,
};

use super::{from_opt_ts, from_ts, opt_ts, parse, ts, uuid};
use crate::v1;

// ---- users ---------------------------------------------------------------------------------

impl From<User> for v1::User {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            phone: u.phone,
            avatar_url: u.avatar_url,
            role: u.role.to_string(),
            status: u.status.to_string(),
            is_verified: u.is_verified,
            created_at: Some(ts(u.created_at)),
            updated_at: Some(ts(u.updated_at)),
            last_login_at: opt_ts(u.last_login_at),
        }
    }
}

impl TryFrom<v1::User> for User {
    type Error = Error;
    fn try_from(u: v1::User) -> Result<Self> {
        Ok(Self {
            id: uuid(&u.id, "user.id")?,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            phone: u.phone,
            avatar_url: u.avatar_url,
            role: parse(&u.role, "user.role")?,
            status: parse(&u.status, "user.status")?,
            is_verified: u.is_verified,
            created_at: from_ts(u.created_at, "user.created_at")?,
            updated_at: from_ts(u.updated_at, "user.updated_at")?,
            last_login_at: from_opt_ts(u.last_login_at, "user.last_login_at")?,
        })
    }
}

// ---- auth ----------------------------------------------------------------------------------

impl From<RegisterInput> for v1::RegisterRequest {
    fn from(i: RegisterInput) -> Self {
        Self {
            username: i.username,
            email: i.email,
            password: i.password,
            first_name: i.first_name,
            last_name: i.last_name,
        }
    }
}

impl From<v1::RegisterRequest> for RegisterInput {
    fn from(r: v1::RegisterRequest) -> Self {
        Self {
            username: r.username,
            email: r.email,
            password: r.password,
            first_name: r.first_name,
            last_name: r.last_name,
        }
    }
}

impl From<LoginInput> for v1::LoginRequest {
    fn from(i: LoginInput) -> Self {
        Self {
            username_or_email: i.username_or_email,
            password: i.password,
        }
    }
}

impl From<v1::LoginRequest> for LoginInput {
    fn from(r: v1::LoginRequest) -> Self {
        Self {
            username_or_email: r.username_or_email,
            password: r.password,
        }
    }
}

impl From<AuthSession> for v1::AuthResponse {
    fn from(s: AuthSession) -> Self {
        Self {
            access_token: s.tokens.access_token,
            refresh_token: s.tokens.refresh_token,
            token_type: s.tokens.token_type,
            expires_in: s.tokens.expires_in,
            user: Some(s.user.into()),
        }
    }
}

impl TryFrom<v1::AuthResponse> for AuthSession {
    type Error = Error;
    fn try_from(r: v1::AuthResponse) -> Result<Self> {
        let user = r
            .user
            .ok_or_else(|| Error::validation("user", "is required"))?;
        Ok(Self {
            tokens: TokenPair {
                access_token: r.access_token,
                refresh_token: r.refresh_token,
                token_type: r.token_type,
                expires_in: r.expires_in,
            },
            user: user.try_into()?,
        })
    }
}

impl From<SessionInfo> for v1::Session {
    fn from(s: SessionInfo) -> Self {
        Self {
            id: s.id.to_string(),
            created_at: Some(ts(s.created_at)),
            last_used_at: Some(ts(s.last_used_at)),
            expires_at: Some(ts(s.expires_at)),
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        }
    }
}

impl TryFrom<v1::Session> for SessionInfo {
    type Error = Error;
    fn try_from(s: v1::Session) -> Result<Self> {
        Ok(Self {
            id: uuid(&s.id, "session.id")?,
            created_at: from_ts(s.created_at, "session.created_at")?,
            last_used_at: from_ts(s.last_used_at, "session.last_used_at")?,
            expires_at: from_ts(s.expires_at, "session.expires_at")?,
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        })
    }
}

pub fn sessions(list: Vec<SessionInfo>) -> v1::ListSessionsResponse {
    v1::ListSessionsResponse {
        sessions: list.into_iter().map(Into::into).collect(),
    }
}

pub fn from_sessions(r: v1::ListSessionsResponse) -> Result<Vec<SessionInfo>> {
    r.sessions.into_iter().map(TryInto::try_into).collect()
}

// ---- listing -------------------------------------------------------------------------------

impl From<RawUserQuery> for v1::ListUsersRequest {
    fn from(q: RawUserQuery) -> Self {
        Self {
            page: q.page,
            per_page: q.per_page,
            sort: q.sort,
            order: q.order,
            role: q.role,
            status: q.status,
            search: q.search,
            created_after: q.created_after,
            created_before: q.created_before,
            cursor: q.cursor,
        }
    }
}

impl From<v1::ListUsersRequest> for RawUserQuery {
    fn from(r: v1::ListUsersRequest) -> Self {
        Self {
            page: r.page,
            per_page: r.per_page,
            sort: r.sort,
            order: r.order,
            role: r.role,
            status: r.status,
            search: r.search,
            created_after: r.created_after,
            created_before: r.created_before,
            cursor: r.cursor,
        }
    }
}

impl From<PageInfo> for v1::Pagination {
    fn from(p: PageInfo) -> Self {
        match p {
            PageInfo::Offset {
                page,
                per_page,
                total,
                pages,
            } => Self {
                per_page,
                page: Some(page),
                total: Some(total),
                pages: Some(pages),
                next_cursor: None,
                keyset: false,
            },
            PageInfo::Keyset {
                per_page,
                next_cursor,
            } => Self {
                per_page,
                page: None,
                total: None,
                pages: None,
                next_cursor,
                keyset: true,
            },
        }
    }
}

impl TryFrom<v1::Pagination> for PageInfo {
    type Error = Error;
    fn try_from(p: v1::Pagination) -> Result<Self> {
        if p.keyset {
            return Ok(PageInfo::Keyset {
                per_page: p.per_page,
                next_cursor: p.next_cursor,
            });
        }
        let mut errs = FieldErrors::new();
        for (field, present) in [
            ("pagination.page", p.page.is_some()),
            ("pagination.total", p.total.is_some()),
            ("pagination.pages", p.pages.is_some()),
        ] {
            if !present {
                errs.add(field, "is required without keyset");
            }
        }
        errs.into_result()?;
        Ok(PageInfo::Offset {
            page: p.page.unwrap_or_default(),
            per_page: p.per_page,
            total: p.total.unwrap_or_default(),
            pages: p.pages.unwrap_or_default(),
        })
    }
}

impl From<UserPage> for v1::ListUsersResponse {
    fn from(p: UserPage) -> Self {
        Self {
            items: p.items.into_iter().map(Into::into).collect(),
            pagination: Some(p.pagination.into()),
        }
    }
}

impl TryFrom<v1::ListUsersResponse> for UserPage {
    type Error = Error;
    fn try_from(r: v1::ListUsersResponse) -> Result<Self> {
        let pagination = r
            .pagination
            .ok_or_else(|| Error::validation("pagination", "is required"))?
            .try_into()?;
        let items = r
            .items
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<User>>>()?;
        Ok(Self { items, pagination })
    }
}

// ---- user administration -------------------------------------------------------------------

impl From<CreateUserInput> for v1::CreateUserRequest {
    fn from(i: CreateUserInput) -> Self {
        Self {
            username: i.username,
            email: i.email,
            password: i.password,
            first_name: i.first_name,
            last_name: i.last_name,
            phone: i.phone,
            avatar_url: i.avatar_url,
            role: i.role,
            status: i.status,
            is_verified: i.is_verified,
        }
    }
}

impl From<v1::CreateUserRequest> for CreateUserInput {
    fn from(r: v1::CreateUserRequest) -> Self {
        Self {
            username: r.username,
            email: r.email,
            password: r.password,
            first_name: r.first_name,
            last_name: r.last_name,
            phone: r.phone,
            avatar_url: r.avatar_url,
            role: r.role,
            status: r.status,
            is_verified: r.is_verified,
        }
    }
}

/// The paths an `UpdateUserRequest.update_mask` may name.
pub const UPDATE_PATHS: [&str; 5] = ["email", "first_name", "last_name", "phone", "avatar_url"];

/// `UserPatch` → `UpdateUserRequest`. Always sends an `update_mask` naming exactly the fields the
/// patch touches (PATCH semantics), so `Some(None)` (clear) survives the trip: the path is named
/// and its value absent. A patch touching every field is therefore a PUT as well.
pub fn update_user_request(id: UserId, patch: UserPatch) -> v1::UpdateUserRequest {
    let mut paths = Vec::new();
    let mut named = |field: &str, touched: bool| {
        if touched {
            paths.push(field.to_owned());
        }
    };
    named("email", patch.email.is_some());
    named("first_name", patch.first_name.is_some());
    named("last_name", patch.last_name.is_some());
    named("phone", patch.phone.is_some());
    named("avatar_url", patch.avatar_url.is_some());
    v1::UpdateUserRequest {
        id: id.to_string(),
        email: patch.email,
        first_name: patch.first_name.flatten(),
        last_name: patch.last_name.flatten(),
        phone: patch.phone.flatten(),
        avatar_url: patch.avatar_url.flatten(),
        update_mask: Some(prost_types::FieldMask { paths }),
    }
}

/// `UpdateUserRequest` → (user id, `UserPatch`).
///
/// - Without `update_mask` (or with the single path `*`): PUT semantics — `email` is required and
///   every other profile field is replaced, an absent one cleared (`Some(None)`).
/// - With an `update_mask`: PATCH semantics — only the named paths change; a named path whose
///   value is absent is cleared (`email` cannot be cleared). Values of unnamed fields are ignored.
///   Unknown paths are a validation error on `update_mask`.
pub fn update_user_from_request(r: v1::UpdateUserRequest) -> Result<(UserId, UserPatch)> {
    let mut errs = FieldErrors::new();
    let id = errs.check(
        "id",
        uuid::Uuid::parse_str(&r.id).map_err(|_| "must be a UUID".to_owned()),
    );
    let full = match &r.update_mask {
        None => true,
        Some(m) => m.paths.len() == 1 && m.paths[0] == "*",
    };
    let patch = if full {
        if r.email.is_none() {
            errs.add("email", "is required");
        }
        UserPatch {
            email: r.email,
            first_name: Some(r.first_name),
            last_name: Some(r.last_name),
            phone: Some(r.phone),
            avatar_url: Some(r.avatar_url),
        }
    } else {
        let paths = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.as_slice())
            .unwrap_or_default();
        for p in paths {
            if !UPDATE_PATHS.contains(&p.as_str()) {
                errs.add(
                    "update_mask",
                    format!("unknown path {p:?}; allowed: {}", UPDATE_PATHS.join(", ")),
                );
            }
        }
        let named = |field: &str| paths.iter().any(|p| p == field);
        if named("email") && r.email.is_none() {
            errs.add("email", "cannot be cleared");
        }
        UserPatch {
            email: if named("email") { r.email } else { None },
            first_name: named("first_name").then_some(r.first_name),
            last_name: named("last_name").then_some(r.last_name),
            phone: named("phone").then_some(r.phone),
            avatar_url: named("avatar_url").then_some(r.avatar_url),
        }
    };
    errs.into_result()?;
    let id = id.ok_or_else(|| Error::validation("id", "must be a UUID"))?;
    Ok((id, patch))
}

pub fn change_password_request(id: UserId, i: ChangePasswordInput) -> v1::ChangePasswordRequest {
    v1::ChangePasswordRequest {
        id: id.to_string(),
        current_password: i.current_password,
        new_password: i.new_password,
    }
}

pub fn change_password_from_request(
    r: v1::ChangePasswordRequest,
) -> Result<(UserId, ChangePasswordInput)> {
    Ok((
        uuid(&r.id, "id")?,
        ChangePasswordInput {
            current_password: r.current_password,
            new_password: r.new_password,
        },
    ))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use domain::{Role, Status};

    use super::*;

    fn user() -> User {
        let t = Utc
            .timestamp_opt(1_700_000_000, 123_456_000)
            .single()
            .unwrap();
        User {
            id: uuid::Uuid::new_v4(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            first_name: Some("Alice".into()),
            last_name: None,
            phone: Some("+1 555".into()),
            avatar_url: None,
            role: Role::Admin,
            status: Status::Suspended,
            is_verified: true,
            created_at: t,
            updated_at: t,
            last_login_at: None,
        }
    }

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::Validation(f) => f.0.into_keys().collect(),
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn user_and_auth_response_round_trip() {
        let u = user();
        assert_eq!(User::try_from(v1::User::from(u.clone())).unwrap(), u);
        let s = AuthSession {
            tokens: TokenPair {
                access_token: "a".into(),
                refresh_token: "r".into(),
                token_type: "Bearer".into(),
                expires_in: 900,
            },
            user: u,
        };
        assert_eq!(
            AuthSession::try_from(v1::AuthResponse::from(s.clone())).unwrap(),
            s
        );
        let missing = v1::AuthResponse::default();
        assert_eq!(
            fields(AuthSession::try_from(missing).unwrap_err()),
            ["user"]
        );
    }

    #[test]
    fn bad_wire_users_are_validation_errors() {
        let mut w = v1::User::from(user());
        w.id = "nope".into();
        w.role = "root".into();
        assert_eq!(fields(User::try_from(w).unwrap_err()), ["user.id"]);
        let mut w = v1::User::from(user());
        w.role = "root".into();
        assert_eq!(fields(User::try_from(w).unwrap_err()), ["user.role"]);
        let mut w = v1::User::from(user());
        w.created_at = None;
        assert_eq!(fields(User::try_from(w).unwrap_err()), ["user.created_at"]);
    }

    #[test]
    fn pages_round_trip_in_both_modes() {
        for pagination in [
            PageInfo::offset(2, 20, 41),
            PageInfo::Keyset {
                per_page: 5,
                next_cursor: Some("abc".into()),
            },
            PageInfo::Keyset {
                per_page: 5,
                next_cursor: None,
            },
        ] {
            let page = UserPage {
                items: vec![user()],
                pagination,
            };
            let wire = v1::ListUsersResponse::from(page.clone());
            assert_eq!(UserPage::try_from(wire).unwrap(), page);
        }
        let broken = v1::ListUsersResponse {
            items: vec![],
            pagination: Some(v1::Pagination {
                per_page: 20,
                ..Default::default()
            }),
        };
        assert_eq!(
            fields(UserPage::try_from(broken).unwrap_err()),
            ["pagination.page", "pagination.pages", "pagination.total"]
        );
    }

    #[test]
    fn query_round_trip_keeps_presence() {
        let q = RawUserQuery {
            per_page: Some("5".into()),
            cursor: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(RawUserQuery::from(v1::ListUsersRequest::from(q.clone())), q);
    }

    #[test]
    fn put_without_mask_clears_absent_fields() {
        let id = uuid::Uuid::new_v4();
        let req = v1::UpdateUserRequest {
            id: id.to_string(),
            email: Some("a@example.com".into()),
            first_name: Some("A".into()),
            ..Default::default()
        };
        let (got, patch) = update_user_from_request(req).unwrap();
        assert_eq!(got, id);
        assert_eq!(
            patch,
            UserPatch {
                email: Some("a@example.com".into()),
                first_name: Some(Some("A".into())),
                last_name: Some(None),
                phone: Some(None),
                avatar_url: Some(None),
            }
        );
        let no_email = v1::UpdateUserRequest {
            id: id.to_string(),
            ..Default::default()
        };
        assert_eq!(
            fields(update_user_from_request(no_email).unwrap_err()),
            ["email"]
        );
    }

    #[test]
    fn patch_with_mask_changes_only_named_paths() {
        let id = uuid::Uuid::new_v4();
        let req = v1::UpdateUserRequest {
            id: id.to_string(),
            email: Some("ignored@example.com".into()),
            first_name: Some("A".into()),
            phone: Some("ignored".into()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["first_name".into(), "last_name".into()],
            }),
            ..Default::default()
        };
        let (_, patch) = update_user_from_request(req).unwrap();
        assert_eq!(
            patch,
            UserPatch {
                first_name: Some(Some("A".into())),
                last_name: Some(None),
                ..Default::default()
            }
        );
        let bad = v1::UpdateUserRequest {
            id: "x".into(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["password".into(), "email".into()],
            }),
            ..Default::default()
        };
        assert_eq!(
            fields(update_user_from_request(bad).unwrap_err()),
            ["email", "id", "update_mask"]
        );
    }

    #[test]
    fn patches_survive_the_client_round_trip() {
        let id = uuid::Uuid::new_v4();
        for patch in [
            UserPatch::default(),
            UserPatch {
                email: Some("b@example.com".into()),
                phone: Some(None),
                ..Default::default()
            },
            UserPatch {
                email: Some("c@example.com".into()),
                first_name: Some(Some("C".into())),
                last_name: Some(None),
                phone: Some(Some("1".into())),
                avatar_url: Some(None),
            },
        ] {
            let back = update_user_from_request(update_user_request(id, patch.clone())).unwrap();
            assert_eq!(back, (id, patch));
        }
    }

    #[test]
    fn change_password_round_trip() {
        let id = uuid::Uuid::new_v4();
        let input = ChangePasswordInput {
            current_password: Some("Old-pass1".into()),
            new_password: "New-pass1".into(),
        };
        let (got_id, got) =
            change_password_from_request(change_password_request(id, input.clone())).unwrap();
        assert_eq!(got_id, id);
        assert!(got == input);
    }
}
