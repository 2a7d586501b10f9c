//! Extractors that turn every malformed input into the error envelope: JSON bodies (content type,
//! syntax, unknown fields, types, size), UUID path segments, query strings and the caller's
//! network facts.
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use domain::{Error, FieldErrors, RequestContext};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::AppState;
use crate::envelope::RequestId;
use crate::error::ApiError;

/// A JSON body. Wrong content type or broken JSON → `INVALID_JSON`; well-formed JSON of the wrong
/// shape (unknown or missing fields, wrong types) → `VALIDATION_FAILED` naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::InvalidJson(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("could not read the request body".into())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(
            "request body is empty; expected a JSON object".into(),
        ));
    }
    // serde would accept `[..]` for a struct; the API only speaks objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            return Err(ApiError::InvalidJson(
                "request body is not valid JSON".into(),
            ));
        }
        return Err(ApiError::Domain(Error::validation(
            "body",
            "must be a JSON object",
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    let err = match result {
        Ok(v) => {
            return match de.end() {
                Ok(()) => Ok(v),
                Err(e) => Err(ApiError::InvalidJson(format!(
                    "request body has trailing characters after the JSON value ({})",
                    position(&e)
                ))),
            };
        }
        Err(e) => e,
    };
    let path = err.path().to_string();
    let inner = err.into_inner();
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => Err(ApiError::InvalidJson(format!(
            "request body is not valid JSON ({})",
            position(&inner)
        ))),
        Category::Data => Err(ApiError::Domain(Error::Validation(field_error(
            &path, &inner,
        )))),
    }
}

fn position(e: &serde_json::Error) -> String {
    format!("line {}, column {}", e.line(), e.column())
}

/// Turn serde's data error into `{field: [message]}` without serde's position suffix.
fn field_error(path: &str, e: &serde_json::Error) -> FieldErrors {
    let full = e.to_string();
    let msg = full.split(" at line ").next().unwrap_or(&full);
    let backticked = msg.split('`').nth(1).unwrap_or("").to_owned();
    let (field, text) = if let Some(rest) = msg.strip_prefix("unknown field") {
        let _ = rest;
        let parent = path.trim_end_matches(&backticked).trim_end_matches('.');
        let field = if parent.is_empty() || parent == "." {
            backticked
        } else {
            format!("{parent}.{backticked}")
        };
        (field, "is not an allowed field".to_owned())
    } else if msg.starts_with("missing field") {
        let parent = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        (format!("{parent}{backticked}"), "is required".to_owned())
    } else {
        let field = if path.is_empty() || path == "." {
            "body".to_owned()
        } else {
            path.to_owned()
        };
        (field, msg.to_owned())
    };
    FieldErrors::single(&field, text)
}

/// A `{id}` path segment that must be a UUID.
pub struct ApiId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ApiId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Domain(Error::validation("id", "must be a UUID")))?;
        Uuid::parse_str(&raw)
            .map(ApiId)
            .map_err(|_| ApiError::Domain(Error::validation("id", "must be a UUID")))
    }
}

/// A query string deserialised strictly (unknown parameters are rejected).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q).map(ApiQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}").parse().map_err(|_| {
            ApiError::Domain(Error::validation("query", "is not a valid query string"))
        })?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|rej| {
        let text = rej.body_text();
        let text = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        let field = text.split('`').nth(1).unwrap_or("query").to_owned();
        let msg = if text.starts_with("unknown field") {
            "is not an allowed parameter".to_owned()
        } else {
            text.to_owned()
        };
        ApiError::Domain(Error::Validation(FieldErrors::single(&field, msg)))
    })
}

/// Who is calling from where: the client IP (trusting `X-Forwarded-For` only from configured
/// proxies), the user agent and the request id, as the service layer records them.
pub struct Client {
    pub ip: Option<IpAddr>,
    pub ctx: RequestContext,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = peer.map(|p| state.client_ip(p, parts.headers.get_all("x-forwarded-for").iter()));
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        Ok(Client {
            ip,
            ctx: RequestContext::new(request_id, ip.map(|i| i.to_string()), user_agent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        age: Option<u8>,
    }

    fn fields(r: Result<Body, ApiError>) -> FieldErrors {
        match r {
            Err(ApiError::Domain(Error::Validation(f))) => f,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert!(parse_json::<Body>(br#"{"name":"x"}"#).is_ok());
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b""),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"name":"x"} trailing"#),
            Err(ApiError::InvalidJson(_))
        ));
        let f = fields(parse_json(br#"{"name":"x","admin":true}"#));
        assert_eq!(f.0["admin"], vec!["is not an allowed field"]);
        let f = fields(parse_json(br#"{}"#));
        assert_eq!(f.0["name"], vec!["is required"]);
        let f = fields(parse_json(br#"{"name":"x","age":"old"}"#));
        assert!(f.0.contains_key("age"), "{f:?}");
        let f = fields(parse_json(br#"[1]"#));
        assert!(f.0.contains_key("body"), "{f:?}");
    }
}
