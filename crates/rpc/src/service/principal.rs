//! The caller identity and request facts a gateway forwards to the internal port, both ends:
//! [`forward`] writes them (client adapters), [`ForwardedPrincipal`] reads them (servers).
use std::net::IpAddr;

use domain::{Error, Principal, RequestContext, Result, Role};
use tonic::metadata::{MetadataMap, MetadataValue};
use uuid::Uuid;

use super::{Call, PrincipalSource};

pub const USER_ID: &str = "x-arcana-user-id";
pub const SESSION_ID: &str = "x-arcana-session-id";
pub const ROLE: &str = "x-arcana-role";
pub const CLIENT_IP: &str = "x-arcana-client-ip";
pub const USER_AGENT: &str = "x-arcana-user-agent";

/// Longest user agent recorded (as REST).
const MAX_USER_AGENT: usize = 255;

/// The caller's sane `x-request-id`, else a fresh id.
pub fn request_id_or_new(md: &MetadataMap) -> String {
    crate::context::from_metadata(md).unwrap_or_else(|| Uuid::new_v4().to_string())
}

fn text<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

/// Trusts the `x-arcana-*` metadata a gateway forwards. Serve it only behind the internal
/// credential: on an open port anyone could claim to be an admin.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardedPrincipal;

#[tonic::async_trait]
impl PrincipalSource for ForwardedPrincipal {
    async fn principal(&self, call: &Call<'_>) -> Result<Principal> {
        let md = call.metadata;
        let id = |key: &str| text(md, key).and_then(|v| Uuid::parse_str(v).ok());
        let (Some(user_id), Some(session_id), Some(role)) = (
            id(USER_ID),
            id(SESSION_ID),
            text(md, ROLE).and_then(|r| r.parse::<Role>().ok()),
        ) else {
            return Err(Error::Unauthorized);
        };
        Ok(Principal {
            user_id,
            session_id,
            role,
        })
    }

    fn context(&self, call: &Call<'_>) -> RequestContext {
        let md = call.metadata;
        RequestContext {
            request_id: Some(request_id_or_new(md)),
            ip: text(md, CLIENT_IP)
                .and_then(|v| v.parse::<IpAddr>().ok())
                .map(|ip| ip.to_string()),
            user_agent: text(md, USER_AGENT).map(|v| v.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

/// Client side: put `who` and the facts of `ctx` (client ip, user agent) in `md`. The request id
/// travels separately (`crate::client::Upstream::request_with_id`).
pub fn forward(md: &mut MetadataMap, ctx: Option<&RequestContext>, who: Option<&Principal>) {
    let mut put = |key: &'static str, value: &str| {
        // Metadata values are visible ASCII; anything else is replaced (facts for the log only).
        let clean: String = value
            .chars()
            .take(MAX_USER_AGENT)
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = MetadataValue::try_from(clean.as_str()) {
            md.insert(key, v);
        }
    };
    if let Some(who) = who {
        put(USER_ID, &who.user_id.to_string());
        put(SESSION_ID, &who.session_id.to_string());
        put(ROLE, who.role.as_str());
    }
    if let Some(ctx) = ctx {
        if let Some(ip) = &ctx.ip {
            put(CLIENT_IP, ip);
        }
        if let Some(ua) = &ctx.user_agent {
            put(USER_AGENT, ua);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwarded_identity_round_trips() {
        let who = Principal {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            role: Role::Admin,
        };
        let ctx = RequestContext {
            request_id: Some("abc-1".into()),
            ip: Some("2001:db8::1".into()),
            user_agent: Some("curl/8 \u{e9}t\u{e9}".into()),
        };
        let mut md = MetadataMap::new();
        forward(&mut md, Some(&ctx), Some(&who));
        md.insert(
            crate::context::REQUEST_ID,
            MetadataValue::from_static("abc-1"),
        );
        let call = Call {
            metadata: &md,
            remote_addr: None,
        };
        assert_eq!(ForwardedPrincipal.principal(&call).await.unwrap(), who);
        let got = ForwardedPrincipal.context(&call);
        assert_eq!(got.request_id.as_deref(), Some("abc-1"));
        assert_eq!(got.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(got.user_agent.as_deref(), Some("curl/8 ?t?"));
    }

    #[tokio::test]
    async fn missing_or_bad_identity_is_unauthorized() {
        let mut md = MetadataMap::new();
        let call = Call {
            metadata: &md,
            remote_addr: None,
        };
        assert!(matches!(
            ForwardedPrincipal.principal(&call).await,
            Err(Error::Unauthorized)
        ));
        md.insert(USER_ID, MetadataValue::from_static("not-a-uuid"));
        md.insert(SESSION_ID, MetadataValue::from_static("also-not"));
        md.insert(ROLE, MetadataValue::from_static("root"));
        md.insert(CLIENT_IP, MetadataValue::from_static("somewhere"));
        let call = Call {
            metadata: &md,
            remote_addr: None,
        };
        assert!(matches!(
            ForwardedPrincipal.principal(&call).await,
            Err(Error::Unauthorized)
        ));
        let ctx = ForwardedPrincipal.context(&call);
        assert_eq!(ctx.ip, None);
        assert!(ctx.request_id.is_some(), "a fresh id when none came");
    }
}
