//! The OpenID Connect authorization code flow as a browser and a relying party drive it against
//! the real binaries, in every deployment mode and on every database: the hosted login and consent pages (forms parsed and
//! posted as a browser would), codes, tokens checked against the published keys, userinfo, code
//! reuse, refresh rotation, prompt and PKCE rules, and refusals that must never redirect. Case
//! names follow the OpenID Foundation's Basic OP plan where one matches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::common::*;
use repository::Backend;

every_mode!(
    oidcc_server_login_consent_code_tokens_userinfo,
    oidcc_codereuse_revokes_the_tokens,
    oidcc_refresh_token_rotates_and_detects_reuse,
    prompt_max_age_pkce_and_refusals,
    revocation_introspection_and_rp_initiated_logout,
    hosted_login_asks_for_the_second_factor,
);

/// A deployment whose issuer is its own address. Split modes get a key file's keys: the auth
/// service signs with them, the gateway publishes their JWK Set (the monolith makes its own).
pub(crate) async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    let mut env = vec![("ARCANA_PUBLIC_URL".to_owned(), "http://{http}".to_owned())];
    if mode != Mode::Monolith {
        let out = std::process::Command::new(monolith_exe())
            .args(["oidc-keys", "generate"])
            .output()
            .unwrap();
        let pem = String::from_utf8(out.stdout).unwrap();
        let out = std::process::Command::new(monolith_exe())
            .args(["oidc-keys", "jwks"])
            .env("ARCANA_OIDC_SIGNING_KEY", &pem)
            .output()
            .unwrap();
        env.push(("ARCANA_OIDC_SIGNING_KEY".into(), pem));
        env.push((
            "ARCANA_OIDC_JWKS".into(),
            String::from_utf8(out.stdout).unwrap(),
        ));
    }
    let opts = Options {
        extra_env: env,
        ..Options::default()
    };
    TestApp::start_mode(mode, backend, opts).await
}

const REDIRECT: &str = "https://rp.example.com/callback";

/// A browser (its SSO cookie, no automatic redirects) and a registered client.
struct Rp {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    client_id: String,
    secret: Option<String>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
    headers: reqwest::header::HeaderMap,
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `action` of the page's form.
fn form_action(html: &str) -> String {
    let start = html.find("action=\"").expect("a form") + 8;
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One form-urlencoded value.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The claims of a JWT (not verified: see [`verify`]).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

impl Rp {
    async fn new(app: &TestApp, public: bool, extra: Value) -> Rp {
        let admin = app.admin_token().await;
        let mut body = json!({
            "name": "Relying Party",
            "redirect_uris": [REDIRECT],
            "public": public,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = app.post("/api/v1/oidc/clients", Some(&admin), body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        Rp {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookie: None,
            client_id: r.data()["client_id"].as_str().unwrap().to_owned(),
            secret: r.data()["client_secret"].as_str().map(str::to_owned),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c.clone()),
            None => req,
        };
        let r = req.send().await.unwrap();
        let headers = r.headers().clone();
        if let Some(c) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Answer {
            status: r.status(),
            location: headers
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: r.text().await.unwrap(),
            headers,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(self.url(path));
        self.send(req).await
    }

    async fn post_form(&mut self, path: &str, body: String) -> Answer {
        let req = self
            .http
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut p = vec![
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "st-1"),
            ("nonce", "nonce-1"),
        ];
        for (k, v) in extra {
            p.retain(|(name, _)| name != k);
            p.push((k, v));
        }
        format!("/oauth2/authorize?{}", form(&p))
    }

    /// Sign in on the page that `page` is, answer consent with `decision` if asked: the final
    /// redirect to the client.
    async fn sign_in(&mut self, page: Answer, user: &str, password: &str) -> Answer {
        assert!(matches!(page.status.as_u16(), 200 | 401), "{}", page.body);
        assert!(
            page.body.contains("autocomplete=\"username\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("autocomplete=\"current-password\""));
        let action = form_action(&page.body);
        self.post_form(&action, form(&[("username", user), ("password", password)]))
            .await
    }

    async fn consent(&mut self, page: Answer, decision: &str) -> Answer {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Allow access?"), "{}", page.body);
        let action = form_action(&page.body);
        self.post_form(&action, form(&[("decision", decision)]))
            .await
    }

    /// The code of a redirect to the client (with `state` and `iss` checked).
    fn code(&self, a: &Answer) -> String {
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let loc = a.location.clone().unwrap();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"));
        assert_eq!(
            query_param(&loc, "iss").as_deref(),
            Some(self.base.as_str())
        );
        query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
    }

    async fn token(&mut self, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(self.url("/oauth2/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        let mut pairs = pairs.to_vec();
        match &self.secret {
            Some(secret) => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(secret)
                ));
                req = req.header(AUTHORIZATION, format!("Basic {basic}"));
            }
            None => pairs.push(("client_id", &self.client_id)),
        }
        let r = req.body(form(&pairs)).send().await.unwrap();
        let status = r.status();
        assert_eq!(
            r.headers().get("cache-control").unwrap(),
            "no-store",
            "token answers are never cached"
        );
        (status, r.json().await.unwrap())
    }

    async fn redeem(&mut self, code: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .await
    }

    async fn userinfo(&self, access: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url("/oauth2/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

/// The claims of a token after checking its signature against the published JWK Set, its
/// header's `typ`, issuer and expiry.
async fn verify(app: &TestApp, token: &str, typ: &str) -> Value {
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    // Only the OIDC keys (RS256/EdDSA with a thumbprint kid): HS256 access-token keys publish none.
    let keys = crypto::OidcKeys::from_jwks(&jwks.to_string()).unwrap();
    keys.verify_typed::<Value>(token, typ, &app.base).unwrap()
}

async fn oidcc_server_login_consent_code_tokens_userinfo(app: TestApp) {
    // Discovery names this issuer and these endpoints.
    let d = app
        .get("/.well-known/openid-configuration", None)
        .await
        .body;
    assert_eq!(d["issuer"], app.base.as_str());
    assert_eq!(d["token_endpoint"], format!("{}/oauth2/token", app.base));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256"))
    );

    let mut rp = Rp::new(&app, false, json!({})).await;
    let page = rp.get(&rp.authorize_url(&[])).await;
    assert!(
        page.body.contains("Relying Party"),
        "the login page names the client"
    );
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    // A wrong password is said on the page, and nothing is set.
    let wrong = rp.sign_in(page, ADMIN_USER, "WrongPass999").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("username or password is not correct"),
        "{}",
        wrong.body
    );
    assert!(rp.cookie.is_none());
    let consent = rp.sign_in(wrong, ADMIN_USER, ADMIN_PASSWORD).await;
    let cookie = rp.cookie.clone().expect("the SSO cookie");
    assert!(cookie.starts_with("arcana_sso="), "{cookie}");
    assert!(
        consent.body.contains("See your email address"),
        "{}",
        consent.body
    );
    let done = rp.consent(consent, "allow").await;
    let code = rp.code(&done);
    let (status, tokens) = rp.redeem(&code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile email");
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let id = verify(&app, tokens["id_token"].as_str().unwrap(), "JWT").await;
    assert_eq!(id["aud"], rp.client_id.as_str());
    assert_eq!(id["azp"], rp.client_id.as_str());
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["preferred_username"], ADMIN_USER);
    assert_eq!(id["email"], ADMIN_EMAIL);
    assert!(id["sid"].is_string() && id["auth_time"].is_i64() && id["at_hash"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    let at = verify(&app, access, "at+jwt").await;
    assert_eq!(at["client_id"], rp.client_id.as_str());
    assert_eq!(at["scope"], "openid profile email");
    assert_eq!(at["sub"], id["sub"]);
    // userinfo: GET and POST with the bearer header.
    let (s, info) = rp.userinfo(access).await;
    assert_eq!(s, 200);
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email_verified"], true);
    assert!(
        info.get("roles").is_none(),
        "roles only with the roles scope"
    );
    let r = rp
        .http
        .post(rp.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An ID token is not an access token.
    let (s, _) = rp.userinfo(tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(s, 401);

    // Second login to the same client: signed in and consented, straight back with a code.
    let again = rp.get(&rp.authorize_url(&[("nonce", "nonce-2")])).await;
    let code2 = rp.code(&again);
    let (_, t2) = rp.redeem(&code2).await;
    assert_eq!(claims(t2["id_token"].as_str().unwrap())["nonce"], "nonce-2");
    // Without a nonce the code flow still works (oidcc-ensure-request-without-nonce-succeeds-for-code-flow).
    let url = rp.authorize_url(&[]).replace("&nonce=nonce-1", "");
    let back = rp.get(&url).await;
    let code3 = rp.code(&back);
    let (s, t3) = rp.redeem(&code3).await;
    assert_eq!(s, 200);
    assert!(
        claims(t3["id_token"].as_str().unwrap())
            .get("nonce")
            .is_none()
    );

    // The hosted logout ends the SSO session: the next authorize asks to sign in again.
    let bye = rp.post_form("/logout", String::new()).await;
    assert_eq!(bye.status, 200);
    assert!(rp.cookie.is_none(), "the cookie is cleared");
    let page = rp.get(&rp.authorize_url(&[])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in"));
}

async fn oidcc_codereuse_revokes_the_tokens(app: TestApp) {
    let mut rp = Rp::new(&app, false, json!({"require_consent": false})).await;
    let page = rp.get(&rp.authorize_url(&[])).await;
    let done = rp.sign_in(page, ADMIN_USER, ADMIN_PASSWORD).await;
    let code = rp.code(&done);
    let (s, tokens) = rp.redeem(&code).await;
    assert_eq!(s, 200);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(rp.userinfo(&access).await.0, 200);
    let (s, err) = rp.redeem(&code).await;
    assert_eq!(s, 400);
    assert_eq!(err["error"], "invalid_grant");
    let (s, _) = rp.userinfo(&access).await;
    assert_eq!(s, 401, "the tokens of a reused code are revoked");
    // A code for another redirect URI, or redeemed by another client, is refused.
    let page = rp.get(&rp.authorize_url(&[])).await;
    let code = rp.code(&page);
    let (s, err) = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example.com/other"),
        ])
        .await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let secret = rp.secret.take();
    rp.secret = Some("not-the-secret".into());
    let (s, err) = rp.redeem(&code).await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (401, Some("invalid_client"))
    );
    rp.secret = secret;
    let (s, err) = rp.token(&[("grant_type", "password")]).await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

async fn oidcc_refresh_token_rotates_and_detects_reuse(app: TestApp) {
    let mut rp = Rp::new(&app, false, json!({"require_consent": false})).await;
    let url = rp.authorize_url(&[("scope", "openid offline_access roles")]);
    let page = rp.get(&url).await;
    let done = rp.sign_in(page, ADMIN_USER, ADMIN_PASSWORD).await;
    let code = rp.code(&done);
    let (s, first) = rp.redeem(&code).await;
    assert_eq!(s, 200, "{first}");
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.starts_with("oidc."));
    assert_eq!(
        claims(first["id_token"].as_str().unwrap())["roles"],
        json!(["admin"])
    );
    let (s, second) = rp
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(s, 200, "{second}");
    let next = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh, "rotated");
    assert_eq!(
        rp.userinfo(second["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    // The API's refresh does not take it, nor this endpoint the API's.
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": next}))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let api = app.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let api_refresh = api.data()["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = rp
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &api_refresh),
        ])
        .await;
    assert_eq!(s, 400);
    // Presenting the replaced token again kills the family.
    let (s, err) = rp
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (s, _) = rp
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &next)])
        .await;
    assert_eq!(s, 400, "the family is revoked");
    assert_eq!(
        rp.userinfo(second["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
}

async fn prompt_max_age_pkce_and_refusals(app: TestApp) {
    let mut rp = Rp::new(&app, true, json!({"require_consent": false})).await;
    // oidcc-ensure-registered-redirect-uri: an error page, never a redirect.
    let bad = rp
        .get(&rp.authorize_url(&[("redirect_uri", "https://evil.example.com/cb")]))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.location.is_none());
    assert!(bad.body.contains("not registered"), "{}", bad.body);
    let unknown = rp
        .get("/oauth2/authorize?client_id=nope&redirect_uri=x")
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.location.is_none()),
        (400, true)
    );
    let twice = rp
        .get(&format!("{}&state=again", rp.authorize_url(&[])))
        .await;
    assert_eq!(twice.status, 400, "a repeated parameter is refused");
    // A public client must use PKCE (S256).
    let no_pkce = rp.get(&rp.authorize_url(&[])).await;
    assert_eq!(no_pkce.status, StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(no_pkce.location.as_deref().unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    // oidcc-prompt-none-not-logged-in
    let mut none = pkce.to_vec();
    none.push(("prompt", "none"));
    let r = rp.get(&rp.authorize_url(&none)).await;
    assert_eq!(
        query_param(r.location.as_deref().unwrap(), "error").as_deref(),
        Some("login_required")
    );
    let page = rp.get(&rp.authorize_url(&pkce)).await;
    let done = rp.sign_in(page, ADMIN_USER, ADMIN_PASSWORD).await;
    let code = rp.code(&done);
    let (s, err) = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier",
            ),
        ])
        .await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let page = rp.get(&rp.authorize_url(&pkce)).await;
    let code = rp.code(&page);
    let (s, tokens) = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(s, 200, "{tokens}");
    // ID tokens are RS256 unless the client registered EdDSA.
    assert_eq!(
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(
                    tokens["id_token"]
                        .as_str()
                        .unwrap()
                        .split('.')
                        .next()
                        .unwrap()
                )
                .unwrap()
        )
        .unwrap()["alg"],
        "RS256"
    );
    // oidcc-prompt-login: signed in, yet asked to sign in again.
    let mut login = pkce.to_vec();
    login.push(("prompt", "login"));
    let page = rp.get(&rp.authorize_url(&login)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in"));
    let done = rp.sign_in(page, ADMIN_USER, ADMIN_PASSWORD).await;
    let code = rp.code(&done);
    let (_, tokens) = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await;
    let id = claims(tokens["id_token"].as_str().unwrap());
    let now = chrono_now();
    assert!(
        (now - id["auth_time"].as_i64().unwrap()).abs() <= 5,
        "a fresh auth_time"
    );
    // oidcc-max-age-1: after more than a second, asked to sign in again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut aged = pkce.to_vec();
    aged.push(("max_age", "1"));
    let page = rp.get(&rp.authorize_url(&aged)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in"), "{}", page.body);
    // Unknown scopes are dropped; unsupported response types go back as errors.
    let mut odd = pkce.to_vec();
    odd.push(("scope", "openid frobnicate"));
    let r = rp.get(&rp.authorize_url(&odd)).await;
    let (_, t) = {
        let code = rp.code(&r);
        rp.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await
    };
    assert_eq!(t["scope"], "openid");
    let mut implicit = pkce.to_vec();
    implicit.push(("response_type", "token"));
    let r = rp.get(&rp.authorize_url(&implicit)).await;
    assert_eq!(
        query_param(r.location.as_deref().unwrap(), "error").as_deref(),
        Some("unsupported_response_type")
    );
}

async fn introspect(rp: &Rp, token: &str) -> (StatusCode, Value) {
    let mut req = rp
        .http
        .post(rp.url("/oauth2/introspect"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    let mut pairs = vec![("token", token)];
    match &rp.secret {
        Some(secret) => req = req.basic_auth(&rp.client_id, Some(secret)),
        None => pairs.push(("client_id", &rp.client_id)),
    }
    let r = req.body(form(&pairs)).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn revocation_introspection_and_rp_initiated_logout(app: TestApp) {
    let mut rp = Rp::new(
        &app,
        false,
        json!({"require_consent": false, "post_logout_redirect_uris": ["https://rp.example.com/bye"]}),
    )
    .await;
    let url = rp.authorize_url(&[("scope", "openid offline_access")]);
    let page = rp.get(&url).await;
    let done = rp.sign_in(page, ADMIN_USER, ADMIN_PASSWORD).await;
    let code = rp.code(&done);
    let (_, tokens) = rp.redeem(&code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // RFC 7662: live tokens say who and what; anything else is just inactive.
    let (s, info) = introspect(&rp, &access).await;
    assert_eq!(s, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], rp.client_id.as_str());
    assert_eq!(info["scope"], "openid offline_access");
    assert_eq!(info["username"], ADMIN_USER);
    let (_, info) = introspect(&rp, &refresh).await;
    assert_eq!(
        (info["active"].as_bool(), info["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );
    let (_, info) = introspect(&rp, "not-a-token").await;
    assert_eq!(info, json!({"active": false}));
    // RFC 7009: revoking the refresh token ends the whole grant, its access token included.
    let r = rp
        .http
        .post(rp.url("/oauth2/revoke"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[
            ("token", &refresh),
            ("token_type_hint", "refresh_token"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&rp, &access).await.1["active"], false);
    assert_eq!(rp.userinfo(&access).await.0, 401);
    let (s, err) = rp
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A public client may not introspect.
    let public = Rp::new(&app, true, json!({})).await;
    let (s, err) = introspect(&public, &access).await;
    assert_eq!(
        (s.as_u16(), err["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // RP-initiated logout: with the ID token as hint, back to the registered address with the
    // state; the SSO session and the tokens issued from it end.
    let page = rp.get(&rp.authorize_url(&[])).await;
    let code = rp.code(&page);
    let (_, tokens) = rp.redeem(&code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let bad = rp
        .get(&format!(
            "/oauth2/logout?{}",
            form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://evil.example/bye")
            ])
        ))
        .await;
    assert_eq!((bad.status.as_u16(), bad.location.is_none()), (400, true));
    assert_eq!(
        rp.userinfo(&access).await.0,
        200,
        "a refused logout changes nothing"
    );
    let confirm = rp.get("/oauth2/logout").await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("Sign out?"),
        "without a hint the person confirms"
    );
    let out = rp
        .get(&format!(
            "/oauth2/logout?{}",
            form(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", "https://rp.example.com/bye"),
                ("state", "bye-1"),
            ])
        ))
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(
        out.location.as_deref(),
        Some("https://rp.example.com/bye?state=bye-1")
    );
    assert!(rp.cookie.is_none(), "the SSO cookie is cleared");
    assert_eq!(
        rp.userinfo(&access).await.0,
        401,
        "the tokens of the SSO session end with it"
    );
    let again = rp.get(&rp.authorize_url(&[])).await;
    assert!(again.body.contains("Sign in"), "signed out");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The value of the hidden `mfa_token` field of a page.
fn hidden_mfa_token(html: &str) -> String {
    let field = "name=\"mfa_token\" value=\"";
    let start = html.find(field).expect("an mfa_token field") + field.len();
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

async fn hosted_login_asks_for_the_second_factor(app: TestApp) {
    // A password-only sign-in: amr ["pwd"], the password acr.
    let mut rp = Rp::new(&app, false, json!({})).await;
    app.user("plain").await;
    let page = rp.get(&rp.authorize_url(&[])).await;
    let done = rp.sign_in(page, "plain", "Secret123").await;
    let done = rp.consent(done, "allow").await;
    let (status, tokens) = rp.redeem(&rp.code(&done)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = verify(&app, tokens["id_token"].as_str().unwrap(), "JWT").await;
    assert_eq!(id["amr"], json!(["pwd"]), "{id}");
    assert_eq!(id["acr"], domain::ACR_PASSWORD);

    // TOTP on (through the API), then the hosted page asks for a code after the password.
    let (_, access, _) = app.user("twofa").await;
    let setup = app
        .post(
            "/api/v1/auth/mfa/totp/setup",
            Some(&access),
            json!({"current_password": "Secret123"}),
        )
        .await;
    let secret = crypto::mfa::secret_from_base32(setup.data()["secret"].as_str().unwrap()).unwrap();
    let first = crypto::mfa::totp_code(&secret, unix_now()).unwrap();
    let r = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(&access),
            json!({"code": first}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recovery = r.data()["recovery_codes"][0].as_str().unwrap().to_owned();

    let mut rp = Rp::new(&app, false, json!({})).await;
    let page = rp.get(&rp.authorize_url(&[])).await;
    let step = rp.sign_in(page, "twofa", "Secret123").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert!(
        rp.cookie.is_none(),
        "no SSO session before the second factor"
    );
    assert!(
        step.body.contains("autocomplete=\"one-time-code\""),
        "{}",
        step.body
    );
    assert!(step.body.contains("name=\"recovery_code\""));
    assert_eq!(step.headers.get("cache-control").unwrap(), "no-store");
    let action = form_action(&step.body);
    let token = hidden_mfa_token(&step.body);
    // A wrong code: the same step again, with a message; the replayed first code too.
    for bad in [
        crypto::mfa::totp_code(&secret, unix_now() + 300).unwrap(),
        first.clone(),
    ] {
        let again = rp
            .post_form(&action, form(&[("mfa_token", &token), ("code", &bad)]))
            .await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
        assert!(
            again.body.contains("That code is not right"),
            "{}",
            again.body
        );
        assert_eq!(hidden_mfa_token(&again.body), token);
    }
    let next = crypto::mfa::totp_code(&secret, unix_now() + 30).unwrap();
    let consent = rp
        .post_form(&action, form(&[("mfa_token", &token), ("code", &next)]))
        .await;
    assert!(rp.cookie.is_some(), "signed in: the SSO cookie is set");
    let done = rp.consent(consent, "allow").await;
    let (status, tokens) = rp.redeem(&rp.code(&done)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = verify(&app, tokens["id_token"].as_str().unwrap(), "JWT").await;
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    assert_eq!(id["acr"], domain::ACR_MFA);
    assert_eq!(id["preferred_username"], "twofa");
    // The spent mfa_token cannot sign in again.
    let mut other = Rp::new(&app, false, json!({})).await;
    let stale = other
        .post_form(&action, form(&[("mfa_token", &token), ("code", &next)]))
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.body);
    assert!(stale.body.contains("sign in again"), "{}", stale.body);
    assert!(other.cookie.is_none());

    // A recovery code on the page; the SSO session it opens is a two-factor one too, and
    // refreshed ID tokens keep its methods.
    let mut rp = Rp::new(&app, false, json!({"require_consent": false})).await;
    let page = rp
        .get(&rp.authorize_url(&[("scope", "openid offline_access")]))
        .await;
    let step = rp.sign_in(page, "twofa", "Secret123").await;
    let token = hidden_mfa_token(&step.body);
    let done = rp
        .post_form(
            &form_action(&step.body),
            form(&[("mfa_token", &token), ("recovery_code", &recovery)]),
        )
        .await;
    let (status, tokens) = rp.redeem(&rp.code(&done)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], domain::ACR_MFA, "{id}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, again) = rp
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let id = claims(again["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
}
