//! The tokio client's reconnection, against a device whose network the
//! test controls (a forwarding proxy in front of a real server that can
//! cut every connection and refuse new ones): the waits double from the
//! initial delay up to the ceiling, attempts stop at the limit, and a call
//! made while the client reconnects waits and is answered once it has.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{localhost, preset_server, role_config, runtime};
use mbaps_tokio::AsyncCalls;
use mbaps_tokio::{Reconnect, TokioClient};

/// A forwarding proxy: connections go through to `backend` while it is
/// up; when it is down it closes every connection it accepts at once.
struct Device {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    /// When each connection arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Device {
    fn start(backend: SocketAddr) -> Device {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let device = Device {
            address: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            arrivals: Arc::default(),
            live: Arc::default(),
        };
        let (up, arrivals, live) = (
            Arc::clone(&device.up),
            Arc::clone(&device.arrivals),
            Arc::clone(&device.live),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                arrivals.lock().unwrap().push(Instant::now());
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(backend) else {
                    continue;
                };
                live.lock().unwrap().push(client.try_clone().unwrap());
                forward(client.try_clone().unwrap(), server.try_clone().unwrap());
                forward(server, client);
            }
        });
        device
    }

    /// Cuts every connection, and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

fn forward(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn reconnect_waits_double_up_to_the_ceiling_and_stop_at_the_attempt_limit() {
    let policy = Reconnect {
        initial_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(160),
        max_attempts: Some(5),
    };
    runtime().block_on(async {
        let server = preset_server().await;
        let device = Device::start(server.local_addr());
        let client = TokioClient::builder(role_config("viewer"), localhost())
            .reconnect(policy)
            .connect(device.address)
            .await
            .unwrap();
        assert_eq!(client.read_holding_registers(1, 2, 1).await.unwrap(), [2]);
        let lost = Instant::now();
        device.cut();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.is_closed() {
            assert!(Instant::now() < deadline, "the client never gave up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let attempts: Vec<Instant> = device.arrivals()[1..].to_vec();
        assert_eq!(attempts.len(), 5, "the attempt limit");
        // 40 ms, then doubling: 80, 160, and the ceiling: 160, 160.
        let expected = [40, 80, 160, 160, 160].map(Duration::from_millis);
        let mut previous = lost;
        for (attempt, (at, wait)) in attempts.iter().zip(expected).enumerate() {
            let waited = at.duration_since(previous);
            assert!(
                waited + Duration::from_millis(5) >= wait
                    && waited < wait + Duration::from_millis(250),
                "attempt {}: waited {waited:?}, expected {wait:?}",
                attempt + 1
            );
            previous = *at;
        }
        // Given up: a call fails at once, with why.
        let started = Instant::now();
        assert!(client.read_holding_registers(1, 2, 1).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_call_made_while_the_client_reconnects_waits_and_is_answered() {
    runtime().block_on(async {
        let server = preset_server().await;
        let device = Device::start(server.local_addr());
        let client = TokioClient::builder(role_config("viewer"), localhost())
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(40),
                max_delay: Duration::from_millis(80),
                max_attempts: None,
            })
            .connect(device.address)
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        assert_eq!(client.read_holding_registers(1, 2, 1).await.unwrap(), [2]);
        device.cut();
        // Until at least one attempt has failed.
        while device.arrivals().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.read_holding_registers(1, 5, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "the call waits for the connection");
        assert!(device.arrivals().len() >= 4, "the client goes on trying");
        device.heal();
        assert_eq!(call.await.unwrap().unwrap(), [5]);
        assert!(!client.is_closed());
        server.shutdown().await.unwrap();
    });
}
