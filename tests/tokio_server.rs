//! The tokio server: shutdown answers what was received. (The admission
//! rules, on both servers, are in `admission.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{localhost, pki, role_config, runtime, server_config};
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{ClientError, Handler, Reply, RequestContext};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::AsyncCalls;
use mbaps_tokio::{TokioClient, TokioServer};

/// Answers register 999 slowly (and says when it starts), everything
/// else at once.
struct SlowAt999(RegisterMap, Arc<tokio::sync::Notify>);

impl Handler for SlowAt999 {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        if let Request::ReadHoldingRegisters { address: 999, .. } = request {
            self.1.notify_one();
            std::thread::sleep(Duration::from_millis(300));
        }
        self.0.handle(context, request, reply)
    }
}

#[test]
fn shutdown_answers_the_requests_already_received_then_closes() {
    let started = Arc::new(tokio::sync::Notify::new());
    runtime().block_on(async {
        let server = TokioServer::bind(
            "127.0.0.1:0",
            server_config(pki()),
            SlowAt999(RegisterMap::new(Tables::preset()), Arc::clone(&started)),
        )
        .await
        .unwrap()
        .spawn()
        .unwrap();
        let address = server.local_addr();
        let client = TokioClient::connect(address, role_config("viewer"), localhost())
            .await
            .unwrap();
        let slow = tokio::spawn({
            let client = client.clone();
            async move { client.read_holding_registers(1, 999, 1).await }
        });
        // Shut down while the request is in the handler.
        started.notified().await;
        server.shutdown().await.unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), [999]);
        // Then the session is closed, and nobody listens any more.
        assert!(matches!(
            client.read_holding_registers(1, 0, 1).await,
            Err(ClientError::Closed(_))
        ));
        assert!(
            TokioClient::connect(address, role_config("viewer"), localhost())
                .await
                .is_err()
        );
    });
}
