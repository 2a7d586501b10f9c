//! Answer bodies made stable for snapshot tests (insta): every value that differs from run to
//! run (ids, instants, tokens, request ids, cursors) is checked for its shape and replaced by a
//! placeholder, everything else is kept as the server sent it. A snapshot then asserts the whole
//! body — a field added, dropped, renamed or re-typed shows up as a diff.
use serde_json::Value;

/// `body` with its volatile values replaced: `[uuid]`, `[timestamp]`, `[token]`, `[request-id]`,
/// `[cursor]`. Panics when a volatile value does not have its shape (an id that is no UUID,
/// an instant that is no RFC 3339 date).
pub fn stable(body: &Value) -> Value {
    walk(None, body)
}

fn walk(key: Option<&str>, v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), walk(Some(k), v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| walk(key, v)).collect()),
        Value::String(s) => match key.and_then(kind) {
            Some(k) => Value::String(placeholder(k, s).to_owned()),
            None => v.clone(),
        },
        _ => v.clone(),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Uuid,
    Instant,
    Token,
    RequestId,
    Cursor,
}

fn kind(key: &str) -> Option<Kind> {
    match key {
        "id" | "user_id" | "subject_id" | "actor_id" | "session_id" => Some(Kind::Uuid),
        "access_token" | "refresh_token" | "token" => Some(Kind::Token),
        "request_id" => Some(Kind::RequestId),
        "next_cursor" | "prev_cursor" | "cursor" => Some(Kind::Cursor),
        "timestamp" | "at" => Some(Kind::Instant),
        k if k.ends_with("_at") => Some(Kind::Instant),
        _ => None,
    }
}

fn placeholder(kind: Kind, s: &str) -> &'static str {
    match kind {
        Kind::Uuid => {
            assert!(uuid_shaped(s), "not a UUID: {s:?}");
            "[uuid]"
        }
        Kind::Instant => {
            assert!(rfc3339_shaped(s), "not an RFC 3339 instant: {s:?}");
            "[timestamp]"
        }
        Kind::Token => {
            assert!(s.len() >= 20, "token too short: {s:?}");
            "[token]"
        }
        Kind::RequestId => {
            assert!(!s.is_empty(), "empty request id");
            "[request-id]"
        }
        Kind::Cursor => {
            assert!(!s.is_empty(), "empty cursor");
            "[cursor]"
        }
    }
}

fn uuid_shaped(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn rfc3339_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (s.ends_with('Z') || s[19..].contains(['+', '-']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_values_become_placeholders_and_the_rest_stays() {
        let body = json!({
            "success": true,
            "timestamp": "2026-12-06T10:00:00.123Z",
            "request_id": "abc",
            "data": {"items": [{"id": "0190a0b0-0000-7000-8000-000000000001", "username": "a",
                                "created_at": "2026-12-06T10:00:00+00:00", "last_login_at": null}],
                     "pagination": {"next_cursor": "xyz", "total": 3}}
        });
        assert_eq!(
            stable(&body),
            json!({
                "success": true,
                "timestamp": "[timestamp]",
                "request_id": "[request-id]",
                "data": {"items": [{"id": "[uuid]", "username": "a",
                                    "created_at": "[timestamp]", "last_login_at": null}],
                         "pagination": {"next_cursor": "[cursor]", "total": 3}}
            })
        );
    }

    #[test]
    #[should_panic(expected = "not a UUID")]
    fn a_malformed_id_fails() {
        stable(&json!({"id": "42"}));
    }

    #[test]
    #[should_panic(expected = "not an RFC 3339 instant")]
    fn a_malformed_instant_fails() {
        stable(&json!({"created_at": "yesterday"}));
    }
}
