//! A gateway in a program: Modbus/TCP Security with roles in front of a
//! plain Modbus/TCP device. Clients connect with TLS and a certificate;
//! the policy authorizes each request with the client's role here, and
//! what it allows goes to the device over one shared connection (one
//! request at a time, as most plain devices want). The gateway answers
//! for the device when it must (0x0A unreachable, 0x0B no answer in time)
//! and says so in its log.
//!
//! ```sh
//! cargo run -q -p mbaps-cli -- certs --out certs
//! cargo run -q -p mbaps-cli -- server --plain --plain-role operator --policy examples/policy.toml --listen 127.0.0.1:1502 &
//! cargo run -p mbaps-tokio --example gateway -- certs examples/policy.toml 127.0.0.1:8802 127.0.0.1:1502
//! cargo run -p mbaps-tokio --example client -- certs 127.0.0.1:8802 operator
//! ```
use std::path::Path;
use std::time::Duration;

use mbaps_authz::Policy;
use mbaps_session::{ServerConfig, load_certificates, load_private_key};
use mbaps_tokio::{Device, Gateway, TokioServer, UpstreamLimits};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [certs, policy, listen, device] = &args[..] else {
        return Err("usage: gateway CERTS-DIR POLICY.toml LISTEN-ADDRESS DEVICE-ADDRESS".into());
    };
    let certs = Path::new(certs);
    // The front: the server's certificate, clients' CA, the policy.
    let front = ServerConfig::builder(
        load_certificates(&certs.join("ca.pem"))?,
        load_certificates(&certs.join("server-chain.pem"))?,
        load_private_key(&certs.join("server.key"))?,
        Policy::load(Path::new(policy))?,
    )
    .build()?;
    // The device: one request on its wire at a time, 64 waiting at most,
    // two seconds for each answer.
    let device = Device::plain(device.as_str()).limits(UpstreamLimits {
        in_flight: 1,
        queue: 64,
        timeout: Duration::from_secs(2),
        ..UpstreamLimits::default()
    });
    let gateway = Gateway::builder()
        .route(0..=255, device, None)
        .on_log(|entry| println!("{entry}"))
        .start()?;
    let server = TokioServer::bind(listen.as_str(), front, gateway)
        .await?
        .on_log(|entry| println!("{entry}"));
    println!("listening on {}", server.local_addr()?);
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
