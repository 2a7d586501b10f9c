//! Calling the layer below: a load-balanced channel over every configured endpoint, the internal
//! credential and request id on each call, a deadline on every call, and retries for idempotent
//! reads only (writes are never retried blindly).
use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tracing::Instrument;

use std::sync::Arc;

use tokio::sync::watch;

use crate::context;
use crate::credential::InternalCredential;
use crate::endpoints::{self, Availability, MakeEndpoint, Target};
use crate::raw::{self, Rpc};
use tonic::codegen::Bytes;

/// Default deadline of one internal call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Upstream {
    channel: Channel,
    credential: InternalCredential,
    deadline: Duration,
    availability: watch::Receiver<Availability>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("deadline", &self.deadline)
            .field("availability", &*self.availability.borrow())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A channel balanced over the endpoints of `urls` (comma-separated `http://host:port` or
    /// `dns:///host:port`), each taking calls while its health answers SERVING (see
    /// [`crate::endpoints`]). Needs a Tokio runtime.
    pub fn new(
        urls: &str,
        credential: InternalCredential,
        deadline: Duration,
    ) -> Result<Self, String> {
        Self::with_tls(urls, credential, deadline, None)
    }

    /// As [`Upstream::new`], over mutual TLS when `tls` is given (`http://` URLs become `https://`;
    /// the name of a `dns:///` target is the server name the certificate must carry).
    pub fn with_tls(
        urls: &str,
        credential: InternalCredential,
        deadline: Duration,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<Self, String> {
        let resolve = (endpoints::system_resolver(), endpoints::DNS_REFRESH);
        Self::resolving(urls, credential, deadline, tls, resolve)
    }

    /// As [`Upstream::with_tls`], resolving `dns:///` names with `resolve.0` every `resolve.1`.
    pub fn resolving(
        urls: &str,
        credential: InternalCredential,
        deadline: Duration,
        tls: Option<tonic::transport::ClientTlsConfig>,
        resolve: (endpoints::Resolve, Duration),
    ) -> Result<Self, String> {
        let targets = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(Target::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err("no upstream endpoint configured".into());
        }
        let make: MakeEndpoint = Arc::new(move |url: &str, domain: Option<&str>| {
            let u = match (&tls, url.strip_prefix("http://")) {
                (Some(_), Some(rest)) => format!("https://{rest}"),
                _ => url.to_owned(),
            };
            let e = Endpoint::from_shared(u.clone())
                .map_err(|_| format!("{u:?} is not a valid upstream URL"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(deadline)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true);
            match &tls {
                Some(t) => {
                    let t = match domain {
                        Some(d) => t.clone().domain_name(d),
                        None => t.clone(),
                    };
                    e.tls_config(t)
                        .map_err(|err| format!("TLS for {u:?}: {err}"))
                }
                None => Ok(e),
            }
        });
        // A fixed URL that cannot be an endpoint is a configuration error: say so at start.
        for t in &targets {
            if let Target::Fixed(url) = t {
                make(url, None)?;
            }
        }
        let (channel, balance) = Channel::balance_channel(64);
        let (availability_tx, availability) = watch::channel(Availability::default());
        tokio::spawn(endpoints::follow(
            targets,
            make,
            resolve.0,
            resolve.1,
            balance,
            availability_tx,
        ));
        Ok(Self {
            channel,
            credential,
            deadline,
            availability,
        })
    }

    /// Right after start, wait (briefly) until every endpoint has answered its first health check.
    async fn settle(&self) {
        // The hot path: known long since, no timer to arm.
        if self.availability.borrow().known {
            return;
        }
        let mut rx = self.availability.clone();
        let first = self.deadline.min(Duration::from_secs(2));
        let _ = tokio::time::timeout(first, rx.wait_for(|a| a.known)).await;
    }

    /// UNAVAILABLE at once when no endpoint can take the call (none answers), instead of
    /// waiting for one until the deadline.
    fn usable(&self) -> Result<(), Status> {
        if self.availability.borrow().usable == 0 {
            return Err(Status::unavailable(
                "no endpoint of the layer below answers",
            ));
        }
        Ok(())
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Wrap `msg` with the deadline, the credential and the request id in scope.
    pub fn request<T>(&self, msg: T) -> Request<T> {
        self.request_with_id(msg, context::request_id())
    }

    pub fn request_with_id<T>(&self, msg: T, request_id: Option<String>) -> Request<T> {
        let mut req = Request::new(msg);
        req.set_timeout(self.deadline);
        self.credential.attach(req.metadata_mut());
        if let Some(id) = request_id
            && let Ok(v) = id.parse()
        {
            req.metadata_mut().insert(context::REQUEST_ID, v);
        }
        crate::trace::carry_on(req.metadata_mut().as_mut());
        req
    }
}

/// Whether a call may be sent again when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Idempotent: retried while the layer below is unavailable.
    Read,
    /// Changes state: sent again only when it certainly never left (connection refused).
    Write,
}

impl Upstream {
    /// One call to the layer below: `msg` is encoded once, `request` wraps it for each attempt
    /// (credential, deadline, request id, forwarded facts); errors come back as the domain error
    /// the server answered, and the answer is decoded (a message that does not decode is the
    /// server's fault: `malformed_response`). `rpc.name` names the call in
    /// `grpc_client_requests_total{rpc,code}` and `grpc_client_request_duration_seconds{rpc}`
    /// (retries included in the duration).
    pub async fn call<M, W, T>(
        &self,
        rpc: Rpc<M, W>,
        retry: Retry,
        msg: &M,
        request: &(dyn Fn(Bytes) -> Request<Bytes> + Sync),
    ) -> domain::Result<T>
    where
        M: prost::Message,
        W: prost::Message + Default,
        T: TryFrom<W, Error = domain::Error>,
    {
        // Only encoding and decoding depend on the call's types; `send` is compiled once.
        let body = raw::encode(msg);
        let answer = self
            .send(rpc.path, rpc.name, retry, &|| request(body.clone()))
            .await
            .map_err(crate::status::to_error)?;
        let answer: W = raw::decode(answer).map_err(|s| {
            crate::convert::malformed_response(domain::Error::internal(format!(
                "{}: {}",
                rpc.name,
                s.message()
            )))
        })?;
        crate::convert::decode(answer)
    }

    /// The attempts of one call: deadline, retries, span and metrics.
    async fn send(
        &self,
        path: &'static str,
        rpc: &'static str,
        retry: Retry,
        request: &(dyn Fn() -> Request<Bytes> + Sync),
    ) -> Result<Bytes, Status> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("grpc_client", rpc, otel.name = rpc, otel.kind = "client");
        // Each attempt: only while some endpoint takes calls, and never longer than the deadline
        // (a balance left without endpoints would otherwise wait for one for ever).
        let attempt = || {
            let sent = self
                .usable()
                .map(|()| raw::unary(self.channel.clone(), path, request()));
            let deadline = self.deadline;
            async move {
                match tokio::time::timeout(deadline, sent?).await {
                    Ok(answer) => answer.map(tonic::Response::into_inner),
                    Err(_) => Err(Status::deadline_exceeded(
                        "the layer below did not answer in time",
                    )),
                }
            }
        };
        self.settle().await;
        let answer = match retry {
            Retry::Read => retry_read(attempt).instrument(span).await,
            Retry::Write => retry_unsent(attempt).instrument(span).await,
        };
        let code = match &answer {
            Ok(_) => "Ok".to_owned(),
            Err(s) => format!("{:?}", s.code()),
        };
        metrics::counter!("grpc_client_requests_total", "rpc" => rpc, "code" => code).increment(1);
        metrics::histogram!("grpc_client_request_duration_seconds", "rpc" => rpc)
            .record(started.elapsed().as_secs_f64());
        answer
    }
}

/// Run an idempotent read, retrying twice (50 ms, 150 ms) when the upstream is unavailable.
pub async fn retry_read<T, F, Fut>(mut op: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..2 {
        match op().await {
            Err(s)
                if s.code() == Code::Unavailable
                    && s.metadata().get(crate::status::ERROR_CODE).is_none() =>
            {
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
            other => return other,
        }
    }
    op().await
}

/// Whether a failed call certainly never reached the server's handler: the connection was
/// refused, the server refused the stream (REFUSED_STREAM) or the stream was above the last one
/// its GOAWAY let through. Sending it again (to another replica) cannot apply it twice.
pub fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        // Refused by the server, or above the last stream id of its GOAWAY: never processed.
        if let Some(h2) = e.downcast_ref::<h2::Error>()
            && (h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote()))
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Run a write, sending it again (up to twice) only when it certainly never reached the server,
/// e.g. one endpoint of a balanced list is down and another may take the call.
pub async fn retry_unsent<T, F, Fut>(mut op: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(20);
    for _ in 0..2 {
        match op().await {
            Err(s) if never_sent(&s) => {
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
            other => return other,
        }
    }
    op().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_known_never_sent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cred = InternalCredential::new("0123456789abcdef0123456789abcdef").unwrap();
        let up = Upstream::new(&format!("127.0.0.1:{port}"), cred, Duration::from_secs(2)).unwrap();
        // A raw channel: the upstream itself never sends to an endpoint that does not answer.
        let raw = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy();
        let mut client = tonic_health::pb::health_client::HealthClient::new(raw);
        let mut attempts = 0;
        let err = retry_unsent(|| {
            attempts += 1;
            let req = up.request(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            });
            let mut c = client.clone();
            async move { c.check(req).await }
        })
        .await
        .unwrap_err();
        assert!(never_sent(&err), "{err:?}");
        assert_eq!(attempts, 3);
        // a server-side UNAVAILABLE (the call arrived) is not "never sent"
        assert!(!never_sent(&Status::unavailable("database down")));
        let _ = &mut client;
    }
}
