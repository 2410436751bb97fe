//! What the gateway tests share: a TLS front (the example policy) in
//! front of a gateway, a client of it with a role, and the exception a
//! call ended with.

use mbaps_codec::ExceptionCode;
use mbaps_session::ClientError;
use mbaps_tokio::{Gateway, ServerHandle, TokioClient, TokioServer};

use super::{localhost, pki, role_config, server_config};

/// A TLS front with the example policy in front of `gateway`.
pub async fn tls_front(gateway: Gateway) -> ServerHandle {
    TokioServer::bind("127.0.0.1:0", server_config(pki()), gateway)
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// A client of `front` with the certificate of `role`.
pub async fn client(front: &ServerHandle, role: &str) -> TokioClient {
    TokioClient::connect(front.local_addr(), role_config(role), localhost())
        .await
        .unwrap()
}

/// The exception a call ended with; anything else fails the test.
pub fn exception<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ExceptionCode {
    match result {
        Err(ClientError::Exception(code)) => code,
        other => panic!("expected an exception, got {other:?}"),
    }
}
