//! The bare baselines, run as child processes of the bench (hidden subcommands) so their CPU
//! and memory are their own: an axum handler answering "hello", and a tonic unary handler.
//! Same runtime (tokio multi-thread, one worker per core) and socket options as arcana's edge.
use std::net::SocketAddr;

use std::io::Read;

use anyhow::Result;

use crate::hello::hello_server::{Hello, HelloServer};
use crate::hello::{HelloReply, HelloRequest};

/// Exit when stdin closes: the bench holds the other end, so a baseline never outlives it.
/// (A plain thread: tokio's `io-std` would change tokio's feature set, and with it the build of
/// every crate shared with the arcana binaries when both are built together.)
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

pub async fn axum_hello(addr: SocketAddr) -> Result<()> {
    exit_with_parent();
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[derive(Debug, Default)]
struct HelloSvc;

#[tonic::async_trait]
impl Hello for HelloSvc {
    async fn say(
        &self,
        _req: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply {
            message: "hello".into(),
        }))
    }
}

pub async fn tonic_hello(addr: SocketAddr) -> Result<()> {
    exit_with_parent();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .serve_with_incoming(HelloServer::new(HelloSvc), incoming)
        .await?;
    Ok(())
}
