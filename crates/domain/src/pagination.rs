//! Listing users: filters, sort, offset pages and keyset cursors.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, FieldErrors, Result};
use crate::model::{Role, Status, Timestamp, User};

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserSort {
    #[default]
    CreatedAt,
    Username,
    Email,
    LastLoginAt,
}

impl UserSort {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "created_at" => UserSort::CreatedAt,
            "username" => UserSort::Username,
            "email" => UserSort::Email,
            "last_login_at" => UserSort::LastLoginAt,
            _ => return Err("must be one of: created_at, username, email, last_login_at".into()),
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::CreatedAt => "created_at",
            UserSort::Username => "username",
            UserSort::Email => "email",
            UserSort::LastLoginAt => "last_login_at",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

impl SortOrder {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err("must be asc or desc".into()),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

/// The sort key of the last row of a keyset page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    /// Microseconds since the Unix epoch (created_at).
    Time(i64),
    /// username or email.
    Text(String),
}

/// Opaque position for keyset pagination: "rows after (value, id) in this sort and order".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: UserSort,
    #[serde(rename = "o")]
    pub order: SortOrder,
    #[serde(rename = "v")]
    pub value: CursorValue,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    /// The cursor positioned after `user` in the given sort.
    pub fn after(user: &User, sort: UserSort, order: SortOrder) -> Option<Self> {
        let value = match sort {
            UserSort::CreatedAt => CursorValue::Time(user.created_at.timestamp_micros()),
            UserSort::Username => CursorValue::Text(user.username.clone()),
            UserSort::Email => CursorValue::Text(user.email.clone()),
            UserSort::LastLoginAt => return None,
        };
        Some(Cursor {
            sort,
            order,
            value,
            id: user.id,
        })
    }
    pub fn encode(&self) -> String {
        // Serialising a plain struct of strings and integers cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
    pub fn decode(s: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "is not a valid cursor".to_owned())?;
        let c: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| "is not a valid cursor".to_owned())?;
        let value_fits = matches!(
            (&c.sort, &c.value),
            (UserSort::CreatedAt, CursorValue::Time(_))
                | (UserSort::Username | UserSort::Email, CursorValue::Text(_))
        );
        if !value_fits {
            return Err("is not a valid cursor".into());
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// Classic pages with a total count. `page` starts at 1.
    Offset { page: u32 },
    /// Keyset pagination: `after = None` asks for the first page.
    Keyset { after: Option<Cursor> },
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub page: PageRequest,
    pub per_page: u32,
    pub sort: UserSort,
    pub order: SortOrder,
    pub role: Option<Role>,
    /// `None` lists every status except `deleted`.
    pub status: Option<Status>,
    /// Case-insensitive substring of username, email, first or last name.
    pub search: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            page: PageRequest::Offset { page: 1 },
            per_page: DEFAULT_PER_PAGE,
            sort: UserSort::default(),
            order: SortOrder::default(),
            role: None,
            status: None,
            search: None,
            created_after: None,
            created_before: None,
        }
    }
}

/// List parameters as they arrive from REST query strings or gRPC fields.
/// The query of `GET /users` as typed by the caller (REST query string, gRPC request): every
/// value still text, validated by [`RawUserQuery::parse`] so both protocols share the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RawUserQuery {
    /// Page number (default 1); ignored with `cursor`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<u32>, minimum = 1, maximum = 1000000))]
    pub page: Option<String>,
    /// Users per page (default 20).
    #[cfg_attr(feature = "openapi", param(value_type = Option<u32>, minimum = 1, maximum = 100))]
    pub per_page: Option<String>,
    /// Default `created_at`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<UserSort>))]
    pub sort: Option<String>,
    /// Default `desc`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<SortOrder>))]
    pub order: Option<String>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::RoleOrEmpty>, inline))]
    pub role: Option<String>,
    /// Default: every status but `deleted`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::StatusOrEmpty>, inline))]
    pub status: Option<String>,
    /// Case-insensitive substring of username, email, first or last name.
    #[cfg_attr(feature = "openapi", param(max_length = 100))]
    pub search: Option<String>,
    /// Users created at or after (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::DateTimeOrEmpty>, inline))]
    pub created_after: Option<String>,
    /// Users created before (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::DateTimeOrEmpty>, inline))]
    pub created_before: Option<String>,
    /// Keyset pagination: empty for the first page, then the `next_cursor` of the last one.
    pub cursor: Option<String>,
}

/// OpenAPI schemas of the list parameters whose empty value counts as absent (`?role=`, as a form
/// with a blank field sends it): the value's own schema, or the empty string. Each is a type for
/// `param(value_type = Option<…>, inline)`, which keeps the parameter's description and example.
#[cfg(feature = "openapi")]
pub(crate) mod params {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AnyOfBuilder, KnownFormat, ObjectBuilder, Ref, Schema, SchemaFormat, Type,
    };

    fn or_empty(schema: impl Into<RefOr<Schema>>) -> RefOr<Schema> {
        let empty = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([""]))
            .description(Some("empty: not given"));
        Schema::from(AnyOfBuilder::new().item(schema).item(empty)).into()
    }

    fn string(format: KnownFormat) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    }

    macro_rules! or_empty_schemas {
        ($($(#[$doc:meta])* $name:ident => $schema:expr;)*) => {$(
            $(#[$doc])*
            pub(crate) struct $name;
            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    or_empty($schema)
                }
            }
            impl utoipa::ToSchema for $name {}
        )*};
    }

    or_empty_schemas! {
        /// An RFC 3339 timestamp.
        DateTimeOrEmpty => string(KnownFormat::DateTime);
        UuidOrEmpty => string(KnownFormat::Uuid);
        RoleOrEmpty => Ref::from_schema_name("Role");
        StatusOrEmpty => Ref::from_schema_name("Status");
        /// Items per page.
        PerPageOrEmpty => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(super::MAX_PER_PAGE));
        /// An audit event type or outcome (`audit::name`).
        EventNameOrEmpty => ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(crate::audit::MAX_NAME))
            .pattern(Some("^[a-z0-9._-]+$"));
    }
}

/// A query parameter that must be an integer in `min..=max`.
pub(crate) fn int(v: &str, min: u32, max: u32) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("must be an integer from {min} to {max}"))
}

/// A query parameter that must be an RFC 3339 timestamp.
pub(crate) fn time(v: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| "must be an RFC 3339 timestamp".to_owned())
}

impl RawUserQuery {
    /// Validate every parameter, collecting all problems.
    pub fn parse(&self) -> Result<UserQuery> {
        let mut errs = FieldErrors::new();
        let mut q = UserQuery::default();
        let mut page = 1;
        if let Some(v) = &self.page {
            page = errs.check("page", int(v, 1, 1_000_000)).unwrap_or(1);
        }
        if let Some(v) = &self.per_page {
            q.per_page = errs
                .check("per_page", int(v, 1, MAX_PER_PAGE))
                .unwrap_or(DEFAULT_PER_PAGE);
        }
        if let Some(v) = &self.sort {
            q.sort = errs.check("sort", UserSort::parse(v)).unwrap_or_default();
        }
        if let Some(v) = &self.order {
            q.order = errs.check("order", SortOrder::parse(v)).unwrap_or_default();
        }
        if let Some(v) = self.role.as_deref().filter(|v| !v.is_empty()) {
            q.role = errs.check("role", v.parse());
        }
        if let Some(v) = self.status.as_deref().filter(|v| !v.is_empty()) {
            q.status = errs.check("status", v.parse());
        }
        if let Some(v) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            if v.chars().count() > 100 {
                errs.add("search", "must be at most 100 characters");
            } else {
                q.search = Some(v.to_owned());
            }
        }
        if let Some(v) = self.created_after.as_deref().filter(|v| !v.is_empty()) {
            q.created_after = errs.check("created_after", time(v));
        }
        if let Some(v) = self.created_before.as_deref().filter(|v| !v.is_empty()) {
            q.created_before = errs.check("created_before", time(v));
        }
        q.page = match &self.cursor {
            None => PageRequest::Offset { page },
            // The cursor decides where the page starts: `page` is ignored with it.
            Some(c) => {
                if q.sort == UserSort::LastLoginAt {
                    errs.add(
                        "cursor",
                        "is not supported with sort=last_login_at; use page",
                    );
                }
                let after = if c.is_empty() {
                    None
                } else {
                    errs.check("cursor", Cursor::decode(c)).and_then(|cur| {
                        if cur.sort != q.sort || cur.order != q.order {
                            errs.add("cursor", "was issued for a different sort or order");
                            None
                        } else {
                            Some(cur)
                        }
                    })
                };
                PageRequest::Keyset { after }
            }
        };
        errs.into_result()?;
        Ok(q)
    }
}

/// Offset pages carry totals; keyset pages the cursor of the next one (null at the end). Each
/// form has exactly its own fields.
// Untagged: the forms are told apart by their fields. Without `maxProperties` (and with
// `next_cursor` optional) an offset page would also match the keyset alternative of the schema's
// `oneOf`, which must match exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum PageInfo {
    #[cfg_attr(feature = "openapi", schema(max_properties = 4))]
    Offset {
        page: u32,
        per_page: u32,
        total: u64,
        pages: u64,
    },
    #[cfg_attr(feature = "openapi", schema(max_properties = 2))]
    Keyset {
        per_page: u32,
        #[cfg_attr(feature = "openapi", schema(required = true))]
        next_cursor: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPage {
    pub items: Vec<User>,
    pub pagination: PageInfo,
}

impl PageInfo {
    pub fn offset(page: u32, per_page: u32, total: u64) -> Self {
        let pages = total.div_ceil(u64::from(per_page.max(1)));
        PageInfo::Offset {
            page,
            per_page,
            total,
            pages,
        }
    }
}

impl Error {
    /// Convenience for adapters that receive an unparseable cursor from elsewhere.
    pub fn bad_cursor() -> Self {
        Error::validation("cursor", "is not a valid cursor")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_collects_all_errors() {
        assert_eq!(
            RawUserQuery::default().parse().unwrap(),
            UserQuery::default()
        );
        let raw = RawUserQuery {
            page: Some("0".into()),
            per_page: Some("101".into()),
            sort: Some("password".into()),
            order: Some("up".into()),
            role: Some("root".into()),
            created_after: Some("yesterday".into()),
            ..Default::default()
        };
        let Err(Error::Validation(f)) = raw.parse() else {
            panic!("expected validation error")
        };
        for k in ["page", "per_page", "sort", "order", "role", "created_after"] {
            assert!(f.0.contains_key(k), "{k} missing in {f:?}");
        }
    }

    #[test]
    fn cursor_round_trip_and_mismatch() {
        let c = Cursor {
            sort: UserSort::Username,
            order: SortOrder::Asc,
            value: CursorValue::Text("bob".into()),
            id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not-a-cursor").is_err());
        let raw = RawUserQuery {
            cursor: Some(c.encode()),
            ..Default::default()
        };
        assert!(
            raw.parse().is_err(),
            "cursor for username/asc used with created_at/desc"
        );
        let raw = RawUserQuery {
            cursor: Some(c.encode()),
            sort: Some("username".into()),
            order: Some("asc".into()),
            ..Default::default()
        };
        assert_eq!(
            raw.parse().unwrap().page,
            PageRequest::Keyset { after: Some(c) }
        );
    }

    #[test]
    fn page_count() {
        assert_eq!(
            PageInfo::offset(1, 20, 41),
            PageInfo::Offset {
                page: 1,
                per_page: 20,
                total: 41,
                pages: 3
            }
        );
        assert_eq!(
            PageInfo::offset(1, 20, 0),
            PageInfo::Offset {
                page: 1,
                per_page: 20,
                total: 0,
                pages: 0
            }
        );
    }
}
