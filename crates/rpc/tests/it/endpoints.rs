//! An upstream named by DNS (`dns:///name:port`) follows what the name resolves to: two real
//! gRPC servers on 127.0.0.2 and 127.0.0.3 (same port), a resolver whose answer the test
//! changes; calls go to the addresses of the latest answer within moments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc::client::{Retry, Upstream};
use rpc::credential::{INTERNAL_TOKEN, InternalCredential};
use rpc::endpoints::Resolve;
use rpc::raw::HEALTH_CHECK;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;

/// A gRPC server on `addr` counting the calls that carry the internal credential (the
/// upstream's own calls; its health polls carry none).
async fn server(addr: SocketAddr) -> Arc<AtomicUsize> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let svc = tonic::service::interceptor::InterceptedService::new(
        health,
        move |req: tonic::Request<()>| {
            if req.metadata().get(INTERNAL_TOKEN).is_some() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(req)
        },
    );
    tokio::spawn(async move {
        let _reporter = _reporter;
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    calls
}

/// Any health answer.
struct Answered;

impl TryFrom<tonic_health::pb::HealthCheckResponse> for Answered {
    type Error = domain::Error;
    fn try_from(_: tonic_health::pb::HealthCheckResponse) -> domain::Result<Self> {
        Ok(Answered)
    }
}

/// `n` calls through the upstream; each must succeed.
async fn calls(up: &Upstream, n: usize) {
    let msg = HealthCheckRequest {
        service: String::new(),
    };
    for _ in 0..n {
        let answer: domain::Result<Answered> = up
            .call(HEALTH_CHECK, Retry::Read, &msg, &|body| up.request(body))
            .await;
        assert!(answer.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_upstream_follows_the_addresses_the_name_resolves_to() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a: SocketAddr = ([127, 0, 0, 2], port).into();
    let b: SocketAddr = ([127, 0, 0, 3], port).into();
    let (to_a, to_b) = (server(a).await, server(b).await);

    let answer = Arc::new(Mutex::new(vec![a]));
    let scripted = answer.clone();
    let resolve: Resolve = Arc::new(move |host: String, _port: u16| {
        assert_eq!(host, "arcana-service.test");
        let addrs = scripted.lock().unwrap().clone();
        Box::pin(async move { Ok(addrs) })
    });
    let cred = InternalCredential::new("0123456789abcdef0123456789abcdef").unwrap();
    let up = Upstream::resolving(
        &format!("dns:///arcana-service.test:{port}"),
        cred,
        Duration::from_secs(2),
        None,
        (resolve, Duration::from_millis(300)),
    )
    .unwrap();

    // One address: every call goes there.
    calls(&up, 20).await;
    assert_eq!(to_a.load(Ordering::Relaxed), 20);
    assert_eq!(to_b.load(Ordering::Relaxed), 0);

    // The name gains an address: it takes calls within moments.
    *answer.lock().unwrap() = vec![a, b];
    let started = Instant::now();
    while to_b.load(Ordering::Relaxed) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "127.0.0.3 never got a call"
        );
        calls(&up, 10).await;
    }
    println!("new endpoint took calls after {:?}", started.elapsed());

    // The name loses the first address: no call goes there any more.
    *answer.lock().unwrap() = vec![b];
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = to_a.load(Ordering::Relaxed);
    calls(&up, 20).await;
    assert_eq!(
        to_a.load(Ordering::Relaxed),
        before,
        "127.0.0.2 left the name"
    );
}
