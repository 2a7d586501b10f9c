//! The caller's access token and the request facts a gateway forwards to the internal port, both
//! ends: [`forward`] writes them (client adapters), [`VerifiedPrincipal`] checks them (servers).
use std::net::IpAddr;
use std::sync::Arc;

use domain::{AccessToken, AuthService, Error, Principal, RequestContext, Result};
use tonic::metadata::{MetadataMap, MetadataValue};
use uuid::Uuid;

use super::{Call, PrincipalSource};

pub const CLIENT_IP: &str = "x-arcana-client-ip";
pub const USER_AGENT: &str = "x-arcana-user-agent";

/// The caller's sane `x-request-id`, else a fresh id.
pub fn request_id_or_new(md: &MetadataMap) -> String {
    crate::context::from_metadata(md).unwrap_or_else(|| Uuid::new_v4().to_string())
}

fn text<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

/// The token of an `authorization: Bearer <token>` value; `Error::Unauthorized` for anything else.
pub fn parse_bearer(value: Option<&str>) -> Result<&str> {
    let v = value.ok_or(Error::Unauthorized)?;
    let (scheme, token) = v.trim().split_once(' ').ok_or(Error::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized);
    }
    Ok(token.trim())
}

/// The bearer token of a call's `authorization` metadata.
pub fn bearer_token(md: &MetadataMap) -> Result<&str> {
    parse_bearer(text(md, AUTHORIZATION))
}

const AUTHORIZATION: &str = "authorization";

/// Checks an access token's signature and claims (the verifying half of the JWT keys, handed in
/// by the binary that wires the layers, so this crate holds no key).
pub type VerifyToken = Arc<dyn Fn(&str) -> Result<Principal> + Send + Sync>;

/// How long a "live" answer about a session is reused by [`VerifiedPrincipal`] (a "not live"
/// one never is): a session that ended is refused by the service layer within this long, well
/// inside the 5 s revocation promise, and a busy caller costs one liveness read per session per
/// second instead of one per call.
pub const LIVE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The internal port's caller policy. The caller is whoever the access token forwarded in
/// `authorization: Bearer` names, when it verifies and its session is live, asked of `sessions`
/// (this process's own service layer; a "live" answer is reused for at most
/// [`LIVE_CACHE_TTL`]); or, for a personal access token, the caller the service layer says it
/// makes (its scopes then narrow every call, per `domain::OPERATIONS`). So a holder of the internal credential (a compromised gateway) can act
/// only as users whose tokens it holds, never claim an identity. The request facts (request
/// id, client ip, user agent) are taken as forwarded: they feed the audit log and the
/// per-network lockout, never an authorization. Serve it only behind the internal credential.
#[derive(Clone)]
pub struct VerifiedPrincipal {
    verify: VerifyToken,
    sessions: Arc<dyn AuthService>,
    /// Sessions found live (with the user and role the token named), for [`LIVE_CACHE_TTL`].
    live: moka::sync::Cache<Principal, ()>,
    /// Personal access tokens and service accounts' tokens found live, and the caller each
    /// makes, for [`LIVE_CACHE_TTL`].
    tokens: moka::sync::Cache<String, Principal>,
}

impl VerifiedPrincipal {
    pub fn new(verify: VerifyToken, sessions: Arc<dyn AuthService>) -> Self {
        let live = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(LIVE_CACHE_TTL)
            .build();
        let tokens = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(LIVE_CACHE_TTL)
            .build();
        Self {
            verify,
            sessions,
            live,
            tokens,
        }
    }
}

#[tonic::async_trait]
impl PrincipalSource for VerifiedPrincipal {
    async fn principal(&self, call: &Call<'_>) -> Result<Principal> {
        let token = bearer_token(call.metadata)?;
        let session = if token.starts_with(domain::PAT_PREFIX) {
            Err(Error::Unauthorized)
        } else {
            (self.verify)(token)
        };
        let who = match session {
            Ok(who) => who,
            // A personal access token, or a service account's access token (signed with the
            // provider's keys, which the session verifier does not hold): this process's own
            // service layer says what it makes.
            Err(Error::Unauthorized) => {
                if let Some(who) = self.tokens.get(token) {
                    return Ok(who);
                }
                let who = self
                    .sessions
                    .token_principal(&AccessToken::new(token))
                    .await?
                    .ok_or(Error::Unauthorized)?;
                self.tokens.insert(token.to_owned(), who);
                return Ok(who);
            }
            Err(e) => return Err(e),
        };
        if self.live.contains_key(&who) {
            return Ok(who);
        }
        if self.sessions.session_live(&who).await? {
            self.live.insert(who, ());
            Ok(who)
        } else {
            Err(Error::Unauthorized)
        }
    }

    fn context(&self, call: &Call<'_>) -> RequestContext {
        forwarded_context(call.metadata)
    }
}

/// The request facts a gateway forwards (request id, else a fresh one; client ip; user agent).
fn forwarded_context(md: &MetadataMap) -> RequestContext {
    RequestContext::new(
        Some(request_id_or_new(md)),
        text(md, CLIENT_IP)
            .and_then(|v| v.parse::<IpAddr>().ok())
            .map(|ip| ip.to_string()),
        text(md, USER_AGENT),
    )
}

/// The policy of an internal service that acts for no caller (the gateway's session checks):
/// the forwarded request facts, and no principal at all.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoCaller;

#[tonic::async_trait]
impl PrincipalSource for NoCaller {
    async fn principal(&self, _call: &Call<'_>) -> Result<Principal> {
        Err(Error::Unauthorized)
    }

    fn context(&self, call: &Call<'_>) -> RequestContext {
        forwarded_context(call.metadata)
    }
}

/// Client side: put the caller's access `token` and the facts of `ctx` (client ip, user agent)
/// in `md`. The request id travels separately (`crate::client::Upstream::request_with_id`).
pub fn forward(md: &mut MetadataMap, ctx: Option<&RequestContext>, token: Option<&AccessToken>) {
    let mut put = |key: &'static str, value: &str| {
        // Metadata values are visible ASCII; anything else is replaced (facts for the log only).
        let clean: String = value
            .chars()
            .take(domain::MAX_USER_AGENT)
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
    if let Some(ctx) = ctx {
        if let Some(ip) = &ctx.ip {
            put(CLIENT_IP, ip);
        }
        if let Some(ua) = &ctx.user_agent {
            put(USER_AGENT, ua);
        }
    }
    if let Some(token) = token
        && let Ok(mut v) = MetadataValue::try_from(format!("Bearer {}", token.expose()))
    {
        // Never printed by the transport's debug output.
        v.set_sensitive(true);
        md.insert(AUTHORIZATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_token_and_facts_round_trip() {
        let ctx = RequestContext {
            request_id: Some("abc-1".into()),
            ip: Some("2001:db8::1".into()),
            user_agent: Some("curl/8 \u{e9}t\u{e9}".into()),
        };
        let token = AccessToken::new("header.claims.signature");
        let mut md = MetadataMap::new();
        forward(&mut md, Some(&ctx), Some(&token));
        md.insert(
            crate::context::REQUEST_ID,
            MetadataValue::from_static("abc-1"),
        );
        assert_eq!(bearer_token(&md).unwrap(), "header.claims.signature");
        assert!(md.get(AUTHORIZATION).unwrap().is_sensitive());
        let call = Call {
            metadata: &md,
            remote_addr: None,
        };
        let got = NoCaller.context(&call);
        assert_eq!(got.request_id.as_deref(), Some("abc-1"));
        assert_eq!(got.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(got.user_agent.as_deref(), Some("curl/8 ?t?"));
        let bare = NoCaller.context(&Call {
            metadata: &MetadataMap::new(),
            remote_addr: None,
        });
        assert_eq!(bare.ip, None);
        assert!(bare.request_id.is_some(), "a fresh id when none came");
        // No token, no authorization header: nothing to verify.
        let mut md = MetadataMap::new();
        forward(&mut md, Some(&ctx), None);
        assert!(matches!(bearer_token(&md), Err(Error::Unauthorized)));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse_bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(parse_bearer(Some("bearer  abc ")).unwrap(), "abc");
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
        ] {
            assert!(
                matches!(parse_bearer(bad), Err(Error::Unauthorized)),
                "{bad:?}"
            );
        }
    }
}
