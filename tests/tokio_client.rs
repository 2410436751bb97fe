//! The tokio client: typed calls for every function code, calls in flight
//! together from many tasks, per-call timeouts, cancellation, errors that
//! say what happened, reconnection, closing.

mod common;

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use common::{
    Adapter, Bounds, SlowLaterAt999, client_config, localhost, log_sink, pki, plain_client,
    preset_server, reverse_order_device, role_config, runtime, server_config, start, start_later,
    wait_for_log,
};
use mbaps_admission::SessionLog;
use mbaps_codec::{ExceptionCode, FileRecordRead, FileRecordWrite, ReadDeviceIdCode, Registers};
use mbaps_session::rustls;
use mbaps_session::{ClientError, CloseReason, ServerEvent, SessionError};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::AsyncCalls;
use mbaps_tokio::{Reconnect, TokioClient, TokioServer};

#[test]
fn every_typed_call_returns_typed_values() {
    let map = RegisterMap::new(Tables::preset());
    map.tables().holding_registers[0x04DE..0x04E1].copy_from_slice(&[2, 440, 4740]);
    let running = start(Adapter::Tokio, server_config(pki()), map.clone(), |_| {});
    runtime().block_on(async {
        let client = TokioClient::connect(running.address, role_config("operator"), localhost())
            .await
            .unwrap();
        let on: Vec<bool> = (0..5).map(|n| n % 3 == 0).collect();
        assert_eq!(client.read_coils(1, 0, 5).await.unwrap(), on);
        assert_eq!(client.read_discrete_inputs(1, 0, 5).await.unwrap(), on);
        assert_eq!(
            client.read_holding_registers(1, 10, 2).await.unwrap(),
            [10, 11]
        );
        assert_eq!(client.read_input_registers(1, 7, 1).await.unwrap(), [7]);
        client.write_single_coil(1, 1, true).await.unwrap();
        client
            .write_multiple_coils(1, 4, &[true, false])
            .await
            .unwrap();
        assert_eq!(
            client.read_coils(1, 0, 6).await.unwrap(),
            [true, true, false, true, true, false]
        );
        client.write_single_register(1, 200, 5).await.unwrap();
        client
            .write_multiple_registers(1, 201, &[6, 7])
            .await
            .unwrap();
        client
            .mask_write_register(1, 200, 0x00F0, 0x0003)
            .await
            .unwrap();
        assert_eq!(
            client
                .read_write_multiple_registers(1, 200, 3, 203, &[8])
                .await
                .unwrap(),
            [3, 6, 7]
        );
        assert_eq!(
            client.read_fifo_queue(1, 0x04DE).await.unwrap(),
            [440, 4740]
        );
        let record = [FileRecordWrite {
            file_number: 2,
            record_number: 0,
            data: Registers::from_values(&[1, 2, 3]),
        }];
        client.write_file_records(1, &record).await.unwrap();
        let read = [FileRecordRead {
            file_number: 2,
            record_number: 1,
            record_length: 2,
        }];
        assert_eq!(
            client.read_file_records(1, &read).await.unwrap(),
            [vec![2, 3]]
        );
        let id = client
            .read_device_identification(1, ReadDeviceIdCode::Basic, 0)
            .await
            .unwrap();
        assert_eq!(id.objects[0], (0, b"mbaps".to_vec()));
        assert!(!id.more_follows);
        // The operator's groups do not include user-defined codes.
        assert!(matches!(
            client.user_defined(1, 65, &[1, 2]).await,
            Err(ClientError::Exception(ExceptionCode::IllegalFunction))
        ));
        assert!(matches!(
            client.read_holding_registers(1, 65_535, 2).await,
            Err(ClientError::Exception(ExceptionCode::IllegalDataAddress))
        ));
    });
    running.stop();
}

#[test]
fn calls_from_many_tasks_are_in_flight_together_and_get_their_own_answers() {
    // The device answers nothing until it holds 8 requests, then answers
    // them newest first.
    let device = reverse_order_device(8);
    runtime().block_on(async {
        let client = TokioClient::connect(device, plain_client(), localhost())
            .await
            .unwrap();
        let calls: Vec<_> = (0..8u16)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.read_holding_registers(1, i * 100, 3).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let base = i as u16 * 100;
            assert_eq!(call.await.unwrap().unwrap(), [base, base + 1, base + 2]);
        }
    });
}

#[test]
fn a_cancelled_call_does_not_put_the_connection_out_of_step() {
    let device = reverse_order_device(2);
    runtime().block_on(async {
        let client = TokioClient::connect(device, plain_client(), localhost())
            .await
            .unwrap();
        // Alone, this call gets no answer: its future is dropped.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            client.read_holding_registers(1, 10, 1),
        )
        .await;
        assert!(abandoned.is_err());
        // This one releases both answers; the abandoned one's is dropped.
        assert_eq!(client.read_holding_registers(1, 20, 1).await.unwrap(), [20]);
    });
}

#[test]
fn a_call_made_while_another_reads_its_own_answer_is_sent_at_once() {
    // The device answers nothing until it holds 2 requests. The first call
    // finds nothing in flight and makes its exchange on its own task; the
    // second, made meanwhile, must reach the device without waiting for
    // the first to end, or neither is ever answered.
    let device = reverse_order_device(2);
    runtime().block_on(async {
        let client = TokioClient::connect(device, plain_client(), localhost())
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        for round in 0..20u16 {
            let first = tokio::spawn({
                let client = client.clone();
                async move { client.read_holding_registers(1, round, 1).await }
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
            let second = client.read_holding_registers(1, 1000 + round, 1).await;
            assert_eq!(second.unwrap(), [1000 + round], "round {round}");
            assert_eq!(first.await.unwrap().unwrap(), [round], "round {round}");
        }
    });
}

/// Polls `future` once: its output, if it is ready.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut future).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// A server that answers a read of register 999 after 50 ms, anything
/// else at once.
fn answering_999_after_50_ms() -> common::Running {
    let slow = SlowLaterAt999 {
        slow: Duration::from_millis(50),
    };
    start_later(server_config(pki()), slow, |_| {}, Bounds::default())
}

/// A viewer's client of `running`, with `timeout` for its calls.
async fn viewer(running: &common::Running, timeout: Duration) -> TokioClient {
    TokioClient::connect(running.address, role_config("viewer"), localhost())
        .await
        .unwrap()
        .with_timeout(timeout)
}

#[test]
fn a_call_whose_future_is_not_polled_holds_up_no_other_call_nor_close() {
    // A call made on an idle connection waits for its answer on its own
    // task. Its future, polled once and then left alone (the losing branch
    // of a `select!` kept for later), must not stop the connection: the
    // next call is answered, the left call still gets its own answer when
    // polled again, and a close ends. A read of register 999 is answered
    // after 50 ms, so the left call is surely waiting when it is left.
    let running = answering_999_after_50_ms();
    runtime().block_on(async {
        let client = viewer(&running, Duration::from_millis(5000)).await;
        for round in 0..5 {
            let mut left = Box::pin(client.read_holding_registers(1, 999, 1));
            let first = poll_once(&mut left).await;
            assert!(first.is_none(), "round {round}: {first:?}");
            // Its answer comes while nobody polls it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let next = tokio::time::timeout(
                Duration::from_secs(2),
                client.read_holding_registers(1, 5, 1),
            )
            .await
            .expect("a call stalled behind a future nobody polls");
            assert_eq!(next.unwrap(), [5], "round {round}");
            assert_eq!(left.await.unwrap(), [999], "round {round}");
        }
        let mut left = Box::pin(client.read_holding_registers(1, 999, 1));
        assert!(poll_once(&mut left).await.is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::timeout(Duration::from_secs(2), client.close())
            .await
            .expect("close stalled behind a future nobody polls");
        // Read before the close (by the driver, had it the socket) or
        // aborted by it.
        match left.await {
            Ok(values) => assert_eq!(values, [999]),
            Err(error) => assert!(
                matches!(error, ClientError::Closed(CloseReason::LocalClose)),
                "{error}"
            ),
        }
    });
    running.stop();
}

#[test]
fn a_call_left_unpolled_past_its_timeout_still_gets_the_answer_that_came_in_time() {
    // Its answer (at 50 ms) wakes a task that does not poll it; nothing
    // else happens on the connection. At its deadline the driver reads
    // what came before it: the answer, not a timeout.
    let running = answering_999_after_50_ms();
    runtime().block_on(async {
        let client = viewer(&running, Duration::from_millis(400)).await;
        let mut left = Box::pin(client.read_holding_registers(1, 999, 1));
        assert!(poll_once(&mut left).await.is_none());
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(left.await.unwrap(), [999]);
    });
    running.stop();
}

#[test]
fn a_client_whose_runtime_ended_fails_its_calls_instead_of_hanging() {
    let running = start(
        Adapter::Tokio,
        server_config(pki()),
        RegisterMap::new(Tables::preset()),
        |_| {},
    );
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = first
        .block_on(TokioClient::connect(
            running.address,
            role_config("viewer"),
            localhost(),
        ))
        .unwrap();
    // The client's task ends with the runtime it was spawned on.
    drop(first);
    runtime().block_on(async {
        let call = tokio::time::timeout(
            Duration::from_secs(5),
            client.read_holding_registers(1, 0, 1),
        )
        .await
        .expect("a call hung on a client whose task is gone");
        assert!(call.is_err(), "{call:?}");
    });
    running.stop();
}

#[test]
fn with_one_call_in_flight_at_most_calls_from_many_tasks_take_turns() {
    // One place: a call sent on its caller's task takes it, and the calls
    // made meanwhile wait in the driver until it is answered.
    let device = reverse_order_device(1);
    let config = mbaps_session::ClientConfig::plain()
        .max_outstanding(1)
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    runtime().block_on(async {
        let client = TokioClient::connect(device, config, localhost())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8u16)
            .map(|task| {
                let client = client.clone();
                tokio::spawn(async move {
                    for call in 0..50u16 {
                        let address = task * 100 + call;
                        let read = client.read_holding_registers(1, address, 1).await;
                        assert_eq!(read.unwrap(), [address], "task {task}, call {call}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn a_call_times_out_on_its_own_timeout() {
    let device = reverse_order_device(usize::MAX);
    runtime().block_on(async {
        let client = TokioClient::connect(device, plain_client(), localhost())
            .await
            .unwrap()
            .with_timeout(Duration::from_millis(50));
        assert!(matches!(
            client.read_holding_registers(1, 0, 1).await,
            Err(ClientError::Timeout)
        ));
    });
}

#[test]
#[allow(clippy::disallowed_methods)] // a second PKI, valid now
fn a_server_from_an_unknown_ca_is_refused_with_the_reason() {
    let other = mbaps_test_pki::TestPki::generate(std::time::SystemTime::now()).unwrap();
    let running = start(
        Adapter::Tokio,
        server_config(&other),
        RegisterMap::new(Tables::preset()),
        |_| {},
    );
    let refused = runtime().block_on(TokioClient::connect(
        running.address,
        role_config("operator"),
        localhost(),
    ));
    match refused {
        // Same names as our CA, other keys: the signature does not verify.
        Err(ClientError::Session(SessionError::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature | rustls::CertificateError::UnknownIssuer,
        )))) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected to a server of another CA"),
    }
    running.stop();
}

#[test]
fn a_client_the_server_refuses_learns_the_alert() {
    let running = start(
        Adapter::Tokio,
        server_config(pki()),
        RegisterMap::new(Tables::preset()),
        |_| {},
    );
    let config = client_config(pki(), &pki().untrusted_client);
    let result = runtime().block_on(async {
        let client = TokioClient::connect(running.address, config, localhost()).await?;
        client.read_holding_registers(1, 0, 1).await
    });
    match result {
        Err(ClientError::Session(SessionError::Tls(rustls::Error::AlertReceived(_)))) => {}
        other => panic!("{other:?}"),
    }
    running.stop();
}

#[test]
fn a_reconnecting_client_comes_back_after_the_server_restarts() {
    let map = RegisterMap::new(Tables::preset());
    runtime().block_on(async {
        let first = TokioServer::bind("127.0.0.1:0", server_config(pki()), map.clone())
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let address = first.local_addr();
        let client = TokioClient::builder(role_config("viewer"), localhost())
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                max_attempts: None,
            })
            .connect(address)
            .await
            .unwrap();
        assert_eq!(client.read_holding_registers(1, 3, 1).await.unwrap(), [3]);
        first.shutdown().await.unwrap();
        let second = TokioServer::bind(address, server_config(pki()), map.clone())
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let mut answered = None;
        for _ in 0..50 {
            match client.read_holding_registers(1, 4, 1).await {
                Ok(values) => {
                    answered = Some(values);
                    break;
                }
                // Calls while the link is down fail; the client reconnects.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(answered, Some(vec![4]));
        second.shutdown().await.unwrap();
    });
}

#[test]
fn without_reconnection_a_lost_connection_ends_every_later_call() {
    runtime().block_on(async {
        let server = preset_server().await;
        let client = TokioClient::connect(server.local_addr(), role_config("viewer"), localhost())
            .await
            .unwrap();
        server.shutdown().await.unwrap();
        for _ in 0..2 {
            assert!(matches!(
                client.read_holding_registers(1, 0, 1).await,
                Err(ClientError::Closed(_) | ClientError::Session(_) | ClientError::Io(_))
            ));
        }
        assert!(client.is_closed());
    });
}

#[test]
fn close_ends_the_calls_in_flight_and_closes_with_close_notify() {
    let (log, sink) = log_sink();
    // A read of register 999 is answered after a long while: in flight
    // when the client closes.
    let slow = SlowLaterAt999 {
        slow: Duration::from_secs(30),
    };
    let running = start_later(server_config(pki()), slow, sink, Bounds::default());
    runtime().block_on(async {
        let client = TokioClient::connect(running.address, role_config("viewer"), localhost())
            .await
            .unwrap();
        let in_flight = tokio::spawn({
            let client = client.clone();
            async move { client.read_holding_registers(1, 999, 1).await }
        });
        // Answered at once, so the slow one is surely sent by now.
        assert_eq!(client.read_holding_registers(1, 5, 1).await.unwrap(), [5]);
        client.close().await;
        assert!(matches!(
            in_flight.await.unwrap(),
            Err(ClientError::Closed(CloseReason::LocalClose))
        ));
        assert!(client.is_closed());
        assert!(matches!(
            client.read_holding_registers(1, 5, 1).await,
            Err(ClientError::Closed(CloseReason::LocalClose))
        ));
    });
    // The server saw close_notify: a clean close, not a lost connection.
    wait_for_log(&log, |entry| {
        matches!(
            entry,
            SessionLog::Event {
                event: ServerEvent::Closed(CloseReason::PeerClosed),
                ..
            }
        )
    });
    running.stop();
}

#[test]
fn close_stops_a_client_waiting_to_reconnect() {
    runtime().block_on(async {
        let server = preset_server().await;
        let client = TokioClient::builder(role_config("viewer"), localhost())
            .reconnect(Reconnect {
                initial_delay: Duration::from_secs(3600),
                max_delay: Duration::from_secs(3600),
                max_attempts: None,
            })
            .connect(server.local_addr())
            .await
            .unwrap();
        server.shutdown().await.unwrap();
        // The connection is lost: the client waits an hour to reconnect.
        assert!(client.read_holding_registers(1, 0, 1).await.is_err());
        tokio::time::timeout(Duration::from_secs(10), client.close())
            .await
            .expect("close waited for the reconnection");
        assert!(client.is_closed());
    });
}

/// A server that, once the handshake is done, sends answers to calls
/// nobody made (dropped by the client, one after another) as fast as it
/// can, and never reads again.
fn flooding_server() -> std::net::SocketAddr {
    let tls = std::sync::Arc::new(server_config(pki()).tls().unwrap().clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(tls).unwrap();
        while conn.is_handshaking() {
            if conn.complete_io(&mut socket).is_err() {
                return;
            }
        }
        let mut answers = Vec::new();
        for id in 0x8000..0x8200u16 {
            let [hi, lo] = id.to_be_bytes();
            answers.extend_from_slice(&[hi, lo, 0, 0, 0, 5, 1, 0x03, 2, 0, 7]);
        }
        loop {
            if std::io::Write::write_all(&mut conn.writer(), &answers).is_err() {
                return;
            }
            while conn.wants_write() {
                if conn.write_tls(&mut socket).is_err() {
                    return;
                }
            }
        }
    });
    address
}

#[test]
fn close_is_heard_while_a_server_keeps_the_socket_readable() {
    let address = flooding_server();
    runtime().block_on(async {
        let client = TokioClient::connect(address, role_config("viewer"), localhost())
            .await
            .unwrap();
        // Let the flood start.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!client.is_closed(), "the flood ended the session");
        // The server never answers close_notify: the close ends at the
        // session's close timeout (5 s), if the request is heard at all.
        let started = tokio::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        assert!(closed.is_ok(), "close() was not heard under the flood");
        assert!(client.is_closed());
        // The session lived through the flood until the close timeout.
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn close_ends_while_a_server_takes_nothing_we_send() {
    runtime().block_on(async {
        let address = common::deaf_server().await;
        let client = TokioClient::connect(address, role_config("operator"), localhost())
            .await
            .unwrap()
            .with_timeout(Duration::from_millis(20));
        // Rounds of 16 long writes, each timing out unanswered, until the
        // kernel takes no more of them (the send queue stops growing).
        let values = [0u16; 123];
        let mut queued = 0;
        for round in 0.. {
            assert!(round < 2000, "the send queue never stopped growing");
            let calls: Vec<_> = (0..16)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(
                        async move { client.write_multiple_registers(1, 0, &values).await },
                    )
                })
                .collect();
            for call in calls {
                assert!(matches!(call.await.unwrap(), Err(ClientError::Timeout)));
            }
            let now = common::send_queue_to(address.port());
            if now > 0 && now == queued {
                break;
            }
            queued = now;
        }
        // The output waits, the session is alive, and its driver is not
        // stuck in a write: close() ends at the close timeout (5 s), as
        // close_notify cannot go out either.
        assert!(!client.is_closed());
        let started = tokio::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(15), client.close()).await;
        assert!(closed.is_ok(), "close() hung behind a write nobody takes");
        assert!(client.is_closed());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(4), "{waited:?}");
        assert!(waited < Duration::from_secs(8), "{waited:?}");
    });
}
