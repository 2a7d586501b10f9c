//! OpenID Connect relying parties ("clients"): the applications that log their users in through
//! arcana. An admin registers each one; its redirect URIs are compared exactly, a confidential
//! client proves itself with a secret (shown once, stored as a SHA-256), a public one with PKCE.
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, FieldErrors, Result};
use crate::model::{AuditEvent, NewSession, SessionId, Timestamp, UserId};
use crate::pagination::{DEFAULT_PER_PAGE, MAX_PER_PAGE, PageInfo};

/// `client_id`: a UUID, chosen by arcana.
pub type ClientId = Uuid;

/// Every scope arcana knows; a client may be allowed any subset that contains `openid`.
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access", "roles"];

/// Redirect URIs (and post-logout ones) a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// The longest redirect URI accepted.
pub const MAX_URI_LEN: usize = 2000;
/// The longest client name.
pub const MAX_CLIENT_NAME: usize = 100;

/// How the ID tokens of a client are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IdTokenAlg {
    #[default]
    RS256,
    EdDSA,
}

impl IdTokenAlg {
    pub const ALL: &'static [IdTokenAlg] = &[IdTokenAlg::RS256, IdTokenAlg::EdDSA];
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::RS256 => "RS256",
            IdTokenAlg::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| "must be RS256 or EdDSA".to_owned())
    }
}

/// A registered client as admins see it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcClient {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub client_id: ClientId,
    pub name: String,
    /// Compared exactly (no prefix, no wildcard) with the `redirect_uri` of every request.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (a single-page or native app) has no secret and must use PKCE S256.
    pub public: bool,
    pub allowed_scopes: Vec<String>,
    /// Ask the user before the first login to this client (and when it asks for more scopes).
    pub require_consent: bool,
    pub id_token_signed_response_alg: IdTokenAlg,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A client as stored: with the SHA-256 (hex) of its secret (`None` for a public client).
/// Leaves the repository only towards the service layer.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClient {
    pub client: OidcClient,
    pub secret_hash: Option<String>,
}

impl fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredClient")
            .field("client", &self.client)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The answer to creating a client or rotating its secret: the client and, for a confidential
/// one, its secret — shown this once, never again.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedClient {
    #[serde(flatten)]
    pub client: OidcClient,
    /// 43 characters of base64url (256 random bits); absent for a public client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl fmt::Debug for IssuedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// `POST /oidc/clients`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcClientInput {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, example = "Grafana")
    )]
    pub name: String,
    /// 1 to 10 absolute URIs: `https://`, or `http://` on localhost / a loopback address; no
    /// fragment.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10, example = json!(["https://grafana.example.com/login/generic_oauth"])))]
    pub redirect_uris: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Default false (a confidential client, given a secret).
    pub public: Option<bool>,
    /// A subset of `openid profile email offline_access roles` containing `openid`; default all.
    pub allowed_scopes: Option<Vec<String>>,
    /// Default true.
    pub require_consent: Option<bool>,
    /// `RS256` (default) or `EdDSA`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<IdTokenAlg>))]
    pub id_token_signed_response_alg: Option<String>,
}

/// `PATCH /oidc/clients/{client_id}`: absent fields stay. Whether a client is public cannot
/// change (register a new one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcClientPatch {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10))]
    pub redirect_uris: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub allowed_scopes: Option<Vec<String>>,
    pub require_consent: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<IdTokenAlg>))]
    pub id_token_signed_response_alg: Option<String>,
}

impl OidcClientPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `GET /oidc/clients`: keyset pages in `client_id` order, as typed by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RawClientQuery {
    /// 1–100, default 20.
    pub per_page: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated client listing: the clients whose id sorts after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuery {
    pub after: Option<ClientId>,
    pub per_page: u32,
}

impl Default for ClientQuery {
    fn default() -> Self {
        Self {
            after: None,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl RawClientQuery {
    pub fn parse(&self) -> Result<ClientQuery> {
        let mut errors = FieldErrors::new();
        let per_page = match self.per_page.as_deref() {
            None => Some(DEFAULT_PER_PAGE),
            Some(s) => errors.check(
                "per_page",
                s.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                    .ok_or_else(|| format!("must be an integer from 1 to {MAX_PER_PAGE}")),
            ),
        };
        let after = match self.cursor.as_deref() {
            None => Some(None),
            Some(s) => errors.check(
                "cursor",
                Uuid::parse_str(s)
                    .map(Some)
                    .map_err(|_| "is not a valid cursor".to_owned()),
            ),
        };
        errors.into_result()?;
        Ok(ClientQuery {
            after: after.flatten(),
            per_page: per_page.unwrap_or(DEFAULT_PER_PAGE),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientPage {
    pub items: Vec<OidcClient>,
    pub pagination: PageInfo,
}

impl ClientPage {
    /// A page from at most `per_page + 1` clients in id order (one more tells there is a next).
    pub fn of(mut clients: Vec<OidcClient>, per_page: u32) -> Self {
        let more = clients.len() > per_page as usize;
        clients.truncate(per_page as usize);
        let next_cursor = more
            .then(|| clients.last().map(|c| c.client_id.to_string()))
            .flatten();
        Self {
            items: clients,
            pagination: PageInfo::Keyset {
                per_page,
                next_cursor,
            },
        }
    }
}

/// A redirect URI as it may be registered: absolute, `https`, or `http` on a loopback host
/// (a developer's machine, a native app); no fragment; no user info.
pub fn parse_redirect_uri(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() || s.len() > MAX_URI_LEN {
        return Err(format!("must be 1 to {MAX_URI_LEN} characters"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let url = url::Url::parse(s).map_err(|_| "must be an absolute URL".to_owned())?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("must name a host".into()),
    };
    match url.scheme() {
        "https" => Ok(s.to_owned()),
        "http" if loopback => Ok(s.to_owned()),
        "http" => Err("must use https (http only on localhost or a loopback address)".into()),
        _ => Err("must be an https URL".into()),
    }
}

fn parse_uris(
    errors: &mut FieldErrors,
    field: &str,
    uris: &[String],
    min: usize,
) -> Option<Vec<String>> {
    if uris.len() < min || uris.len() > MAX_REDIRECT_URIS {
        errors.add(
            field,
            format!("must hold {min} to {MAX_REDIRECT_URIS} URIs"),
        );
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(uris.len());
    let mut ok = true;
    for (i, uri) in uris.iter().enumerate() {
        match parse_redirect_uri(uri) {
            Ok(u) if out.contains(&u) => {
                errors.add(&format!("{field}[{i}]"), "is listed twice");
                ok = false;
            }
            Ok(u) => out.push(u),
            Err(e) => {
                errors.add(&format!("{field}[{i}]"), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn parse_scopes(errors: &mut FieldErrors, scopes: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        if !SUPPORTED_SCOPES.contains(&s.as_str()) {
            errors.add(
                "allowed_scopes",
                format!("may hold only {} (not {s:?})", SUPPORTED_SCOPES.join(", ")),
            );
            return None;
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    if !out.iter().any(|s| s == "openid") {
        errors.add("allowed_scopes", "must contain openid");
        return None;
    }
    // Stored in the supported order, so equal sets compare equal.
    out.sort_by_key(|s| SUPPORTED_SCOPES.iter().position(|k| k == s));
    Some(out)
}

fn parse_client_name(errors: &mut FieldErrors, name: &str) -> Option<String> {
    let name = name.trim();
    let r = if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME {
        Err(format!("must be 1 to {MAX_CLIENT_NAME} characters"))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(name.to_owned())
    };
    errors.check("name", r)
}

/// The settings of a client that passed validation (everything but id, secret and instants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub allowed_scopes: Vec<String>,
    pub require_consent: bool,
    pub id_token_signed_response_alg: IdTokenAlg,
}

impl OidcClientInput {
    /// Every field checked; all errors at once.
    pub fn validate(&self) -> Result<ClientSettings> {
        let mut errors = FieldErrors::new();
        let name = parse_client_name(&mut errors, &self.name);
        let redirect = parse_uris(&mut errors, "redirect_uris", &self.redirect_uris, 1);
        let post_logout = parse_uris(
            &mut errors,
            "post_logout_redirect_uris",
            self.post_logout_redirect_uris
                .as_deref()
                .unwrap_or_default(),
            0,
        );
        let all: Vec<String> = SUPPORTED_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let scopes = parse_scopes(&mut errors, self.allowed_scopes.as_deref().unwrap_or(&all));
        let alg = match self.id_token_signed_response_alg.as_deref() {
            None => Some(IdTokenAlg::default()),
            Some(a) => errors.check("id_token_signed_response_alg", IdTokenAlg::parse(a)),
        };
        errors.into_result()?;
        match (name, redirect, post_logout, scopes, alg) {
            (
                Some(name),
                Some(redirect_uris),
                Some(post_logout_redirect_uris),
                Some(allowed_scopes),
                Some(alg),
            ) => Ok(ClientSettings {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public: self.public.unwrap_or(false),
                allowed_scopes,
                require_consent: self.require_consent.unwrap_or(true),
                id_token_signed_response_alg: alg,
            }),
            _ => Err(Error::internal("client validation lost an error")),
        }
    }
}

impl OidcClientPatch {
    /// `client` with the patch applied; every field checked, all errors at once.
    pub fn apply(&self, client: &OidcClient) -> Result<OidcClient> {
        let mut errors = FieldErrors::new();
        let mut out = client.clone();
        if let Some(n) = &self.name
            && let Some(n) = parse_client_name(&mut errors, n)
        {
            out.name = n;
        }
        if let Some(u) = &self.redirect_uris
            && let Some(u) = parse_uris(&mut errors, "redirect_uris", u, 1)
        {
            out.redirect_uris = u;
        }
        if let Some(u) = &self.post_logout_redirect_uris
            && let Some(u) = parse_uris(&mut errors, "post_logout_redirect_uris", u, 0)
        {
            out.post_logout_redirect_uris = u;
        }
        if let Some(s) = &self.allowed_scopes
            && let Some(s) = parse_scopes(&mut errors, s)
        {
            out.allowed_scopes = s;
        }
        if let Some(c) = self.require_consent {
            out.require_consent = c;
        }
        if let Some(a) = &self.id_token_signed_response_alg
            && let Some(a) = errors.check("id_token_signed_response_alg", IdTokenAlg::parse(a))
        {
            out.id_token_signed_response_alg = a;
        }
        errors.into_result()?;
        Ok(out)
    }
}

/// An authorization code as stored: only its SHA-256 (hex), and what it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    pub code_hash: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The SSO session the user was signed in with.
    pub sso_session_id: SessionId,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge (base64url of the verifier's SHA-256), when one was sent.
    pub code_challenge: Option<String>,
    /// When the user last authenticated (the SSO session's start).
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A code and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub code: NewCode,
    pub used_at: Option<Timestamp>,
    /// The session its tokens belong to, once redeemed.
    pub session_id: Option<SessionId>,
}

/// What a token session was issued for: the client, the scopes granted, and the SSO session
/// behind it. Kept beside the session (its refresh token renews the same grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub session_id: SessionId,
    pub client_id: ClientId,
    pub sso_session_id: SessionId,
    pub scopes: Vec<String>,
    pub auth_time: Timestamp,
}

/// Spend a code: open `session` for its tokens and record the grant, in one transaction with
/// `audit`. A code presented again revokes the session of its tokens (`code_reuse`) and writes
/// `reuse_audit` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRedemption {
    pub code_hash: String,
    pub session: NewSession,
    pub audit: Vec<AuditEvent>,
    pub reuse_audit: Vec<AuditEvent>,
    pub now: Timestamp,
}

/// How a redemption ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The session is open; its grant as recorded.
    Issued(Grant),
    /// Spent before: the tokens issued from it are revoked (`revoked`: how many sessions).
    Reused { revoked: u64 },
    /// Unknown or expired: nothing changed.
    Unusable,
}

/// A user's consent to a client: the scopes they allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> OidcClientInput {
        OidcClientInput {
            name: " Grafana ".into(),
            redirect_uris: vec!["https://grafana.example.com/login/generic_oauth".into()],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_of_a_new_client() {
        let s = input().validate().unwrap();
        assert_eq!(s.name, "Grafana");
        assert!(!s.public);
        assert!(s.require_consent);
        assert_eq!(s.id_token_signed_response_alg, IdTokenAlg::RS256);
        assert_eq!(s.allowed_scopes, SUPPORTED_SCOPES);
        assert!(s.post_logout_redirect_uris.is_empty());
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://localhost:3000/callback",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "https://localhost/cb",
        ] {
            assert_eq!(parse_redirect_uri(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "/relative/cb",
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "ftp://example.com/cb",
            "https://app.example.com/c b",
            "custom.scheme:/cb",
        ] {
            assert!(parse_redirect_uri(bad).is_err(), "{bad} accepted");
        }
        assert!(
            parse_redirect_uri(&format!("https://a.example/{}", "x".repeat(MAX_URI_LEN))).is_err()
        );
    }

    #[test]
    fn every_error_at_once() {
        let bad = OidcClientInput {
            name: "".into(),
            redirect_uris: vec![
                "http://evil.example/cb".into(),
                "https://ok.example/cb".into(),
            ],
            post_logout_redirect_uris: Some(vec!["nope".into()]),
            allowed_scopes: Some(vec!["profile".into()]),
            id_token_signed_response_alg: Some("HS256".into()),
            ..Default::default()
        };
        let Err(Error::Validation(f)) = bad.validate() else {
            panic!("accepted")
        };
        let keys: Vec<&str> = f.0.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "allowed_scopes",
                "id_token_signed_response_alg",
                "name",
                "post_logout_redirect_uris[0]",
                "redirect_uris[0]"
            ]
        );
        let none = OidcClientInput {
            redirect_uris: vec![],
            ..input()
        };
        assert!(none.validate().is_err());
        let twice = OidcClientInput {
            redirect_uris: vec!["https://a.example/cb".into(), "https://a.example/cb".into()],
            ..input()
        };
        assert!(twice.validate().is_err());
    }

    #[test]
    fn scopes_are_deduplicated_and_ordered() {
        let s = OidcClientInput {
            allowed_scopes: Some(vec!["email".into(), "openid".into(), "email".into()]),
            ..input()
        }
        .validate()
        .unwrap();
        assert_eq!(s.allowed_scopes, ["openid", "email"]);
    }

    #[test]
    fn patch_applies_checked_fields_only() {
        let now = chrono::Utc::now();
        let c = OidcClient {
            client_id: Uuid::nil(),
            name: "A".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            post_logout_redirect_uris: vec![],
            public: false,
            allowed_scopes: vec!["openid".into()],
            require_consent: true,
            id_token_signed_response_alg: IdTokenAlg::RS256,
            created_at: now,
            updated_at: now,
        };
        let p = OidcClientPatch {
            name: Some("B".into()),
            id_token_signed_response_alg: Some("EdDSA".into()),
            require_consent: Some(false),
            ..Default::default()
        };
        let out = p.apply(&c).unwrap();
        assert_eq!(out.name, "B");
        assert_eq!(out.id_token_signed_response_alg, IdTokenAlg::EdDSA);
        assert!(!out.require_consent);
        assert_eq!(out.redirect_uris, c.redirect_uris);
        let bad = OidcClientPatch {
            redirect_uris: Some(vec![]),
            ..Default::default()
        };
        assert!(bad.apply(&c).is_err());
    }

    #[test]
    fn client_query() {
        assert_eq!(
            RawClientQuery::default().parse().unwrap(),
            ClientQuery::default()
        );
        let bad = RawClientQuery {
            per_page: Some("0".into()),
            cursor: Some("x".into()),
        };
        let Err(Error::Validation(f)) = bad.parse() else {
            panic!()
        };
        assert!(f.0.contains_key("per_page") && f.0.contains_key("cursor"));
    }

    #[test]
    fn secrets_never_print() {
        let now = chrono::Utc::now();
        let client = OidcClient {
            client_id: Uuid::nil(),
            name: "A".into(),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            public: false,
            allowed_scopes: vec![],
            require_consent: true,
            id_token_signed_response_alg: IdTokenAlg::RS256,
            created_at: now,
            updated_at: now,
        };
        let s = StoredClient {
            client: client.clone(),
            secret_hash: Some("deadbeef".into()),
        };
        assert!(!format!("{s:?}").contains("deadbeef"));
        let i = IssuedClient {
            client,
            client_secret: Some("s3cret".into()),
        };
        assert!(!format!("{i:?}").contains("s3cret"));
    }
}
