//! Reading the audit log: `GET /audit-events` filters and keyset pages, newest first.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{FieldErrors, Result};
use crate::model::{AuditEvent, Timestamp, UserId};
#[cfg(feature = "openapi")]
use crate::pagination::params;
use crate::pagination::{DEFAULT_PER_PAGE, MAX_PER_PAGE, PageInfo, int, time};

/// The longest event type or outcome a filter may name (the columns hold 100 characters).
pub(crate) const MAX_NAME: usize = 100;

/// Where a page of events ends: the events strictly older than (`at`, `id`) come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCursor {
    /// Microseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub at: i64,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl AuditCursor {
    /// The cursor positioned after `event`.
    pub fn after(event: &AuditEvent) -> Self {
        Self {
            at: event.at.timestamp_micros(),
            id: event.id,
        }
    }
    pub fn encode(&self) -> String {
        // Serialising an integer and a UUID cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
    pub fn decode(s: &str) -> Result<Self, String> {
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| "is not a valid cursor".to_owned())
    }
}

/// A validated audit query: every filter given must match; newest events first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events where this user acted or was acted upon.
    pub user_id: Option<UserId>,
    /// Exact event type, e.g. `auth.login`.
    pub r#type: Option<String>,
    /// Exact outcome, e.g. `failure`.
    pub outcome: Option<String>,
    /// Events at or after.
    pub since: Option<Timestamp>,
    /// Events before.
    pub until: Option<Timestamp>,
    /// `None`: the first page.
    pub after: Option<AuditCursor>,
    pub per_page: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            user_id: None,
            r#type: None,
            outcome: None,
            since: None,
            until: None,
            after: None,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl AuditQuery {
    /// The newest `per_page` events where `user_id` acted or was acted upon.
    pub fn about(user_id: UserId, per_page: u32) -> Self {
        Self {
            user_id: Some(user_id),
            per_page,
            ..Self::default()
        }
    }
}

/// The query of `GET /audit-events` as typed by the caller (REST query string, gRPC request),
/// validated by [`RawAuditQuery::parse`] so both protocols share the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RawAuditQuery {
    /// Events where this user acted or was acted upon.
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::UuidOrEmpty>, inline))]
    pub user_id: Option<String>,
    /// Event type, e.g. `auth.login`, `user.role_changed`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::EventNameOrEmpty>, inline, example = "auth.login"))]
    pub r#type: Option<String>,
    /// e.g. `success`, `failure`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::EventNameOrEmpty>, inline, example = "failure"))]
    pub outcome: Option<String>,
    /// Events at or after (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::DateTimeOrEmpty>, inline))]
    pub since: Option<String>,
    /// Events before (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::DateTimeOrEmpty>, inline))]
    pub until: Option<String>,
    /// Events per page (default 20).
    #[cfg_attr(feature = "openapi", param(value_type = Option<params::PerPageOrEmpty>, inline))]
    pub per_page: Option<String>,
    /// The `next_cursor` of the previous page; absent or empty for the first.
    pub cursor: Option<String>,
}

/// An event type or outcome: lower-case letters, digits, `.`, `_` and `-`.
fn name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= MAX_NAME
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ok.then(|| v.to_owned()).ok_or_else(|| {
        format!("must be 1 to {MAX_NAME} lower-case letters, digits, '.', '_' or '-'")
    })
}

/// A parameter that was given a value (an empty one counts as absent).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl RawAuditQuery {
    /// Validate every parameter, collecting all problems.
    pub fn parse(&self) -> Result<AuditQuery> {
        let mut errs = FieldErrors::new();
        let mut q = AuditQuery::default();
        if let Some(v) = given(&self.user_id) {
            q.user_id = errs.check(
                "user_id",
                Uuid::parse_str(v).map_err(|_| "must be a UUID".to_owned()),
            );
        }
        if let Some(v) = given(&self.r#type) {
            q.r#type = errs.check("type", name(v));
        }
        if let Some(v) = given(&self.outcome) {
            q.outcome = errs.check("outcome", name(v));
        }
        if let Some(v) = given(&self.since) {
            q.since = errs.check("since", time(v));
        }
        if let Some(v) = given(&self.until) {
            q.until = errs.check("until", time(v));
        }
        if let (Some(since), Some(until)) = (q.since, q.until)
            && until <= since
        {
            errs.add("until", "must be after since");
        }
        if let Some(v) = given(&self.per_page) {
            q.per_page = errs
                .check("per_page", int(v, 1, MAX_PER_PAGE))
                .unwrap_or(DEFAULT_PER_PAGE);
        }
        if let Some(v) = given(&self.cursor) {
            q.after = errs.check("cursor", AuditCursor::decode(v));
        }
        errs.into_result()?;
        Ok(q)
    }
}

/// A page of events, newest first; `pagination` is always the keyset form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    pub pagination: PageInfo,
}

impl AuditPage {
    /// The page of `per_page` events from `events`, which holds up to one more (that one more
    /// tells there is a next page).
    pub fn of(mut events: Vec<AuditEvent>, per_page: u32) -> Self {
        let more = events.len() > per_page as usize;
        events.truncate(per_page as usize);
        let next_cursor = more
            .then(|| events.last().map(|e| AuditCursor::after(e).encode()))
            .flatten();
        Self {
            items: events,
            pagination: PageInfo::Keyset {
                per_page,
                next_cursor,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn parses_filters_and_collects_all_errors() {
        let id = Uuid::now_v7();
        let raw = RawAuditQuery {
            user_id: Some(id.to_string()),
            r#type: Some("auth.login".into()),
            outcome: Some("failure".into()),
            since: Some("2026-01-01T00:00:00Z".into()),
            until: Some("2026-02-01T00:00:00Z".into()),
            per_page: Some("5".into()),
            cursor: Some(String::new()),
        };
        let q = raw.parse().unwrap();
        assert_eq!(q.user_id, Some(id));
        assert_eq!(q.r#type.as_deref(), Some("auth.login"));
        assert_eq!(q.outcome.as_deref(), Some("failure"));
        assert_eq!(q.per_page, 5);
        assert_eq!(q.after, None);

        let raw = RawAuditQuery {
            user_id: Some("alice".into()),
            r#type: Some("Auth Login".into()),
            outcome: Some("x".repeat(101)),
            since: Some("2026-02-01T00:00:00Z".into()),
            until: Some("2026-01-01T00:00:00Z".into()),
            per_page: Some("0".into()),
            cursor: Some("not-a-cursor".into()),
        };
        let Err(Error::Validation(f)) = raw.parse() else {
            panic!("expected validation error")
        };
        for k in ["user_id", "type", "outcome", "until", "per_page", "cursor"] {
            assert!(f.0.contains_key(k), "{k} missing in {f:?}");
        }
    }

    #[test]
    fn cursor_round_trip_and_foreign_cursors_refused() {
        let c = AuditCursor {
            at: 1_700_000_000_000_000,
            id: Uuid::now_v7(),
        };
        assert_eq!(AuditCursor::decode(&c.encode()), Ok(c));
        let users_cursor = URL_SAFE_NO_PAD.encode(
            br#"{"s":"username","o":"asc","v":"bob","i":"00000000-0000-0000-0000-000000000000"}"#,
        );
        assert!(AuditCursor::decode(&users_cursor).is_err());
    }

    #[test]
    fn a_page_tells_whether_more_follow() {
        let event = |n: i64| AuditEvent {
            id: Uuid::now_v7(),
            at: chrono::DateTime::from_timestamp_micros(n).unwrap(),
            actor_id: None,
            subject_id: None,
            r#type: "auth.login".into(),
            outcome: "success".into(),
            ip: None,
            request_id: None,
            details: None,
        };
        let three: Vec<_> = (0..3).rev().map(event).collect();
        let page = AuditPage::of(three.clone(), 2);
        assert_eq!(page.items, three[..2]);
        let PageInfo::Keyset {
            next_cursor: Some(c),
            ..
        } = page.pagination
        else {
            panic!("expected a next cursor")
        };
        assert_eq!(AuditCursor::decode(&c), Ok(AuditCursor::after(&three[1])));
        let last = AuditPage::of(three[..2].to_vec(), 2);
        assert!(matches!(
            last.pagination,
            PageInfo::Keyset {
                next_cursor: None,
                ..
            }
        ));
    }
}
