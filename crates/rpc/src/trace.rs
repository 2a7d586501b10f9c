//! W3C trace context (`traceparent`, `tracestate`) across every hop: the edge continues the
//! trace a client sent (or starts one), each gRPC client call carries it on, each server adopts
//! it. Off until [`enable`] (the process exports traces only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set): then nothing is read or written, at no cost. The request id travels on its own
//! (`x-request-id`), unchanged.
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Propagate trace context from now on (after the process installed its tracer and the W3C
/// propagator).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct Read<'a>(&'a HeaderMap);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct Write<'a>(&'a mut HeaderMap);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The trace context a caller sent (none when tracing is off), read before the request is taken
/// apart.
pub struct Parent(Option<opentelemetry::Context>);

impl Parent {
    pub fn of(headers: &HeaderMap) -> Self {
        Parent(
            enabled().then(|| {
                opentelemetry::global::get_text_map_propagator(|p| p.extract(&Read(headers)))
            }),
        )
    }

    /// Make `span` (not yet entered) part of the caller's trace; when the caller sent none,
    /// `span` starts a trace of its own.
    pub fn adopt(self, span: &tracing::Span) {
        if let Some(cx) = self.0 {
            // Fails only when no tracer is installed, and then there is nothing to continue.
            let _ = span.set_parent(cx);
        }
    }
}

/// Write the current span's trace context into `headers`, for the next hop.
pub fn carry_on(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Write(headers)));
}
