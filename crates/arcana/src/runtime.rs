//! Process plumbing every binary shares: logging, shutdown on SIGTERM/SIGINT, and the readiness
//! loop behind each gRPC port's `grpc.health.v1` answer.
use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;

use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init_logging(format: LogFormat) {
    init_logging_to(format, false);
}

/// As [`init_logging`]; `stderr` keeps stdout for a command's output (the admin commands).
pub fn init_logging_to(format: LogFormat, stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer =
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
            if stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Run `main` and turn its error into a logged failure exit.
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "arcana stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One shutdown signal shared by every server of the process.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Starts listening for SIGINT/SIGTERM.
    pub fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once shutdown was requested.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Listen on `addr` (logged as `what`).
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))?;
    tracing::info!(addr = %l.local_addr()?, "{what} listening");
    Ok(l)
}

/// Serve the ops port (`GET /metrics`, `/health/live`, `/health/ready`) of an internal layer on
/// `addr` in the background, until shutdown. A port that cannot be bound stops the start.
pub async fn serve_ops(
    addr: SocketAddr,
    binary: &'static str,
    gauges: Vec<rpc::ops::GaugeFn>,
    ready: rpc::ops::ReadyFn,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    rpc::ops::record_build_info(binary);
    let listener = bind(addr, "ops (metrics, health)").await?;
    tokio::spawn(rpc::ops::serve(listener, gauges, ready, shutdown.wait()));
    Ok(())
}
