//! Load generation: one keep-alive HTTP/1.1 connection per REST worker (raw hyper, no pooling,
//! nothing parsed unless the operation needs it), tonic clients over a few shared HTTP/2
//! channels for gRPC, closed-loop workers recording every latency, and paced probes.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rpc::v1::auth_service_client::AuthServiceClient;
use rpc::v1::user_service_client::UserServiceClient;
use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::hello::HelloRequest;
use crate::hello::hello_client::HelloClient;

/// A request slower than this counts as an error (and the loop goes on).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// gRPC workers per HTTP/2 connection (as `oha --http2 -c 8 -p 8` in tooling.md).
pub const STREAMS_PER_CONNECTION: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Rest,
    Grpc,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Rest => "REST",
            Protocol::Grpc => "gRPC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Hello,
    GetUser,
    /// `GET /users/{id}` from a client that does not ask for compression.
    GetUserPlain,
    /// `GET /users/{id}` / GetUser with a personal access token (`users:read`) instead of the
    /// session's access token: the token is looked up (and cached 2 s) instead of verified.
    GetUserPat,
    Me,
    ListUsers,
    Login,
    Refresh,
    /// `GET /.well-known/jwks.json`: the cheapest public route (health is on the ops port).
    Jwks,
    /// OpenID Connect userinfo with the worker's RFC 9068 access token.
    Userinfo,
    /// RFC 7662 introspection of that token by the (confidential) client.
    Introspect,
    /// The refresh grant at the token endpoint (rotation, new ID token).
    TokenRefresh,
}

impl Op {
    pub fn label(self, p: Protocol) -> &'static str {
        match (p, self) {
            (Protocol::Rest, Op::Hello) => "GET /hello (bare axum)",
            (Protocol::Rest, Op::GetUser) => "GET /users/{id}",
            (_, Op::GetUserPlain) => "GET /users/{id} (no Accept-Encoding)",
            (Protocol::Rest, Op::GetUserPat) => "GET /users/{id} (personal access token)",
            (Protocol::Grpc, Op::GetUserPat) => "GetUser (personal access token)",
            (Protocol::Rest, Op::Me) => "GET /auth/me",
            (Protocol::Rest, Op::ListUsers) => "GET /users?page=1",
            (Protocol::Rest, Op::Login) => "POST /auth/login",
            (Protocol::Rest, Op::Refresh) => "POST /auth/refresh",
            (_, Op::Jwks) => "GET /.well-known/jwks.json",
            (_, Op::Userinfo) => "GET /oauth2/userinfo",
            (_, Op::Introspect) => "POST /oauth2/introspect",
            (_, Op::TokenRefresh) => "POST /oauth2/token (refresh)",
            (Protocol::Grpc, Op::Hello) => "Hello.Say (bare tonic)",
            (Protocol::Grpc, Op::GetUser) => "GetUser",
            (Protocol::Grpc, Op::Me) => "Me",
            (Protocol::Grpc, Op::ListUsers) => "ListUsers",
            (Protocol::Grpc, Op::Login) => "Login",
            (Protocol::Grpc, Op::Refresh) => "Refresh",
        }
    }
}

/// What browsers and HTTP libraries send by default.
pub const ACCEPT_ENCODING_VALUE: &str = "gzip, br";

/// One keep-alive HTTP/1.1 connection; reconnects after an error. Asks for compression
/// (`Accept-Encoding: gzip, br`, as real clients do) unless told otherwise, and decompresses
/// what comes back before the body is used.
pub struct RestConn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub accept_encoding: bool,
}

impl RestConn {
    pub fn new(addr: SocketAddr) -> Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            sender: None,
            accept_encoding: true,
        })
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Send one request and read the whole body.
    pub async fn send(
        &mut self,
        method: Method,
        uri: Uri,
        auth: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        self.send_as(method, uri, auth, body, "application/json")
            .await
    }

    /// [`Self::send`] of a body of `content_type`.
    pub async fn send_as(
        &mut self,
        method: Method,
        uri: Uri,
        auth: Option<&HeaderValue>,
        body: Option<Bytes>,
        content_type: &'static str,
    ) -> Result<(StatusCode, Bytes)> {
        let result = self.send_inner(method, uri, auth, body, content_type).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn send_inner(
        &mut self,
        method: Method,
        uri: Uri,
        auth: Option<&HeaderValue>,
        body: Option<Bytes>,
        content_type: &'static str,
    ) -> Result<(StatusCode, Bytes)> {
        let host = self.host.clone();
        let accept_encoding = self.accept_encoding;
        let sender = match self.sender.take() {
            Some(s) if !s.is_closed() => self.sender.insert(s),
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, host);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, content_type);
        }
        if accept_encoding {
            req = req.header(ACCEPT_ENCODING, ACCEPT_ENCODING_VALUE);
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let encoding = resp.headers().get(CONTENT_ENCODING).cloned();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, decode(encoding.as_ref(), body)?))
    }

    /// A form POST that must answer 2xx.
    pub async fn post_form(
        &mut self,
        uri: Uri,
        auth: Option<&HeaderValue>,
        form: &[(&str, &str)],
    ) -> Result<Bytes> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let form_type = "application/x-www-form-urlencoded";
        success(
            self.send_as(Method::POST, uri, auth, Some(Bytes::from(body)), form_type)
                .await?,
        )
    }

    /// Send and require a 2xx answer.
    pub async fn expect_ok(
        &mut self,
        method: Method,
        uri: Uri,
        auth: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        success(self.send(method, uri, auth, body).await?)
    }
}

/// The body of a 2xx answer; any other is an error naming the status and the body's start.
fn success((status, body): (StatusCode, Bytes)) -> Result<Bytes> {
    if status.is_success() {
        Ok(body)
    } else {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    }
}

/// The body as the server meant it: gzip is inflated (the only coding the gateway produces).
fn decode(encoding: Option<&HeaderValue>, body: Bytes) -> Result<Bytes> {
    match encoding.map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(body),
        Some(b"gzip") => {
            use std::io::Read;
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out)?;
            Ok(out.into())
        }
        Some(other) => bail!(
            "unexpected Content-Encoding {}",
            String::from_utf8_lossy(other)
        ),
    }
}

/// Open `n` HTTP/2 channels to the public gRPC port.
pub async fn channels(addr: SocketAddr, n: usize) -> Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("gRPC connect to {addr}"))?;
        out.push(ch);
    }
    Ok(out)
}

#[derive(Clone)]
pub struct GrpcClients {
    auth: AuthServiceClient<Channel>,
    users: UserServiceClient<Channel>,
    hello: HelloClient<Channel>,
}

impl GrpcClients {
    pub fn new(ch: &Channel) -> Self {
        Self {
            auth: AuthServiceClient::new(ch.clone()),
            users: UserServiceClient::new(ch.clone()),
            hello: HelloClient::new(ch.clone()),
        }
    }
}

/// Who a worker is on the platform: a seeded user and its token chain.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// One closed-loop client: its own REST connection, its gRPC clients, its identity.
pub struct Worker {
    rest: RestConn,
    grpc: Option<GrpcClients>,
    pub id: Identity,
    access_header: HeaderValue,
    access_meta: MetadataValue<Ascii>,
    admin_header: HeaderValue,
    admin_meta: MetadataValue<Ascii>,
    user_uri: Uri,
    login_body: Bytes,
    /// The refresh chain broke (an error mid-rotation): log in again before the next refresh.
    relogin: bool,
    /// The worker's OpenID Connect tokens (when the run has a client).
    pub oidc: Option<OidcChain>,
    /// A personal access token of the worker's user (made at its first use).
    pat: Option<(HeaderValue, MetadataValue<Ascii>)>,
}

/// A registered OpenID Connect client (confidential, no consent).
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub client_id: String,
    pub secret: String,
}

pub const OIDC_REDIRECT: &str = "https://bench.example.com/callback";

/// A worker's tokens from the code flow, and the client's credentials.
pub struct OidcChain {
    client: OidcClient,
    basic: HeaderValue,
    access: String,
    access_header: HeaderValue,
    refresh: String,
    broken: bool,
}

#[derive(Deserialize)]
struct OidcTokens {
    access_token: String,
    refresh_token: String,
}

/// Sign `id` in through the hosted login page for `client` (no consent asked) and redeem the
/// code: the worker's tokens, as a relying party gets them.
pub async fn oidc_chain(http: SocketAddr, id: &Identity, client: &OidcClient) -> Result<OidcChain> {
    let base = format!("http://{http}");
    let web = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut login = reqwest::Url::parse(&format!("{base}/login"))?;
    login
        .query_pairs_mut()
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", OIDC_REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", "bench");
    let r = web
        .post(login)
        .form(&[
            ("username", id.username.as_str()),
            ("password", id.password.as_str()),
        ])
        .send()
        .await?;
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("the login page answered {} without a redirect", r.status()))?;
    let code = reqwest::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no code in {location}"))?;
    let t: OidcTokens = web
        .post(format!("{base}/oauth2/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", OIDC_REDIRECT),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", client.client_id, client.secret));
    Ok(OidcChain {
        client: client.clone(),
        basic: HeaderValue::from_str(&format!("Basic {basic}"))?,
        access_header: bearer_header(&t.access_token)?,
        access: t.access_token,
        refresh: t.refresh_token,
        broken: false,
    })
}

fn bearer_header(token: &str) -> Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

fn bearer_meta(token: &str) -> Result<MetadataValue<Ascii>> {
    Ok(format!("Bearer {token}").parse()?)
}

fn with_meta<T>(msg: T, meta: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", meta.clone());
    r
}

impl Worker {
    pub fn new(
        http: SocketAddr,
        grpc: Option<&Channel>,
        id: Identity,
        admin_token: &str,
    ) -> Result<Self> {
        let login_body = serde_json::to_vec(&serde_json::json!({
            "username_or_email": id.username,
            "password": id.password,
        }))?;
        let placeholder = |t: &str| if t.is_empty() { "none" } else { t }.to_owned();
        Ok(Self {
            rest: RestConn::new(http)?,
            grpc: grpc.map(GrpcClients::new),
            access_header: bearer_header(&placeholder(&id.access))?,
            access_meta: bearer_meta(&placeholder(&id.access))?,
            admin_header: bearer_header(&placeholder(admin_token))?,
            admin_meta: bearer_meta(&placeholder(admin_token))?,
            user_uri: format!("/api/v1/users/{}", placeholder(&id.user_id)).parse()?,
            login_body: Bytes::from(login_body),
            id,
            relogin: false,
            oidc: None,
            pat: None,
        })
    }

    /// The worker's personal access token (`users:read`), made with its session the first time.
    async fn pat(&mut self) -> Result<(HeaderValue, MetadataValue<Ascii>)> {
        if let Some(pat) = &self.pat {
            return Ok(pat.clone());
        }
        #[derive(Deserialize)]
        struct Issued {
            token: String,
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "name": "bench", "scopes": ["users:read"], "expires_in": 3600,
        }))?;
        let auth = self.access_header.clone();
        let answer = self
            .rest
            .expect_ok(
                Method::POST,
                Uri::from_static("/api/v1/auth/tokens"),
                Some(&auth),
                Some(Bytes::from(body)),
            )
            .await?;
        let issued: Envelope<Issued> = serde_json::from_slice(&answer)?;
        let pat = (
            bearer_header(&issued.data.token)?,
            bearer_meta(&issued.data.token)?,
        );
        self.pat = Some(pat.clone());
        Ok(pat)
    }

    /// A second client with the same identity and its own REST connection (for probes).
    pub fn fork(&self) -> Result<Self> {
        let mut w = Self::new(
            self.rest.addr,
            None,
            Identity {
                refresh: String::new(),
                ..self.id.clone()
            },
            "none",
        )?;
        w.grpc = self.grpc.clone();
        w.admin_header = self.admin_header.clone();
        w.admin_meta = self.admin_meta.clone();
        Ok(w)
    }

    fn set_tokens(&mut self, access: String, refresh: String) -> Result<()> {
        self.access_header = bearer_header(&access)?;
        self.access_meta = bearer_meta(&access)?;
        self.id.access = access;
        self.id.refresh = refresh;
        Ok(())
    }

    /// The worker's OpenID Connect tokens, signed in again after a broken refresh chain.
    async fn oidc_chain(&mut self) -> Result<&OidcChain> {
        let chain = self
            .oidc
            .as_ref()
            .context("no OpenID Connect client in this run")?;
        if chain.broken {
            let fresh = oidc_chain(self.rest.addr, &self.id, &chain.client).await?;
            self.oidc = Some(fresh);
        }
        self.oidc.as_ref().context("no OpenID Connect tokens")
    }

    fn grpc(&mut self) -> Result<&mut GrpcClients> {
        self.grpc
            .as_mut()
            .context("no gRPC channel for this worker")
    }

    /// Log in over REST and take the new token pair.
    pub async fn rest_login(&mut self) -> Result<()> {
        let body = self
            .rest
            .expect_ok(
                Method::POST,
                Uri::from_static("/api/v1/auth/login"),
                None,
                Some(self.login_body.clone()),
            )
            .await?;
        let t: Envelope<Tokens> = serde_json::from_slice(&body)?;
        self.set_tokens(t.data.access_token, t.data.refresh_token)
    }

    /// One request of `op` over `p`; Ok when the server answered with success.
    pub async fn call(&mut self, p: Protocol, op: Op) -> Result<()> {
        match (p, op) {
            (Protocol::Rest, Op::Hello) => {
                self.rest
                    .expect_ok(Method::GET, Uri::from_static("/hello"), None, None)
                    .await?;
            }
            (_, Op::Userinfo) => {
                let chain = self.oidc_chain().await?;
                let auth = chain.access_header.clone();
                self.rest
                    .expect_ok(
                        Method::GET,
                        Uri::from_static("/oauth2/userinfo"),
                        Some(&auth),
                        None,
                    )
                    .await?;
            }
            (_, Op::Introspect) => {
                let chain = self.oidc_chain().await?;
                let (basic, token) = (chain.basic.clone(), chain.access.clone());
                let body = self
                    .rest
                    .post_form(
                        Uri::from_static("/oauth2/introspect"),
                        Some(&basic),
                        &[("token", &token)],
                    )
                    .await?;
                if !body.starts_with(b"{\"active\":true") {
                    bail!("introspection: {}", String::from_utf8_lossy(&body));
                }
            }
            (_, Op::TokenRefresh) => {
                let chain = self.oidc_chain().await?;
                let (basic, refresh) = (chain.basic.clone(), chain.refresh.clone());
                let result = self
                    .rest
                    .post_form(
                        Uri::from_static("/oauth2/token"),
                        Some(&basic),
                        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                    )
                    .await
                    .and_then(|b| Ok(serde_json::from_slice::<OidcTokens>(&b)?));
                let chain = self.oidc.as_mut().context("no OpenID Connect tokens")?;
                match result {
                    Ok(t) => {
                        chain.access_header = bearer_header(&t.access_token)?;
                        chain.access = t.access_token;
                        chain.refresh = t.refresh_token;
                    }
                    Err(e) => {
                        chain.broken = true;
                        return Err(e);
                    }
                }
            }
            (Protocol::Rest, Op::Jwks) | (Protocol::Grpc, Op::Jwks) => {
                self.rest
                    .expect_ok(
                        Method::GET,
                        Uri::from_static("/.well-known/jwks.json"),
                        None,
                        None,
                    )
                    .await?;
            }
            (Protocol::Rest, Op::GetUser) => {
                let uri = self.user_uri.clone();
                let auth = self.access_header.clone();
                self.rest
                    .expect_ok(Method::GET, uri, Some(&auth), None)
                    .await?;
            }
            (Protocol::Rest, Op::GetUserPat) => {
                let (auth, _) = self.pat().await?;
                let uri = self.user_uri.clone();
                self.rest
                    .expect_ok(Method::GET, uri, Some(&auth), None)
                    .await?;
            }
            (Protocol::Grpc, Op::GetUserPat) => {
                let (_, meta) = self.pat().await?;
                let id = self.id.user_id.clone();
                self.grpc()?
                    .users
                    .get_user(with_meta(rpc::v1::GetUserRequest { id }, &meta))
                    .await?;
            }
            (Protocol::Rest, Op::GetUserPlain) | (Protocol::Grpc, Op::GetUserPlain) => {
                let uri = self.user_uri.clone();
                let auth = self.access_header.clone();
                self.rest.accept_encoding = false;
                let r = self
                    .rest
                    .expect_ok(Method::GET, uri, Some(&auth), None)
                    .await;
                self.rest.accept_encoding = true;
                r?;
            }
            (Protocol::Rest, Op::Me) => {
                let auth = self.access_header.clone();
                self.rest
                    .expect_ok(
                        Method::GET,
                        Uri::from_static("/api/v1/auth/me"),
                        Some(&auth),
                        None,
                    )
                    .await?;
            }
            (Protocol::Rest, Op::ListUsers) => {
                let auth = self.admin_header.clone();
                self.rest
                    .expect_ok(
                        Method::GET,
                        Uri::from_static("/api/v1/users?page=1"),
                        Some(&auth),
                        None,
                    )
                    .await?;
            }
            (Protocol::Rest, Op::Login) => {
                let body = self.login_body.clone();
                self.rest
                    .expect_ok(
                        Method::POST,
                        Uri::from_static("/api/v1/auth/login"),
                        None,
                        Some(body),
                    )
                    .await?;
            }
            (Protocol::Rest, Op::Refresh) => {
                self.ensure_chain().await?;
                let body = Bytes::from(serde_json::to_vec(
                    &serde_json::json!({"refresh_token": self.id.refresh}),
                )?);
                let result = self
                    .rest
                    .expect_ok(
                        Method::POST,
                        Uri::from_static("/api/v1/auth/refresh"),
                        None,
                        Some(body),
                    )
                    .await
                    .and_then(|b| Ok(serde_json::from_slice::<Envelope<Tokens>>(&b)?));
                match result {
                    Ok(t) => self.set_tokens(t.data.access_token, t.data.refresh_token)?,
                    Err(e) => {
                        self.relogin = true;
                        return Err(e);
                    }
                }
            }
            (Protocol::Grpc, Op::Hello) => {
                self.grpc()?
                    .hello
                    .say(HelloRequest {
                        name: "bench".into(),
                    })
                    .await?;
            }
            (Protocol::Grpc, Op::GetUser) => {
                let req = with_meta(
                    rpc::v1::GetUserRequest {
                        id: self.id.user_id.clone(),
                    },
                    &self.access_meta,
                );
                self.grpc()?.users.get_user(req).await?;
            }
            (Protocol::Grpc, Op::Me) => {
                let req = with_meta(rpc::v1::MeRequest {}, &self.access_meta);
                self.grpc()?.auth.me(req).await?;
            }
            (Protocol::Grpc, Op::ListUsers) => {
                let req = with_meta(
                    rpc::v1::ListUsersRequest {
                        page: Some("1".into()),
                        ..Default::default()
                    },
                    &self.admin_meta,
                );
                self.grpc()?.users.list_users(req).await?;
            }
            (Protocol::Grpc, Op::Login) => {
                let req = rpc::v1::LoginRequest {
                    username_or_email: self.id.username.clone(),
                    password: self.id.password.clone(),
                };
                self.grpc()?.auth.login(req).await?;
            }
            (Protocol::Grpc, Op::Refresh) => {
                self.ensure_chain().await?;
                let req = rpc::v1::RefreshRequest {
                    refresh_token: self.id.refresh.clone(),
                };
                match self.grpc()?.auth.refresh(req).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        self.set_tokens(r.access_token, r.refresh_token)?;
                    }
                    Err(e) => {
                        self.relogin = true;
                        return Err(anyhow!(e));
                    }
                }
            }
        }
        Ok(())
    }

    /// After a failed rotation the old token may be spent (or its family revoked): start a
    /// new chain with a login. Its time counts against the request that needed it.
    async fn ensure_chain(&mut self) -> Result<()> {
        if self.relogin {
            self.rest_login().await?;
            self.relogin = false;
        }
        Ok(())
    }
}

/// What a set of workers measured.
pub struct Sample {
    pub ok: u64,
    pub errors: u64,
    /// Latency of every successful request, microseconds (exact quantiles; a 10 s case holds a
    /// few hundred thousand).
    pub latencies_us: Vec<u32>,
    /// From the common start to the moment the last worker finished its last request.
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

impl Sample {
    pub fn empty() -> Result<Self> {
        Ok(Self {
            ok: 0,
            errors: 0,
            latencies_us: Vec::new(),
            elapsed: Duration::ZERO,
            first_error: None,
        })
    }

    fn merge(&mut self, other: Sample) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.elapsed = self.elapsed.max(other.elapsed);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Several runs of the same case one after the other.
    pub fn append(&mut self, other: Sample) {
        let elapsed = self.elapsed + other.elapsed;
        self.merge(other);
        self.elapsed = elapsed;
    }

    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok as f64 / s } else { 0.0 }
    }

    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        // Nearest rank: the smallest latency with at least q of all at or below it.
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        let mut v = self.latencies_us.clone();
        let (_, at, _) = v.select_nth_unstable(rank - 1);
        Some(f64::from(*at) / 1000.0)
    }
}

async fn one(w: &mut Worker, p: Protocol, op: Op, s: &mut Sample) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(REQUEST_TIMEOUT, w.call(p, op)).await;
    let us = t0.elapsed().as_micros() as u64;
    match r {
        Ok(Ok(())) => {
            s.ok += 1;
            s.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        Ok(Err(e)) => {
            s.errors += 1;
            if s.first_error.is_none() {
                s.first_error = Some(format!("{e:#}"));
            }
        }
        Err(_) => {
            s.errors += 1;
            w.rest.sender = None;
            if s.first_error.is_none() {
                s.first_error = Some(format!("timeout after {REQUEST_TIMEOUT:?}"));
            }
        }
    }
}

/// Every worker sends `op` back to back until `duration` has passed (closed loop).
pub async fn closed_loop(
    workers: Vec<Worker>,
    p: Protocol,
    op: Op,
    duration: Duration,
) -> Result<(Vec<Worker>, Sample)> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut s = Sample::empty()?;
                while Instant::now() < deadline {
                    one(&mut w, p, op, &mut s).await;
                }
                s.elapsed = start.elapsed();
                anyhow::Ok((w, s))
            })
        })
        .collect();
    let mut total = Sample::empty()?;
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (w, s) = t.await.context("a load worker failed")??;
        total.merge(s);
        back.push(w);
    }
    Ok((back, total))
}

/// One request every `every` until `duration` has passed (an open-ish probe: a slow answer
/// delays the next tick, so this measures service time, not queueing behind it).
pub async fn paced(
    mut w: Worker,
    p: Protocol,
    op: Op,
    every: Duration,
    duration: Duration,
) -> Result<(Worker, Sample)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut s = Sample::empty()?;
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        one(&mut w, p, op, &mut s).await;
    }
    s.elapsed = start.elapsed();
    Ok((w, s))
}

/// Samples VmRSS of some processes every 100 ms until stopped; keeps each one's maximum (kB).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = vec![0u64; pids.len()];
            while !flag.load(Ordering::Relaxed) {
                for (i, pid) in pids.iter().enumerate() {
                    if let Some(kb) = crate::cluster::status_kb(*pid, "VmRSS") {
                        peak[i] = peak[i].max(kb);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
