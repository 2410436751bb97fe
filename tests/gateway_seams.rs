//! Where the gateway's features meet, over real sockets: clients sharing
//! one slow device (the operator is served while viewers flood it), a
//! device that accepts and closes (dialled a few times a second, said
//! once), a device that answers under a transaction id it was not given
//! (0x0B at once), two routes to one device that disagree (refused), and
//! a plain front flooded with anonymous connects (the plain clients stay).
#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use common::gateway::{client, exception, tls_front};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{localhost, pki, plain_client, role_config, runtime, server_config};
use mbaps_admission::AdmissionLimits;
use mbaps_codec::ExceptionCode;
use mbaps_session::upstream::LinkEvent;
use mbaps_session::{ClientError, Pdu, ServerConfig};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::{
    AsyncCalls, AsyncHandler, Device, Gateway, GatewayError, GatewayLog, IncomingRequest, Later,
    Route, ServerHandle, TokioClient, TokioServer, UpstreamLimits,
};

/// A device's own policy: a plain device authorizes nothing itself.
fn policy_allowing_all() -> mbaps_authz::Policy {
    mbaps_authz::Policy::from_toml(
        "[no_role]\nallow = [ { functions = [\"read\", \"write\", \"diagnostic\"] } ]\n",
    )
    .unwrap()
}

/// A device that takes `answer_time` for each read (register n holds n).
#[derive(Clone)]
struct SlowDevice {
    answer_time: Duration,
}

impl AsyncHandler for SlowDevice {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        let answer_time = self.answer_time;
        async move {
            tokio::time::sleep(answer_time).await;
            common::registers_from(&request)
        }
    }
}

async fn slow_device(answer_time: Duration) -> ServerHandle {
    let config = ServerConfig::plain(policy_allowing_all(), None)
        .build()
        .unwrap();
    TokioServer::bind("127.0.0.1:0", config, Later(SlowDevice { answer_time }))
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// The gateway's log, kept.
fn logged() -> (
    Arc<Mutex<Vec<GatewayLog>>>,
    impl Fn(&GatewayLog) + Send + Sync,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&log);
    (log, move |entry: &GatewayLog| {
        keep.lock().unwrap().push(entry.clone())
    })
}

#[test]
fn six_flooding_viewers_never_get_the_operator_answered_busy() {
    runtime().block_on(async {
        let answer_time = Duration::from_millis(20);
        let device = slow_device(answer_time).await;
        // The defaults: one on the wire, 64 waiting, 16 of them per session.
        let gateway = Gateway::to(
            Device::plain(device.local_addr().to_string()).limits(UpstreamLimits::default()),
        )
        .unwrap();
        let front = tls_front(gateway).await;
        let busy = Arc::new(AtomicUsize::new(0));
        let mut floods = Vec::new();
        for _ in 0..6 {
            let viewer = client(&front, "viewer").await;
            for _ in 0..32 {
                let viewer = viewer.clone();
                let busy = Arc::clone(&busy);
                floods.push(tokio::spawn(async move {
                    loop {
                        match viewer.read_holding_registers(1, 0, 1).await {
                            Ok(_) => {}
                            Err(ClientError::Exception(ExceptionCode::ServerDeviceBusy)) => {
                                busy.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => return,
                        }
                    }
                }));
            }
        }
        // The flood is on: the viewers' bursts are past their share.
        let deadline = Instant::now() + Duration::from_secs(10);
        while busy.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "the viewers never filled their share"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let operator = client(&front, "operator").await;
        let mut waits = Vec::new();
        for round in 0..30u16 {
            let asked = Instant::now();
            let values = operator.read_holding_registers(1, round, 1).await;
            assert_eq!(values.unwrap(), [round], "round {round}");
            waits.push(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        waits.sort();
        // Behind at most one request of each of the six viewers and the one
        // on the wire: about 7 answer times, far from the 64 of a FIFO.
        let worst = *waits.last().unwrap();
        assert!(
            worst < answer_time * 25,
            "the operator waited up to {worst:?} (p50 {:?})",
            waits[waits.len() / 2]
        );
        for flood in floods {
            flood.abort();
        }
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}

/// A device that accepts every connection and closes it at once; counts
/// the connects.
fn accept_and_close() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connects);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, connects)
}

#[test]
fn a_device_that_accepts_and_closes_is_dialled_a_few_times_a_second_and_said_once() {
    runtime().block_on(async {
        let (address, connects) = accept_and_close();
        let (log, keep) = logged();
        let gateway = Gateway::builder()
            .routes([Route {
                units: 0..=255,
                device: Device::plain(address.to_string()).limits(UpstreamLimits {
                    timeout: Duration::from_millis(200),
                    ..UpstreamLimits::default()
                }),
                rewrite_unit: None,
            }])
            .on_log(keep)
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let answer = viewer.read_holding_registers(1, 0, 1).await;
            assert!(
                matches!(
                    exception(answer),
                    ExceptionCode::GatewayPathUnavailable
                        | ExceptionCode::GatewayTargetFailedToRespond
                ),
                "a device that never answers"
            );
        }
        // 100 ms doubling: about 6 attempts in 3 s (13,000 a second before).
        let dialled = connects.load(Ordering::SeqCst);
        assert!(dialled <= 12, "{dialled} connects in 3 s");
        assert!(dialled >= 2, "{dialled} connects in 3 s");
        let flapping = log
            .lock()
            .unwrap()
            .iter()
            .filter(|entry| {
                matches!(
                    entry,
                    GatewayLog::Link {
                        event: LinkEvent::Flapping { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(flapping, 1, "{:?}", log.lock().unwrap());
        front.shutdown().await.unwrap();
    });
}

/// A device that answers each request under its transaction id plus one.
fn wrong_transaction_device() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut header = [0u8; 7];
                while stream.read_exact(&mut header).is_ok() {
                    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
                    let mut pdu = vec![0u8; len.saturating_sub(1)];
                    if stream.read_exact(&mut pdu).is_err() {
                        return;
                    }
                    let id = u16::from_be_bytes([header[0], header[1]]).wrapping_add(1000);
                    let [high, low] = id.to_be_bytes();
                    let answer = [high, low, 0, 0, 0, 5, header[6], 0x03, 2, 0, 7];
                    if stream.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[test]
fn an_answer_under_a_transaction_id_never_sent_is_0x0b_at_once_and_logged() {
    runtime().block_on(async {
        let (log, keep) = logged();
        let gateway = Gateway::builder()
            .routes([Route {
                units: 0..=255,
                device: Device::plain(wrong_transaction_device().to_string()).limits(
                    UpstreamLimits {
                        timeout: Duration::from_secs(20),
                        ..UpstreamLimits::default()
                    },
                ),
                rewrite_unit: None,
            }])
            .on_log(keep)
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        for _ in 0..3 {
            let asked = Instant::now();
            assert_eq!(
                exception(viewer.read_holding_registers(1, 0, 1).await),
                ExceptionCode::GatewayTargetFailedToRespond
            );
            // Not the 20 s of the upstream timeout.
            assert!(asked.elapsed() < Duration::from_secs(10));
        }
        let log = log.lock().unwrap().clone();
        let dropped = log
            .iter()
            .filter(|entry| {
                matches!(
                    entry,
                    GatewayLog::Link {
                        event: LinkEvent::DroppedAnswer { in_flight, .. },
                        ..
                    } if in_flight.len() == 1
                )
            })
            .count();
        assert_eq!(dropped, 3, "{log:?}");
        let line = log
            .iter()
            .map(ToString::to_string)
            .find(|line| line.contains("dropped"))
            .unwrap();
        assert!(line.contains("transaction id"), "{line}");
        front.shutdown().await.unwrap();
    });
}

#[test]
fn two_routes_to_one_device_must_agree_on_limits_and_identity() {
    let plain = |limits: UpstreamLimits| Device::plain("127.0.0.1:1502").limits(limits);
    let secure = |role: &str| {
        Device::tls("127.0.0.1:1502", role_config(role), localhost())
            .limits(UpstreamLimits::default())
    };
    let start = |first: Device, second: Device| {
        Gateway::builder()
            .routes([
                Route {
                    units: 1..=1,
                    device: first,
                    rewrite_unit: None,
                },
                Route {
                    units: 2..=2,
                    device: second,
                    rewrite_unit: None,
                },
            ])
            .start()
    };
    let queue_of_8 = UpstreamLimits {
        queue: 8,
        ..UpstreamLimits::default()
    };
    let error = start(plain(UpstreamLimits::default()), plain(queue_of_8))
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            GatewayError::SharedDeviceDiffers { what: "limits", .. }
        ),
        "{error:?}"
    );
    // One device as the operator for unit 1 and as a viewer for unit 2:
    // one connection cannot be both (it would be the operator's).
    let error = start(secure("operator"), secure("viewer")).err().unwrap();
    assert!(
        matches!(error, GatewayError::SharedDeviceDiffers { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:1502"), "{error}");
    runtime().block_on(async {
        assert!(start(secure("viewer"), secure("viewer")).is_ok());
        assert!(start(plain(queue_of_8), plain(queue_of_8)).is_ok());
    });
}

#[test]
fn a_flood_of_anonymous_connects_leaves_plain_clients_in_place() {
    runtime().block_on(async {
        let config = ServerConfig::plain(policy_allowing_all(), None)
            .build()
            .unwrap();
        let front = TokioServer::bind("127.0.0.1:0", config, RegisterMap::new(Tables::preset()))
            .await
            .unwrap()
            .admission(AdmissionLimits {
                max_sessions: 8,
                max_handshakes: 32,
                max_handshakes_per_address: 8,
            })
            .spawn()
            .unwrap();
        let address = front.local_addr();
        let idle = TokioClient::connect(address, plain_client(), localhost())
            .await
            .unwrap();
        idle.read_holding_registers(1, 0, 1).await.unwrap();
        let poller = TokioClient::connect(address, plain_client(), localhost())
            .await
            .unwrap();
        // Established before the flood (its first request decoded): a
        // plain connection without one is a pending handshake, which a
        // flood from the same address may drop, by design.
        poller.read_holding_registers(1, 0, 1).await.unwrap();
        let polls = tokio::spawn(async move {
            for _ in 0..30 {
                poller.read_holding_registers(1, 0, 1).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, ClientError>(())
        });
        // 1,000 connects, half of them held open, none sending a request.
        let flood = tokio::task::spawn_blocking(move || {
            let mut held = Vec::new();
            for n in 0..1_000 {
                if let Ok(stream) = TcpStream::connect(address)
                    && n % 2 == 0
                {
                    held.push(stream);
                }
            }
            held
        });
        let held = flood.await.unwrap();
        polls.await.unwrap().expect("the poller was never closed");
        assert_eq!(idle.read_holding_registers(1, 0, 1).await.unwrap(), [0]);
        drop(held);
        front.shutdown().await.unwrap();
    });
}

/// A device that takes `answer_time` for each write and keeps what it was
/// asked to write.
#[derive(Clone)]
struct SlowWriteDevice {
    answer_time: Duration,
    written: Arc<Mutex<Vec<(u16, u16)>>>,
}

impl AsyncHandler for SlowWriteDevice {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        let (answer_time, written) = (self.answer_time, Arc::clone(&self.written));
        async move {
            tokio::time::sleep(answer_time).await;
            match request.request() {
                Ok(mbaps_codec::Request::WriteSingleRegister { address, value }) => {
                    written.lock().unwrap().push((address, value));
                    let echo = mbaps_codec::Response::WriteSingleRegister { address, value };
                    Ok(Pdu::encode_response(&echo).unwrap())
                }
                _ => Err(ExceptionCode::IllegalFunction),
            }
        }
    }
}

#[test]
fn a_write_whose_client_has_gone_is_carried_out_and_on_the_trail_with_the_device_answer() {
    use mbaps_admission::AuditEntry;
    use mbaps_session::{LateAnswer, RequestOutcome, Verdict};
    let runtime = runtime();
    let written = Arc::new(Mutex::new(Vec::new()));
    let trail = Arc::new(Mutex::new(Vec::<AuditEntry>::new()));
    let (front, device) = runtime.block_on(async {
        let config = ServerConfig::plain(policy_allowing_all(), None)
            .build()
            .unwrap();
        let handler = SlowWriteDevice {
            answer_time: Duration::from_millis(300),
            written: Arc::clone(&written),
        };
        let device = TokioServer::bind("127.0.0.1:0", config, Later(handler))
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let gateway = Gateway::to(Device::plain(device.local_addr().to_string())).unwrap();
        let kept = Arc::clone(&trail);
        let front = TokioServer::bind("127.0.0.1:0", server_config(pki()), gateway)
            .await
            .unwrap()
            .on_audit(move |entry| kept.lock().unwrap().push(entry.clone()))
            .spawn()
            .unwrap();
        (front, device)
    });
    // The operator sends a write, then its connection resets while the
    // device is carrying it out.
    let mut tls = common::attack::resetting_tls(front.local_addr(), "operator");
    let write = mbaps_codec::Request::WriteSingleRegister {
        address: 40,
        value: 4242,
    };
    tls.write_all(&common::attack::adu(3, &write)).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(tls);
    // The session ends; the write's record waits for the device.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries = trail.lock().unwrap().clone();
        if entries
            .iter()
            .any(|e| matches!(e, AuditEntry::SessionEnded { .. }))
            || Instant::now() > deadline
        {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        *written.lock().unwrap(),
        [(40, 4242)],
        "the device carried it out"
    );
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| match e {
            AuditEntry::SessionStarted { .. } => "start",
            AuditEntry::Request { .. } => "request",
            AuditEntry::SessionEnded { .. } => "end",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["start", "request", "end"], "{entries:#?}");
    let AuditEntry::Request { record, .. } = &entries[1] else {
        unreachable!()
    };
    assert_eq!(record.header.transaction_id, 3);
    assert_eq!(record.verdict, Verdict::Allowed);
    assert_eq!(
        record.outcome,
        RequestOutcome::Abandoned {
            late: Some(LateAnswer::Response)
        },
        "abandoned by its client, answered by the device"
    );
    assert!(record.latency() >= Duration::from_millis(250), "{record:?}");
    runtime.block_on(async {
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}
