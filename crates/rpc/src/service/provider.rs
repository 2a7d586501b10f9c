//! `arcana.internal.v1.OidcProviderService` over the provider port, and its client adapter.
//!
//! Served on a service layer's internal port (behind the internal credential) to the gateway:
//! the caller is the edge, never a user, so no call needs a bearer token; the request facts
//! come as forwarded (`x-arcana-client-ip`, user agent, request id).
use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    Authorization, AuthorizeRequest, ClientTokenRequest, ConsoleAccess, EndSession,
    EndSessionRequest, Interaction, IssuedTokens, LoginInput, MfaVerifyInput, OAuthError,
    OidcProvider, PasskeyLoginInput, RequestContext, Result, SignInOutcome, SsoSignIn,
    TokenRequest,
};
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use super::client::outgoing;
use super::{Call, PrincipalSource, run};
use crate::client::{Retry, Upstream};
use crate::convert::provider::{
    Claims, Introspected, MaybeConsole, Revoked, TokenOutcome, end_session_call,
    end_session_request, interaction_name, parse_interaction,
};
use crate::internal::{
    self as pb, oidc_provider_service_rpcs as rpcs,
    oidc_provider_service_server::OidcProviderService,
};
use crate::raw::Rpc;
use crate::v1;

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the provider port to the edge; `P` gives the forwarded request facts.
pub struct OidcProviderGrpc<P> {
    provider: Arc<dyn OidcProvider>,
    source: P,
}

impl<P: PrincipalSource> OidcProviderGrpc<P> {
    pub fn new(provider: Arc<dyn OidcProvider>, source: P) -> Self {
        Self { provider, source }
    }

    /// One call: the request facts, then `f(ctx, message)`.
    async fn call<T, R, F, Fut>(&self, rpc: &'static str, req: Request<T>, f: F) -> Answer<R>
    where
        F: FnOnce(RequestContext, T) -> Fut + Send,
        T: Send,
        Fut: std::future::Future<Output = Result<R>> + Send,
        R: Send,
    {
        let ctx = self.source.context(&Call::of(&req));
        let request_id = ctx.request_id.clone();
        let parent = crate::trace::Parent::of(req.metadata().as_ref());
        run(
            &self.source,
            rpc,
            request_id,
            parent,
            f(ctx, req.into_inner()),
        )
        .await
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> OidcProviderService for OidcProviderGrpc<P> {
    async fn authorize(&self, req: Request<pb::AuthorizeCall>) -> Answer<pb::AuthorizationStep> {
        let provider = &self.provider;
        self.call("Authorize", req, |ctx, m| async move {
            let request = AuthorizeRequest::from_wire_or_default(m.request)?;
            let interaction = parse_interaction(&m.interaction)?;
            provider
                .authorize(&ctx, &request, m.sso.as_deref(), interaction)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn sign_in(&self, req: Request<v1::LoginRequest>) -> Answer<pb::SsoSignIn> {
        let provider = &self.provider;
        self.call("SignIn", req, |ctx, m| async move {
            provider
                .sign_in(&ctx, LoginInput::try_from(m)?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn sign_in_mfa(&self, req: Request<v1::VerifyMfaRequest>) -> Answer<pb::SsoSignIn> {
        let provider = &self.provider;
        self.call("SignInMfa", req, |ctx, m| async move {
            provider
                .sign_in_mfa(&ctx, MfaVerifyInput::try_from(m)?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn sign_in_passkey(
        &self,
        req: Request<v1::FinishPasskeyLoginRequest>,
    ) -> Answer<pb::SsoSignIn> {
        let provider = &self.provider;
        self.call("SignInPasskey", req, |ctx, m| async move {
            provider
                .sign_in_passkey(&ctx, PasskeyLoginInput::try_from(m)?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn console_access(
        &self,
        req: Request<pb::SignOutCall>,
    ) -> Answer<pb::ConsoleAccessAnswer> {
        let provider = &self.provider;
        self.call("ConsoleAccess", req, |ctx, m| async move {
            let access = provider.console_access(&ctx, &m.sso).await?;
            Ok(MaybeConsole(access).into())
        })
        .await
    }

    async fn sign_out(&self, req: Request<pb::SignOutCall>) -> Answer<pb::Empty> {
        let provider = &self.provider;
        self.call("SignOut", req, |ctx, m| async move {
            provider.sign_out(&ctx, &m.sso).await.map(Into::into)
        })
        .await
    }

    async fn token(&self, req: Request<pb::TokenCall>) -> Answer<pb::TokenAnswer> {
        let provider = &self.provider;
        self.call("Token", req, |ctx, m| async move {
            let outcome = provider.token(&ctx, m.try_into()?).await?;
            Ok(TokenOutcome(outcome).into())
        })
        .await
    }

    async fn userinfo(&self, req: Request<pb::UserinfoCall>) -> Answer<pb::UserinfoAnswer> {
        let provider = &self.provider;
        self.call("Userinfo", req, |_, m| async move {
            let claims = provider.userinfo(&m.access_token).await?;
            Ok(Claims(claims).into())
        })
        .await
    }

    async fn revoke(&self, req: Request<pb::ClientTokenCall>) -> Answer<pb::RevokeAnswer> {
        let provider = &self.provider;
        self.call("Revoke", req, |ctx, m| async move {
            Ok(Revoked(provider.revoke(&ctx, m.try_into()?).await?).into())
        })
        .await
    }

    async fn introspect(&self, req: Request<pb::ClientTokenCall>) -> Answer<pb::IntrospectAnswer> {
        let provider = &self.provider;
        self.call("Introspect", req, |ctx, m| async move {
            Ok(Introspected(provider.introspect(&ctx, m.try_into()?).await?).into())
        })
        .await
    }

    async fn end_session(&self, req: Request<pb::EndSessionCall>) -> Answer<pb::EndSessionStep> {
        let provider = &self.provider;
        self.call("EndSession", req, |ctx, m| async move {
            let (request, sso) = end_session_request(m);
            provider
                .end_session(&ctx, &request, sso.as_deref())
                .await
                .map(Into::into)
        })
        .await
    }
}

trait FromWireOrDefault: Sized {
    fn from_wire_or_default(w: Option<pb::AuthorizeParams>) -> Result<Self>;
}

impl FromWireOrDefault for AuthorizeRequest {
    fn from_wire_or_default(w: Option<pb::AuthorizeParams>) -> Result<Self> {
        w.map(TryInto::try_into)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// [`OidcProvider`] over gRPC (`arcana.internal.v1.OidcProviderService` of `upstream`, the auth
/// context). Only the userinfo read is retried; every other step changes state.
#[derive(Debug, Clone)]
pub struct OidcProviderClient {
    upstream: Upstream,
}

impl OidcProviderClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    async fn call<M, W, T>(
        &self,
        rpc: Rpc<M, W>,
        retry: Retry,
        ctx: Option<&RequestContext>,
        msg: M,
    ) -> Result<T>
    where
        M: prost::Message,
        W: prost::Message + Default,
        T: TryFrom<W, Error = domain::Error>,
    {
        let up = &self.upstream;
        up.call(rpc, retry, &msg, &|body| outgoing(up, ctx, None, body))
            .await
    }
}

#[async_trait]
impl OidcProvider for OidcProviderClient {
    async fn authorize(
        &self,
        ctx: &RequestContext,
        request: &AuthorizeRequest,
        sso: Option<&str>,
        interaction: Interaction,
    ) -> Result<Authorization> {
        let msg = pb::AuthorizeCall {
            request: Some(request.clone().into()),
            sso: sso.map(str::to_owned),
            interaction: interaction_name(interaction).to_owned(),
        };
        self.call(rpcs::authorize, Retry::Write, Some(ctx), msg)
            .await
    }

    async fn sign_in(&self, ctx: &RequestContext, input: LoginInput) -> Result<SignInOutcome> {
        let msg = v1::LoginRequest::from(input);
        self.call(rpcs::sign_in, Retry::Write, Some(ctx), msg).await
    }

    async fn sign_in_mfa(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<SsoSignIn> {
        let msg = v1::VerifyMfaRequest::from(input);
        self.call(rpcs::sign_in_mfa, Retry::Write, Some(ctx), msg)
            .await
    }

    async fn sign_in_passkey(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<SsoSignIn> {
        let msg = v1::FinishPasskeyLoginRequest::from(input);
        self.call(rpcs::sign_in_passkey, Retry::Write, Some(ctx), msg)
            .await
    }

    async fn console_access(
        &self,
        ctx: &RequestContext,
        sso: &str,
    ) -> Result<Option<ConsoleAccess>> {
        let msg = pb::SignOutCall {
            sso: sso.to_owned(),
        };
        let answer: MaybeConsole = self
            .call(rpcs::console_access, Retry::Read, Some(ctx), msg)
            .await?;
        Ok(answer.0)
    }

    async fn sign_out(&self, ctx: &RequestContext, sso: &str) -> Result<()> {
        let msg = pb::SignOutCall {
            sso: sso.to_owned(),
        };
        self.call(rpcs::sign_out, Retry::Write, Some(ctx), msg)
            .await
    }

    async fn token(
        &self,
        ctx: &RequestContext,
        request: TokenRequest,
    ) -> Result<std::result::Result<IssuedTokens, OAuthError>> {
        let msg = pb::TokenCall::from(request);
        let outcome: TokenOutcome = self.call(rpcs::token, Retry::Write, Some(ctx), msg).await?;
        Ok(outcome.0)
    }

    async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>> {
        let msg = pb::UserinfoCall {
            access_token: access_token.to_owned(),
        };
        let claims: Claims = self.call(rpcs::userinfo, Retry::Read, None, msg).await?;
        Ok(claims.0)
    }

    async fn revoke(
        &self,
        ctx: &RequestContext,
        request: ClientTokenRequest,
    ) -> Result<std::result::Result<(), OAuthError>> {
        let msg = pb::ClientTokenCall::from(request);
        let r: Revoked = self
            .call(rpcs::revoke, Retry::Write, Some(ctx), msg)
            .await?;
        Ok(r.0)
    }

    async fn introspect(
        &self,
        ctx: &RequestContext,
        request: ClientTokenRequest,
    ) -> Result<std::result::Result<Map<String, Value>, OAuthError>> {
        let msg = pb::ClientTokenCall::from(request);
        let r: Introspected = self
            .call(rpcs::introspect, Retry::Read, Some(ctx), msg)
            .await?;
        Ok(r.0)
    }

    async fn end_session(
        &self,
        ctx: &RequestContext,
        request: &EndSessionRequest,
        sso: Option<&str>,
    ) -> Result<EndSession> {
        let msg = end_session_call(request, sso);
        self.call(rpcs::end_session, Retry::Write, Some(ctx), msg)
            .await
    }
}
