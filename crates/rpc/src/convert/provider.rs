//! Domain ↔ `arcana.internal.v1.OidcProviderService` (the provider port at the service boundary).
use domain::{
    Authorization, AuthorizeRequest, ClientAuth, ClientTokenRequest, ConsoleAccess, EndSession,
    EndSessionRequest, Error, Interaction, IssuedTokens, MfaMethod, MfaPending, OAuthError, Result,
    SignInOutcome, SsoSignIn, TokenRequest,
};

use crate::internal as pb;
use crate::message;
use pb::authorization_step::Step;
use pb::token_answer::Answer;

message!(AuthorizeRequest => pb::AuthorizeParams {
    client_id, redirect_uri, response_type, scope, state, nonce, prompt, max_age, login_hint,
    code_challenge, code_challenge_method,
});
/// `ConsoleAccess`'s answer: the token, or none.
pub(crate) struct MaybeConsole(pub Option<ConsoleAccess>);
impl From<MaybeConsole> for pb::ConsoleAccessAnswer {
    fn from(a: MaybeConsole) -> Self {
        match a.0 {
            Some(c) => Self {
                access_token: Some(c.access_token),
                expires_in: c.expires_in,
            },
            None => Self::default(),
        }
    }
}
impl TryFrom<pb::ConsoleAccessAnswer> for MaybeConsole {
    type Error = Error;
    fn try_from(w: pb::ConsoleAccessAnswer) -> Result<Self> {
        Ok(Self(w.access_token.map(|access_token| ConsoleAccess {
            access_token,
            expires_in: w.expires_in,
        })))
    }
}
impl From<SsoSignIn> for pb::SsoSignIn {
    fn from(s: SsoSignIn) -> Self {
        Self {
            token: s.token,
            expires_in: s.expires_in,
            ..Self::default()
        }
    }
}
impl TryFrom<pb::SsoSignIn> for SsoSignIn {
    type Error = Error;
    fn try_from(w: pb::SsoSignIn) -> Result<Self> {
        if w.mfa_required {
            return Err(Error::internal(
                "a second factor was asked for after it was given",
            ));
        }
        Ok(Self {
            token: w.token,
            expires_in: w.expires_in,
        })
    }
}
impl From<SignInOutcome> for pb::SsoSignIn {
    fn from(o: SignInOutcome) -> Self {
        match o {
            SignInOutcome::Signed(s) => s.into(),
            SignInOutcome::SecondFactor(p) => Self {
                mfa_required: true,
                mfa_token: p.mfa_token,
                mfa_methods: p.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                mfa_passkey_json: p.passkey.map(|v| v.to_string()),
                ..Self::default()
            },
        }
    }
}
impl TryFrom<pb::SsoSignIn> for SignInOutcome {
    type Error = Error;
    fn try_from(w: pb::SsoSignIn) -> Result<Self> {
        if !w.mfa_required {
            return w.try_into().map(SignInOutcome::Signed);
        }
        let methods = w
            .mfa_methods
            .iter()
            .map(|m| m.parse::<MfaMethod>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::validation("mfa_methods", e))?;
        Ok(SignInOutcome::SecondFactor(MfaPending {
            mfa_required: true,
            mfa_token: w.mfa_token,
            methods,
            passkey: crate::convert::v1::json_field(w.mfa_passkey_json, "mfa_passkey_json")?,
        }))
    }
}
message!(IssuedTokens => pb::IssuedTokens {
    access_token, token_type, expires_in, id_token, refresh_token, scope,
});
message!(OAuthError => pb::OAuthError { error, error_description });

pub fn interaction_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Arrived => "arrived",
        Interaction::SignedIn => "signed_in",
        Interaction::Consented { allow: true } => "allow",
        Interaction::Consented { allow: false } => "deny",
    }
}

pub fn parse_interaction(s: &str) -> Result<Interaction> {
    Ok(match s {
        "arrived" => Interaction::Arrived,
        "signed_in" => Interaction::SignedIn,
        "allow" => Interaction::Consented { allow: true },
        "deny" => Interaction::Consented { allow: false },
        _ => {
            return Err(Error::validation(
                "interaction",
                "is not a known interaction",
            ));
        }
    })
}

impl From<Authorization> for pb::AuthorizationStep {
    fn from(a: Authorization) -> Self {
        let step = match a {
            Authorization::Refused { message } => Step::Refused(message),
            Authorization::Redirect { location } => Step::Redirect(location),
            Authorization::SignIn {
                client_name,
                login_hint,
            } => Step::SignIn(pb::SignInStep {
                client_name,
                login_hint,
            }),
            Authorization::Consent {
                client_name,
                scopes,
                username,
            } => Step::Consent(pb::ConsentStep {
                client_name,
                scopes,
                username,
            }),
        };
        Self { step: Some(step) }
    }
}

impl TryFrom<pb::AuthorizationStep> for Authorization {
    type Error = Error;
    fn try_from(s: pb::AuthorizationStep) -> Result<Self> {
        Ok(match s.step {
            Some(Step::Refused(message)) => Authorization::Refused { message },
            Some(Step::Redirect(location)) => Authorization::Redirect { location },
            Some(Step::SignIn(p)) => Authorization::SignIn {
                client_name: p.client_name,
                login_hint: p.login_hint,
            },
            Some(Step::Consent(p)) => Authorization::Consent {
                client_name: p.client_name,
                scopes: p.scopes,
                username: p.username,
            },
            None => return Err(Error::validation("step", "is required")),
        })
    }
}

fn parse_auth(s: &str) -> Result<ClientAuth> {
    match s {
        "basic" => Ok(ClientAuth::Basic),
        "post" => Ok(ClientAuth::Post),
        "none" => Ok(ClientAuth::None),
        _ => Err(Error::validation("auth", "must be basic, post or none")),
    }
}

fn auth_name(a: ClientAuth) -> &'static str {
    match a {
        ClientAuth::Basic => "basic",
        ClientAuth::Post => "post",
        ClientAuth::None => "none",
    }
}

impl From<TokenRequest> for pb::TokenCall {
    fn from(r: TokenRequest) -> Self {
        Self {
            grant_type: r.grant_type,
            code: r.code,
            redirect_uri: r.redirect_uri,
            code_verifier: r.code_verifier,
            refresh_token: r.refresh_token,
            scope: r.scope,
            client_id: r.client_id,
            client_secret: r.client_secret,
            auth: auth_name(r.auth).to_owned(),
        }
    }
}

impl TryFrom<pb::TokenCall> for TokenRequest {
    type Error = Error;
    fn try_from(c: pb::TokenCall) -> Result<Self> {
        let auth = parse_auth(&c.auth)?;
        Ok(Self {
            grant_type: c.grant_type,
            code: c.code,
            redirect_uri: c.redirect_uri,
            code_verifier: c.code_verifier,
            refresh_token: c.refresh_token,
            scope: c.scope,
            client_id: c.client_id,
            client_secret: c.client_secret,
            auth,
        })
    }
}

/// A token endpoint answer: the tokens, or the refusal for the client.
pub struct TokenOutcome(pub std::result::Result<IssuedTokens, OAuthError>);

impl From<TokenOutcome> for pb::TokenAnswer {
    fn from(o: TokenOutcome) -> Self {
        let answer = match o.0 {
            Ok(t) => Answer::Tokens(t.into()),
            Err(e) => Answer::Refused(e.into()),
        };
        Self {
            answer: Some(answer),
        }
    }
}

impl TryFrom<pb::TokenAnswer> for TokenOutcome {
    type Error = Error;
    fn try_from(a: pb::TokenAnswer) -> Result<Self> {
        Ok(TokenOutcome(match a.answer {
            Some(Answer::Tokens(t)) => Ok(t.try_into()?),
            Some(Answer::Refused(e)) => Err(e.try_into()?),
            None => return Err(Error::validation("answer", "is required")),
        }))
    }
}

/// The claims of a userinfo answer.
pub struct Claims(pub serde_json::Map<String, serde_json::Value>);

impl From<Claims> for pb::UserinfoAnswer {
    fn from(c: Claims) -> Self {
        Self {
            claims_json: serde_json::Value::Object(c.0).to_string(),
        }
    }
}

impl TryFrom<pb::UserinfoAnswer> for Claims {
    type Error = Error;
    fn try_from(a: pb::UserinfoAnswer) -> Result<Self> {
        match serde_json::from_str(&a.claims_json) {
            Ok(serde_json::Value::Object(m)) => Ok(Claims(m)),
            _ => Err(Error::validation("claims_json", "must be a JSON object")),
        }
    }
}

impl From<ClientTokenRequest> for pb::ClientTokenCall {
    fn from(r: ClientTokenRequest) -> Self {
        Self {
            token: r.token,
            token_type_hint: r.token_type_hint,
            client_id: r.client_id,
            client_secret: r.client_secret,
            auth: auth_name(r.auth).to_owned(),
        }
    }
}

impl TryFrom<pb::ClientTokenCall> for ClientTokenRequest {
    type Error = Error;
    fn try_from(c: pb::ClientTokenCall) -> Result<Self> {
        Ok(Self {
            auth: parse_auth(&c.auth)?,
            token: c.token,
            token_type_hint: c.token_type_hint,
            client_id: c.client_id,
            client_secret: c.client_secret,
        })
    }
}

/// A revocation's answer.
pub struct Revoked(pub std::result::Result<(), OAuthError>);

impl From<Revoked> for pb::RevokeAnswer {
    fn from(r: Revoked) -> Self {
        Self {
            refused: r.0.err().map(Into::into),
        }
    }
}

impl TryFrom<pb::RevokeAnswer> for Revoked {
    type Error = Error;
    fn try_from(a: pb::RevokeAnswer) -> Result<Self> {
        Ok(Revoked(match a.refused {
            None => Ok(()),
            Some(e) => Err(e.try_into()?),
        }))
    }
}

/// An introspection's answer.
pub struct Introspected(
    pub std::result::Result<serde_json::Map<String, serde_json::Value>, OAuthError>,
);

impl From<Introspected> for pb::IntrospectAnswer {
    fn from(i: Introspected) -> Self {
        use pb::introspect_answer::Answer;
        let answer = match i.0 {
            Ok(m) => Answer::ClaimsJson(serde_json::Value::Object(m).to_string()),
            Err(e) => Answer::Refused(e.into()),
        };
        Self {
            answer: Some(answer),
        }
    }
}

impl TryFrom<pb::IntrospectAnswer> for Introspected {
    type Error = Error;
    fn try_from(a: pb::IntrospectAnswer) -> Result<Self> {
        use pb::introspect_answer::Answer;
        Ok(Introspected(match a.answer {
            Some(Answer::ClaimsJson(j)) => match serde_json::from_str(&j) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                _ => return Err(Error::validation("claims_json", "must be a JSON object")),
            },
            Some(Answer::Refused(e)) => Err(e.try_into()?),
            None => return Err(Error::validation("answer", "is required")),
        }))
    }
}

/// An RP-initiated logout call: the request and the SSO token.
pub fn end_session_call(r: &EndSessionRequest, sso: Option<&str>) -> pb::EndSessionCall {
    pb::EndSessionCall {
        id_token_hint: r.id_token_hint.clone(),
        post_logout_redirect_uri: r.post_logout_redirect_uri.clone(),
        state: r.state.clone(),
        client_id: r.client_id.clone(),
        sso: sso.map(str::to_owned),
    }
}

/// The request and the SSO token of an RP-initiated logout call.
pub fn end_session_request(c: pb::EndSessionCall) -> (EndSessionRequest, Option<String>) {
    let r = EndSessionRequest {
        id_token_hint: c.id_token_hint,
        post_logout_redirect_uri: c.post_logout_redirect_uri,
        state: c.state,
        client_id: c.client_id,
    };
    (r, c.sso)
}

impl From<EndSession> for pb::EndSessionStep {
    fn from(e: EndSession) -> Self {
        use pb::end_session_step::{SignedOut, Step};
        let step = match e {
            EndSession::SignedOut { redirect } => Step::SignedOut(SignedOut { redirect }),
            EndSession::Confirm => Step::Confirm(pb::Empty {}),
            EndSession::Refused { message } => Step::Refused(message),
        };
        Self { step: Some(step) }
    }
}

impl TryFrom<pb::EndSessionStep> for EndSession {
    type Error = Error;
    fn try_from(s: pb::EndSessionStep) -> Result<Self> {
        use pb::end_session_step::Step;
        Ok(match s.step {
            Some(Step::SignedOut(o)) => EndSession::SignedOut {
                redirect: o.redirect,
            },
            Some(Step::Confirm(_)) => EndSession::Confirm,
            Some(Step::Refused(message)) => EndSession::Refused { message },
            None => return Err(Error::validation("step", "is required")),
        })
    }
}
