//! The public edge: REST and public gRPC over the service ports (in-process or remote).
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::config::{EdgeArgs, JwtArgs, OpsArgs, RedisArgs, cors_origins};
use crate::runtime::{Shutdown, bind};

/// The edge's settings from its flags (checked: a bad value stops the start).
pub fn config(args: &EdgeArgs) -> anyhow::Result<gateway::GatewayConfig> {
    Ok(gateway::GatewayConfig {
        cors_origins: cors_origins(&args.cors_origins)?,
        auth_rate_limit: args.auth_rate_limit,
        password_change_rate_limit: args.password_change_rate_limit,
        token_rate_limit: args.token_rate_limit,
        trusted_proxies: args.trusted_proxies.clone(),
        request_timeout: Duration::from_secs(args.request_timeout),
        header_read_timeout: Duration::from_secs(args.http_header_timeout),
        http2_keepalive_interval: Duration::from_secs(args.http2_keepalive),
        max_concurrent_streams: args.max_concurrent_streams,
        oidc_keys: None,
        // The monolith takes both from its service layer's settings; a gateway from the same
        // variables.
        issuer: std::env::var("ARCANA_PUBLIC_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .map_or_else(
                || "http://localhost:8080".to_owned(),
                |s| s.trim_end_matches('/').to_owned(),
            ),
        product_name: std::env::var("ARCANA_PRODUCT_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "arcana".to_owned()),
    })
}

/// Verifies access tokens with `keys` for the configured issuer and audience.
pub fn verifier(keys: &crypto::JwtKeys, jwt: &JwtArgs) -> crypto::TokenVerifier {
    keys.verifier(&jwt.jwt_issuer, &jwt.jwt_audience)
}

/// REST on `args.http_addr` and public gRPC on `args.grpc_addr`, and the ops listener
/// (`ops.metrics_addr`: `/metrics` with `gauges`, health asking `auth` and `users`), until
/// shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    args: &EdgeArgs,
    redis: &RedisArgs,
    ops: &OpsArgs,
    config: gateway::GatewayConfig,
    ports: gateway::Ports,
    verifier: crypto::TokenVerifier,
    gauges: Vec<rpc::ops::GaugeFn>,
    binary: &'static str,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let ready: rpc::ops::ReadyFn = {
        let (auth, users) = (ports.auth.clone(), ports.users.clone());
        Arc::new(move || {
            let (auth, users) = (auth.clone(), users.clone());
            Box::pin(async move {
                let (a, u) = tokio::join!(auth.ready(), users.ready());
                a.is_ok() && u.is_ok()
            })
        })
    };
    let shared = match redis.redis_url()? {
        Some(url) => {
            let shared = gateway::shared::Shared::new(url.expose_secret(), &redis.redis_prefix)
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(prefix = %redis.redis_prefix, "rate limits and revocations shared through Redis");
            Some(shared)
        }
        None => None,
    };
    let state = gateway::AppState::with_shared(ports, Arc::new(verifier), config, shared);
    let http = bind(args.http_addr, "REST").await?;
    let grpc = bind(args.grpc_addr, "public gRPC").await?;
    // Ready only once the public ports are bound (readiness is what clients wait for).
    crate::runtime::serve_ops(ops, binary, gauges, ready, &shutdown).await?;
    let rest = gateway::serve(
        http,
        gateway::router(state.clone()),
        &state.config,
        shutdown.wait(),
    );
    let public = gateway::grpc::serve(grpc, state.clone(), shutdown.wait());
    let (r, g) = tokio::join!(rest, public);
    r.context("serving REST")?;
    g.context("serving public gRPC")?;
    Ok(())
}
