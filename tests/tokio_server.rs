//! The tokio server: the session bound closes the oldest idle session,
//! refuses when none is idle, and shutdown answers what was received.

mod common;

use std::time::Duration;

use common::{localhost, log_sink, pki, role_config, runtime, server_config};
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{ClientError, Handler, RegisterMap, Reply, RequestContext, SessionLog, Tables};
use mbaps_tokio::{TokioClient, TokioServer};

/// A server of the example policy with at most `max` sessions.
async fn bounded_server(
    max: usize,
    sink: impl Fn(&SessionLog) + Send + Sync + 'static,
) -> mbaps_tokio::ServerHandle {
    TokioServer::bind(
        "127.0.0.1:0",
        server_config(pki()),
        RegisterMap::new(Tables::preset()),
    )
    .await
    .unwrap()
    .max_sessions(max)
    .on_log(sink)
    .spawn()
    .unwrap()
}

#[test]
fn at_the_bound_the_oldest_idle_session_is_closed_to_make_room() {
    let (log, sink) = log_sink();
    runtime().block_on(async {
        let server = bounded_server(2, sink).await;
        let address = server.local_addr();
        let connect = || TokioClient::connect(address, role_config("viewer"), localhost());
        let first = connect().await.unwrap();
        let second = connect().await.unwrap();
        // The first is active again: the second is now the oldest idle.
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.read_holding_registers(1, 0, 1).await.unwrap();
        let third = connect().await.unwrap();
        assert_eq!(third.read_holding_registers(1, 5, 1).await.unwrap(), [5]);
        assert_eq!(first.read_holding_registers(1, 6, 1).await.unwrap(), [6]);
        assert!(second.read_holding_registers(1, 7, 1).await.is_err());
        server.shutdown().await.unwrap();
    });
    let log = log.lock().unwrap();
    let evicted: Vec<_> = log
        .iter()
        .filter(|e| matches!(e, SessionLog::Evicted { .. }))
        .collect();
    assert_eq!(evicted.len(), 1, "{log:#?}");
}

#[test]
fn at_the_bound_with_no_idle_session_a_connection_is_refused() {
    let (log, sink) = log_sink();
    runtime().block_on(async {
        let server = bounded_server(1, sink).await;
        // A connection that never starts its handshake is not idle.
        let _silent = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused =
            TokioClient::connect(server.local_addr(), role_config("viewer"), localhost()).await;
        assert!(refused.is_err());
        server.shutdown().await.unwrap();
    });
    assert!(log.lock().unwrap().iter().any(|e| matches!(
        e,
        SessionLog::Refused {
            max_sessions: 1,
            ..
        }
    )));
}

/// Answers register 999 slowly, everything else at once.
struct SlowAt999(RegisterMap);

impl Handler for SlowAt999 {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply,
    ) -> Result<(), ExceptionCode> {
        if let Request::ReadHoldingRegisters { address: 999, .. } = request {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.0.handle(context, request, reply)
    }
}

#[test]
fn shutdown_answers_the_requests_already_received_then_closes() {
    runtime().block_on(async {
        let server = TokioServer::bind(
            "127.0.0.1:0",
            server_config(pki()),
            SlowAt999(RegisterMap::new(Tables::preset())),
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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
