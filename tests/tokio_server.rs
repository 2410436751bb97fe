//! The tokio server: shutdown answers what was received; an async handler
//! answers one session's requests together, and every request once. (The
//! admission rules, on both servers, are in `admission.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SlowAt999, localhost, pki, registers_from, role_config, runtime, server_config};
use mbaps_codec::{ExceptionCode, Request, Response};
use mbaps_session::{ClientError, Pdu};
use mbaps_tokio::AsyncCalls;
use mbaps_tokio::{AsyncHandler, IncomingRequest, Later, ServerHandle, TokioClient, TokioServer};

#[test]
fn shutdown_answers_the_requests_already_received_then_closes() {
    let slow = SlowAt999::new(Duration::from_millis(300));
    let started = slow.started();
    runtime().block_on(async {
        let server = TokioServer::bind("127.0.0.1:0", server_config(pki()), slow)
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

/// Answers every request with what `answer` makes of it, later.
struct Answering<F>(F);

impl<F, Fut> AsyncHandler for Answering<F>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static,
{
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        (self.0)(request)
    }
}

async fn serve_later(handler: impl AsyncHandler) -> (ServerHandle, TokioClient) {
    let server = TokioServer::bind("127.0.0.1:0", server_config(pki()), Later(handler))
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let client = TokioClient::connect(server.local_addr(), role_config("viewer"), localhost())
        .await
        .unwrap();
    (server, client)
}

#[test]
fn an_async_handler_answers_the_requests_of_one_session_together() {
    // No answer until eight requests are in the handler at once: answered
    // one after the other, none would ever be.
    let together = Arc::new(tokio::sync::Barrier::new(8));
    runtime().block_on(async {
        let (server, client) = serve_later(Answering(move |request: IncomingRequest| {
            let together = Arc::clone(&together);
            async move {
                together.wait().await;
                registers_from(&request)
            }
        }))
        .await;
        let calls: Vec<_> = (0..8u16)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.read_holding_registers(1, i * 10, 2).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let base = i as u16 * 10;
            assert_eq!(call.await.unwrap().unwrap(), [base, base + 1]);
        }
        server.shutdown().await.unwrap();
    });
}

#[test]
fn an_answer_that_panics_or_answers_another_function_is_a_device_failure() {
    runtime().block_on(async {
        let (server, client) = serve_later(Answering(|request: IncomingRequest| async move {
            match request.request() {
                Ok(Request::ReadHoldingRegisters { address: 13, .. }) => {
                    panic!("the application fails")
                }
                Ok(Request::ReadHoldingRegisters { address: 14, .. }) => {
                    Pdu::encode_response(&Response::WriteSingleRegister {
                        address: 14,
                        value: 0,
                    })
                    .map_err(|_| ExceptionCode::ServerDeviceFailure)
                }
                _ => registers_from(&request),
            }
        }))
        .await;
        for address in [13, 14] {
            assert!(
                matches!(
                    client.read_holding_registers(1, address, 1).await,
                    Err(ClientError::Exception(ExceptionCode::ServerDeviceFailure))
                ),
                "register {address}"
            );
        }
        // The session goes on.
        assert_eq!(
            client.read_holding_registers(1, 3, 2).await.unwrap(),
            [3, 4]
        );
        server.shutdown().await.unwrap();
    });
}

#[test]
fn shutdown_waits_for_the_async_answers_already_under_way() {
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = Arc::clone(&started);
    runtime().block_on(async {
        let (server, client) = serve_later(Answering(move |request: IncomingRequest| {
            let started = Arc::clone(&signal);
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                registers_from(&request)
            }
        }))
        .await;
        let slow = tokio::spawn({
            let client = client.clone();
            async move { client.read_holding_registers(1, 7, 1).await }
        });
        started.notified().await;
        server.shutdown().await.unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), [7]);
        assert!(matches!(
            client.read_holding_registers(1, 0, 1).await,
            Err(ClientError::Closed(_))
        ));
    });
}
