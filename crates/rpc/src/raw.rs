//! Calls and services over encoded messages: tonic's framing, compression, deadlines and status
//! handling are compiled once, for [`Bytes`], instead of once per rpc (tonic's generated clients
//! and servers instantiate its whole codec and body machinery for every method: two fifths of this
//! crate's build). Only a small shell per rpc remains, which encodes and decodes the messages.
//!
//! `build.rs` writes, beside each generated service, a module `<service>_rpcs` with its name
//! (`NAME`), one typed [`Rpc`] per method and `server(impl)`, a [`RawServer`] with a route for
//! every method of the service trait, so a method cannot be left unserved.
use std::collections::HashMap;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::Bytes;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::credential::InternalCredential;

/// One rpc: its path (`/package.Service/Method`), its name in metrics and spans (the method in
/// snake case), its request `M` and answer `W`.
pub struct Rpc<M, W> {
    pub path: &'static str,
    pub name: &'static str,
    types: PhantomData<fn(M) -> W>,
}

impl<M, W> Rpc<M, W> {
    pub const fn new(path: &'static str, name: &'static str) -> Self {
        Self {
            path,
            name,
            types: PhantomData,
        }
    }
}

impl<M, W> Clone for Rpc<M, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, W> Copy for Rpc<M, W> {}

/// `grpc.health.v1.Health/Check` (of the whole server: service `""`), as `health_check`.
pub const HEALTH_CHECK: Rpc<
    tonic_health::pb::HealthCheckRequest,
    tonic_health::pb::HealthCheckResponse,
> = Rpc::new("/grpc.health.v1.Health/Check", "health_check");

/// Messages pass through as their encoded bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A message's encoding.
pub fn encode(m: &impl Message) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

/// A message from its encoding; an undecodable one is INTERNAL, as tonic's own codec says.
pub fn decode<M: Message + Default>(b: Bytes) -> Result<M, Status> {
    M::decode(b).map_err(|e| Status::internal(e.to_string()))
}

/// Send one encoded unary call on `channel`.
pub async fn unary<T>(
    channel: T,
    path: &'static str,
    req: Request<Bytes>,
) -> Result<Response<Bytes>, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("Service was not ready: {}", e.into())))?;
    grpc.unary(req, PathAndQuery::from_static(path), RawCodec)
        .await
}

type Handler = Arc<
    dyn Fn(Request<Bytes>) -> BoxFuture<'static, Result<Response<Bytes>, Status>> + Send + Sync,
>;

/// A gRPC service over its routes (one per method, by path), with tonic's server side compiled
/// once for all of them.
#[derive(Clone)]
pub struct RawServer {
    name: &'static str,
    routes: Arc<HashMap<&'static str, Handler>>,
    max_decoding_message_size: Option<usize>,
    credential: Option<InternalCredential>,
}

impl RawServer {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            routes: Arc::default(),
            max_decoding_message_size: None,
            credential: None,
        }
    }

    /// Refuse every call that does not carry `credential` (UNAUTHENTICATED, before any handler
    /// runs): the one credential check of every internal port.
    pub fn internal(mut self, credential: &InternalCredential) -> Self {
        self.credential = Some(credential.clone());
        self
    }

    /// The service's full name (`package.Service`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Refuse request messages above `limit` bytes (tonic's default: 4 MiB).
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }

    /// Serve `rpc` with `f`: the only code compiled per method (decode, call, encode).
    pub fn route<M, W, F, Fut>(mut self, rpc: Rpc<M, W>, f: F) -> Self
    where
        M: Message + Default + 'static,
        W: Message + 'static,
        F: Fn(Request<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<W>, Status>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req: Request<Bytes>| {
            let (metadata, extensions, body) = req.into_parts();
            match decode::<M>(body) {
                Ok(m) => {
                    let answer = f(Request::from_parts(metadata, extensions, m));
                    Box::pin(async move { Ok(answer.await?.map(|w| encode(&w))) })
                }
                Err(e) => Box::pin(std::future::ready(Err(e))),
            }
        });
        Arc::make_mut(&mut self.routes).insert(rpc.path, handler);
        self
    }
}

/// One method's handler as tonic's unary service.
struct Method(Handler);

impl tonic::server::UnaryService<Bytes> for Method {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        (self.0)(request)
    }
}

impl tower::Service<http::Request<Body>> for RawServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let req = match &self.credential {
            None => req,
            Some(credential) => {
                let (mut parts, body) = req.into_parts();
                let metadata = MetadataMap::from_headers(std::mem::take(&mut parts.headers));
                if let Err(refused) = credential.check(&metadata) {
                    return Box::pin(std::future::ready(Ok(refused.into_http())));
                }
                parts.headers = metadata.into_headers();
                http::Request::from_parts(parts, body)
            }
        };
        let Some(handler) = self.routes.get(req.uri().path()).cloned() else {
            // UNIMPLEMENTED, as tonic's generated servers answer a method they do not know.
            let unknown = format!("unknown method {:?}", req.uri().path());
            let answer = Status::new(tonic::Code::Unimplemented, unknown).into_http();
            return Box::pin(std::future::ready(Ok(answer)));
        };
        let mut grpc = tonic::server::Grpc::new(RawCodec);
        if let Some(limit) = self.max_decoding_message_size {
            grpc = grpc.max_decoding_message_size(limit);
        }
        Box::pin(async move { Ok(grpc.unary(Method(handler), req).await) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt;

    type Ping = tonic_health::pb::HealthCheckRequest;
    type Pong = tonic_health::pb::HealthCheckResponse;
    const CHECK: Rpc<Ping, Pong> = Rpc::new("/grpc.health.v1.Health/Check", "check");

    fn server() -> RawServer {
        RawServer::new("grpc.health.v1.Health")
            .max_decoding_message_size(64)
            .route(CHECK, |r: Request<Ping>| async move {
                let status = i32::try_from(r.into_inner().service.len()).unwrap_or(0);
                Ok(Response::new(Pong { status }))
            })
    }

    fn call(path: &str, body: Vec<u8>) -> http::Request<Body> {
        let mut framed = vec![0u8];
        framed.extend((body.len() as u32).to_be_bytes());
        framed.extend(body);
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::new(http_body_util::Full::new(Bytes::from(framed))))
            .unwrap()
    }

    async fn answer(r: http::Response<Body>) -> (Option<String>, Vec<u8>) {
        use http_body_util::BodyExt;
        let header = r
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let collected = r.into_body().collect().await.unwrap();
        let status = header.or_else(|| {
            let t = collected.trailers()?;
            Some(t.get("grpc-status")?.to_str().ok()?.to_owned())
        });
        (status, collected.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn a_route_decodes_calls_and_encodes_answers() {
        let ping = Ping {
            service: "abc".into(),
        };
        let r = server()
            .oneshot(call(CHECK.path, ping.encode_to_vec()))
            .await
            .unwrap();
        let (status, body) = answer(r).await;
        assert_eq!(status.as_deref(), Some("0"));
        let pong = Pong::decode(&body[5..]).unwrap();
        assert_eq!(pong.status, 3);
    }

    #[tokio::test]
    async fn unknown_methods_undecodable_and_oversized_messages_are_refused() {
        let ping = Ping::default().encode_to_vec();
        let r = server()
            .oneshot(call("/grpc.health.v1.Health/Nope", ping))
            .await
            .unwrap();
        assert_eq!(answer(r).await.0.as_deref(), Some("12")); // UNIMPLEMENTED
        let r = server()
            .oneshot(call(CHECK.path, vec![0xff, 0xff]))
            .await
            .unwrap();
        assert_eq!(answer(r).await.0.as_deref(), Some("13")); // INTERNAL, as tonic's codec
        let big = Ping {
            service: "x".repeat(100),
        };
        let r = server()
            .oneshot(call(CHECK.path, big.encode_to_vec()))
            .await
            .unwrap();
        assert_eq!(answer(r).await.0.as_deref(), Some("11")); // OUT_OF_RANGE, as tonic says
    }

    #[tokio::test]
    async fn an_internal_server_refuses_calls_without_the_credential_before_any_handler() {
        let token = "0123456789abcdef0123456789abcdef";
        let credential = InternalCredential::new(token).unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = ran.clone();
        let server = RawServer::new("grpc.health.v1.Health")
            .route(CHECK, move |_: Request<Ping>| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Ok(Response::new(Pong { status: 1 })) }
            })
            .internal(&credential);
        let ping = Ping::default().encode_to_vec();
        let mut wrong = call(CHECK.path, ping.clone());
        wrong.headers_mut().insert(
            crate::credential::INTERNAL_TOKEN,
            "x".repeat(32).parse().unwrap(),
        );
        for refused in [call(CHECK.path, ping.clone()), wrong] {
            let r = server.clone().oneshot(refused).await.unwrap();
            assert_eq!(answer(r).await.0.as_deref(), Some("16")); // UNAUTHENTICATED
        }
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
        let mut right = call(CHECK.path, ping);
        right
            .headers_mut()
            .insert(crate::credential::INTERNAL_TOKEN, token.parse().unwrap());
        let r = server.oneshot(right).await.unwrap();
        assert_eq!(answer(r).await.0.as_deref(), Some("0"));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
