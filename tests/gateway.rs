//! The gateway end to end over real sockets: TLS clients with roles
//! through the gateway to a plain Modbus/TCP device, and a plain client
//! through a plain-front gateway to a Modbus/TCP Security device. Roles
//! allowed and denied (a denied write never reaches the device), a silent
//! device (0x0B), a device that is down (0x0A), one that restarts
//! (reconnected), a device that answers wrongly (0x0B), and twenty clients
//! sharing one device that takes one request at a time.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use common::gateway::{client, exception, tls_front};

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{localhost, plain_client, policy, role_config, runtime};
use mbaps_authz::Role;
use mbaps_codec::ExceptionCode;
use mbaps_session::{ClientError, Pdu, ServerConfig};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::{
    AsyncCalls, AsyncHandler, Device, Gateway, IncomingRequest, Later, Route, ServerHandle,
    TokioClient, TokioServer, UpstreamLimits,
};

/// A plain Modbus/TCP device with the preset registers, on `address`.
async fn plain_device(address: &str) -> ServerHandle {
    let config = ServerConfig::plain(policy_allowing_all(), None)
        .build()
        .unwrap();
    TokioServer::bind(address, config, RegisterMap::new(Tables::preset()))
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// A device's own policy: a plain device authorizes nothing itself.
fn policy_allowing_all() -> mbaps_authz::Policy {
    mbaps_authz::Policy::from_toml(
        "[no_role]\nallow = [ { functions = [\"read\", \"write\", \"diagnostic\"] } ]\n",
    )
    .unwrap()
}

async fn plain(address: SocketAddr) -> TokioClient {
    TokioClient::connect(address, plain_client(), localhost())
        .await
        .unwrap()
}

fn limits(timeout_ms: u64) -> UpstreamLimits {
    UpstreamLimits {
        timeout: Duration::from_millis(timeout_ms),
        ..UpstreamLimits::default()
    }
}

#[test]
fn roles_are_authorized_at_the_gateway_and_a_denied_write_never_reaches_the_device() {
    runtime().block_on(async {
        let device = plain_device("127.0.0.1:0").await;
        let gateway = Gateway::to(Device::plain(device.local_addr().to_string())).unwrap();
        let front = tls_front(gateway).await;
        let direct = plain(device.local_addr()).await;
        let viewer = client(&front, "viewer").await;
        let operator = client(&front, "operator").await;

        let through = viewer.read_holding_registers(1, 100, 10).await.unwrap();
        let straight = direct.read_holding_registers(1, 100, 10).await.unwrap();
        assert_eq!(through, straight);

        let denied = viewer.write_single_register(1, 100, 4242).await;
        assert_eq!(exception(denied), ExceptionCode::IllegalFunction);
        assert_eq!(
            direct.read_holding_registers(1, 100, 1).await.unwrap(),
            straight[..1]
        );

        operator.write_single_register(1, 100, 4242).await.unwrap();
        assert_eq!(
            direct.read_holding_registers(1, 100, 1).await.unwrap(),
            [4242]
        );

        // The device's own exception is passed on as it is.
        let missing = operator.read_holding_registers(1, 65_535, 2).await;
        assert_eq!(exception(missing), ExceptionCode::IllegalDataAddress);
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}

#[test]
fn a_device_that_does_not_answer_is_0x0b_and_one_that_is_down_is_0x0a() {
    runtime().block_on(async {
        // Accepts and reads, never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_address = silent.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in silent.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut sink = [0u8; 512];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        // Nothing listens here.
        let down = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let gateway = Gateway::builder()
            .routes(vec![
                Route {
                    units: 1..=1,
                    device: Device::plain(silent_address.to_string()).limits(limits(300)),
                    rewrite_unit: None,
                },
                Route {
                    units: 2..=2,
                    device: Device::plain(down.to_string()).limits(limits(300)),
                    rewrite_unit: None,
                },
            ])
            .on_log(move |entry| sink.lock().unwrap().push(entry.to_string()))
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        let started = Instant::now();
        let silent = viewer.read_holding_registers(1, 0, 1).await;
        assert_eq!(
            exception(silent),
            ExceptionCode::GatewayTargetFailedToRespond
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(
            exception(viewer.read_holding_registers(2, 0, 1).await),
            ExceptionCode::GatewayPathUnavailable
        );
        // No route for unit 3.
        assert_eq!(
            exception(viewer.read_holding_registers(3, 0, 1).await),
            ExceptionCode::GatewayPathUnavailable
        );
        // A line each, with the role, unit, function and address range.
        let log = log.lock().unwrap().clone();
        let answered: Vec<_> = log.iter().filter(|l| l.contains("answered")).collect();
        assert_eq!(answered.len(), 3, "{log:#?}");
        assert!(
            answered[0].contains(
                "role=\"viewer\" read holding registers (0x03) unit 1, holding registers 0..=0"
            ) && answered[0].contains("did not answer in time"),
            "{log:#?}"
        );
        assert!(answered[1].contains("unit 2") && answered[1].contains("cannot be reached"));
        assert!(answered[2].contains("no route takes unit 3"), "{log:#?}");
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("device {down} cannot be reached"))),
            "{log:#?}"
        );
        front.shutdown().await.unwrap();
    });
}

#[test]
fn a_restarted_device_is_reconnected() {
    runtime().block_on(async {
        let device = plain_device("127.0.0.1:0").await;
        let address = device.local_addr();
        let gateway = Gateway::to(Device::plain(address.to_string()).limits(limits(500))).unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        viewer.read_holding_registers(1, 0, 1).await.unwrap();

        device.shutdown().await.unwrap();
        let gone = viewer.read_holding_registers(1, 0, 1).await;
        assert!(
            matches!(
                exception(gone),
                ExceptionCode::GatewayPathUnavailable | ExceptionCode::GatewayTargetFailedToRespond
            ),
            "a device that is gone"
        );

        let device = plain_device(&address.to_string()).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match viewer.read_holding_registers(1, 0, 1).await {
                Ok(values) => {
                    assert_eq!(values, [0]);
                    break;
                }
                Err(ClientError::Exception(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("never reconnected: {error}"),
            }
        }
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}

/// A device that answers every read with a response for another unit id.
fn wrong_unit_device() -> SocketAddr {
    use std::io::Write;
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
                    let wrong_unit = header[6].wrapping_add(1);
                    let answer = [header[0], header[1], 0, 0, 0, 5, wrong_unit, 0x03, 2, 0, 7];
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
fn an_answer_for_another_unit_is_never_passed_on() {
    runtime().block_on(async {
        let gateway = Gateway::to(Device::plain(wrong_unit_device().to_string())).unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        for _ in 0..3 {
            assert_eq!(
                exception(viewer.read_holding_registers(1, 0, 1).await),
                ExceptionCode::GatewayTargetFailedToRespond
            );
        }
        front.shutdown().await.unwrap();
    });
}

/// A device that answers one request at a time at most, and counts how
/// many it ever had at once (the preset registers, after a pause).
#[derive(Clone, Default)]
struct CountingDevice {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl AsyncHandler for CountingDevice {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        let device = self.clone();
        async move {
            let at_once = device.now.fetch_add(1, Ordering::SeqCst) + 1;
            device.most.fetch_max(at_once, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
            device.now.fetch_sub(1, Ordering::SeqCst);
            device.answered.fetch_add(1, Ordering::SeqCst);
            common::registers_from(&request)
        }
    }
}

#[test]
fn twenty_clients_share_a_device_that_takes_one_request_at_a_time() {
    runtime().block_on(async {
        let counting = CountingDevice::default();
        let config = ServerConfig::plain(policy_allowing_all(), None)
            .build()
            .unwrap();
        let device = TokioServer::bind("127.0.0.1:0", config, Later(counting.clone()))
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let gateway = Gateway::to(Device::plain(device.local_addr().to_string()).limits(
            UpstreamLimits {
                queue: 64,
                timeout: Duration::from_secs(10),
                ..UpstreamLimits::default()
            },
        ))
        .unwrap();
        let front = tls_front(gateway).await;
        let mut clients = Vec::new();
        for index in 0..20u16 {
            let viewer = client(&front, "viewer").await;
            clients.push(tokio::spawn(async move {
                // Each client's reads, in order, each answered with its own
                // registers.
                for round in 0..10u16 {
                    let address = index * 100 + round;
                    let values = viewer.read_holding_registers(1, address, 2).await.unwrap();
                    assert_eq!(values, [address, address + 1]);
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        assert_eq!(counting.answered.load(Ordering::SeqCst), 200, "none lost");
        assert_eq!(counting.most.load(Ordering::SeqCst), 1, "one at a time");
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}

#[test]
fn a_plain_client_reaches_a_secure_device_as_the_plain_role_only() {
    runtime().block_on(async {
        // The device speaks Modbus/TCP Security and authorizes the
        // gateway's certificate: the operator's.
        let device = common::preset_server().await;
        let upstream = Device::tls(
            device.local_addr().to_string(),
            role_config("operator"),
            localhost(),
        );
        let gateway = Gateway::to(upstream).unwrap();
        // Plain clients are viewers at the gateway.
        let front_config = ServerConfig::plain(policy(), Some(Role::new("viewer").unwrap()))
            .build()
            .unwrap();
        let front = TokioServer::bind("127.0.0.1:0", front_config, gateway)
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let legacy = plain(front.local_addr()).await;
        assert_eq!(
            legacy.read_holding_registers(1, 7, 2).await.unwrap(),
            [7, 8]
        );
        let write = legacy.write_single_register(1, 7, 1).await;
        assert_eq!(exception(write), ExceptionCode::IllegalFunction);
        // The register was not written although the gateway's certificate
        // could have.
        let operator =
            TokioClient::connect(device.local_addr(), role_config("operator"), localhost())
                .await
                .unwrap();
        assert_eq!(operator.read_holding_registers(1, 7, 1).await.unwrap(), [7]);
        front.shutdown().await.unwrap();
        device.shutdown().await.unwrap();
    });
}

#[test]
fn a_full_queue_answers_0x06() {
    runtime().block_on(async {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let _keep = std::thread::spawn(move || {
            let held: Vec<_> = silent.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(held);
        });
        let gateway = Gateway::to(Device::plain(address.to_string()).limits(UpstreamLimits {
            queue: 2,
            // The whole queue for one session (by default it would get a
            // quarter of it, here 1).
            queue_per_session: Some(2),
            timeout: Duration::from_secs(2),
            ..UpstreamLimits::default()
        }))
        .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        // One on the wire, two queued: the fourth finds the queue full.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let viewer = viewer.clone();
                tokio::spawn(async move { viewer.read_holding_registers(1, 0, 1).await })
            })
            .collect();
        let mut codes = Vec::new();
        for call in calls {
            codes.push(exception(call.await.unwrap()));
        }
        codes.sort_by_key(|code| *code as u8);
        assert_eq!(
            codes,
            [
                ExceptionCode::ServerDeviceBusy,
                ExceptionCode::GatewayTargetFailedToRespond,
                ExceptionCode::GatewayTargetFailedToRespond,
                ExceptionCode::GatewayTargetFailedToRespond,
            ]
        );
        front.shutdown().await.unwrap();
    });
}
