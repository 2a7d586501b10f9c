//! Process plumbing every binary shares: logging, shutdown on SIGTERM/SIGINT, and the readiness
//! loop behind each gRPC port's `grpc.health.v1` answer.
use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;

use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The process's TLS provider: aws-lc-rs (the internal gRPC TLS, SMTP, OTLP). The webhook
/// client brings ring too, and with two compiled in rustls can no longer pick one by itself.
pub fn install_crypto_provider() {
    // Err: one is installed already (a second call).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn init_logging(format: LogFormat) {
    init_logging_to(format, false);
}

/// As [`init_logging`]; `stderr` keeps stdout for a command's output (the admin commands).
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans also
/// go to that OTLP collector (gRPC), and W3C trace context is read and passed on at every hop.
pub fn init_logging_to(format: LogFormat, stderr: bool) {
    install_crypto_provider();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer =
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
            if stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let (otel, problem) = match traces::tracer() {
        Ok(tracer) => (
            tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t)),
            None,
        ),
        Err(e) => (None, Some(e)),
    };
    let on = otel.is_some();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    if on {
        rpc::trace::enable();
        tracing::info!("exporting traces over OTLP");
    }
    if let Some(e) = problem {
        tracing::warn!(error = %format!("{e:#}"), "traces are off: the OTLP exporter could not be set up");
    }
}

/// OpenTelemetry traces, configured by the standard `OTEL_*` variables.
mod traces {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    fn set(var: &str) -> bool {
        std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
    }

    /// A tracer exporting to the configured collector; `None` when none is configured (or
    /// `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`). Needs a Tokio runtime.
    pub(super) fn tracer() -> anyhow::Result<Option<SdkTracer>> {
        let configured =
            set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let disabled = std::env::var("OTEL_SDK_DISABLED")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
            || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
        if !configured || disabled {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        let mut resource = Resource::builder();
        // OTEL_SERVICE_NAME (read by the builder) wins; else the binary's name.
        if !set("OTEL_SERVICE_NAME") {
            let binary = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "arcana".to_owned());
            resource = resource.with_service_name(binary);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                resource
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let tracer = provider.tracer("arcana");
        let _ = PROVIDER.set(provider);
        Ok(Some(tracer))
    }

    /// Send the spans still buffered (at exit).
    pub(super) fn flush() {
        if let Some(p) = PROVIDER.get() {
            let p = p.clone();
            // Off this thread: the exporter needs the runtime's workers while we wait.
            let _ = std::thread::spawn(move || p.shutdown()).join();
        }
    }
}

/// Run `main` and turn its error into a logged failure exit.
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    traces::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "arcana stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One shutdown signal shared by every server of the process, in two steps. On SIGTERM/SIGINT
/// the process drains: every health answer turns NOT_SERVING (readiness 503) while it keeps
/// serving for the drain delay, so the layer above and load balancers move away first; then the
/// servers stop (HTTP/2 GOAWAY, no new connections), finish the calls in flight and the process
/// exits, after the shutdown timeout at the latest.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Starts listening for SIGINT/SIGTERM.
    pub fn on_signals(args: &crate::config::ProcessArgs) -> Self {
        let (tx, rx) = watch::channel(false);
        let drain = std::time::Duration::from_millis(args.drain_delay_ms);
        let timeout = std::time::Duration::from_millis(args.shutdown_timeout_ms);
        tokio::spawn(async move {
            signal().await;
            rpc::server::start_draining();
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutdown requested: reporting NOT_SERVING, still serving while the callers move away"
            );
            tokio::time::sleep(drain).await;
            tracing::info!("closing: no new calls, finishing in-flight requests");
            let _ = tx.send(true);
            tokio::time::sleep(timeout).await;
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "calls still in flight after the shutdown timeout; exiting"
            );
            traces::flush();
            std::process::exit(0);
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

/// Serve the ops listener (`GET /metrics`, `/health/live`, `/health/ready`) of this process on
/// `ops.metrics_addr` in the background, until shutdown. A port that cannot be bound stops the
/// start.
pub async fn serve_ops(
    ops: &crate::config::OpsArgs,
    binary: &'static str,
    gauges: Vec<rpc::ops::GaugeFn>,
    ready: rpc::ops::ReadyFn,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    rpc::ops::record_build_info(binary);
    let token = ops.scrape_token()?;
    let listener = bind(ops.metrics_addr, "ops (metrics, health)").await?;
    tokio::spawn(rpc::ops::serve(
        listener,
        gauges,
        ready,
        token,
        shutdown.wait(),
    ));
    Ok(())
}
