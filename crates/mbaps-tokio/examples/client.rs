//! A tokio Modbus/TCP Security client with several calls in flight on one
//! connection: a write, then eight reads sent together from eight tasks
//! (the client is `Clone`; each clone's calls share the session). Runs
//! against any of the server examples, or `mbaps server`.
//!
//! ```sh
//! cargo run -q -p mbaps-cli -- certs --out certs
//! cargo run -p mbaps-tokio --example client -- certs 127.0.0.1:8802 operator
//! ```
//!
//! With the role `viewer` (which `examples/policy.toml` lets read but not
//! write) the write comes back as exception 0x01, illegal function.
use std::collections::BTreeMap;
use std::path::Path;

use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};
use tokio::task::JoinSet;

/// The unit id the calls go to.
const UNIT: u8 = 1;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (certs, address, role) = match &args[..] {
        [certs, address] => (certs, address, "operator"),
        [certs, address, role] => (certs, address, role.as_str()),
        _ => return Err("usage: client CERTS-DIR ADDRESS [ROLE]".into()),
    };
    let certs = Path::new(certs);
    let config = ClientConfig::builder(
        load_certificates(&certs.join("ca.pem"))?,
        load_certificates(&certs.join(format!("client-{role}-chain.pem")))?,
        load_private_key(&certs.join(format!("client-{role}.key")))?,
    )
    .build()?;
    // The server's certificate must name "localhost" (as the test PKI's does).
    let server_name = ServerName::try_from("localhost")?;
    let client = TokioClient::connect(address.as_str(), config, server_name).await?;
    println!("connected to {address} as {role}");

    match client.write_single_register(UNIT, 10, 1234).await {
        Ok(()) => println!("wrote 1234 to register 10"),
        // A denial is an answer like any other: the session goes on.
        Err(ClientError::Exception(code)) => println!("write refused: {code}"),
        Err(other) => return Err(other.into()),
    }

    let mut reads = JoinSet::new();
    for block in 0..8u16 {
        let client = client.clone();
        reads.spawn(async move {
            let values = client.read_holding_registers(UNIT, block * 4, 4).await;
            (block, values)
        });
    }
    let mut blocks = BTreeMap::new();
    while let Some(done) = reads.join_next().await {
        let (block, values) = done?;
        blocks.insert(block, values?);
    }
    for (block, values) in blocks {
        println!("registers {}..{}: {values:?}", block * 4, block * 4 + 4);
    }
    // close_notify, and the server's in answer, before the program ends.
    client.close().await;
    Ok(())
}
