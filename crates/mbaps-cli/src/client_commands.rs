//! `mbaps read` and `mbaps write`: one request, or a poll, like the
//! familiar poll tools; `mbaps request`: any request PDU, given in hex,
//! for the function codes `read` and `write` do not offer.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mbaps_codec::{Bits, Registers, Request, Response};
use serde_json::json;

use crate::connect::{ConnectArgs, explain};

/// A table to read.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ReadTable {
    /// Coils (0x01).
    Coils,
    /// Discrete inputs (0x02).
    DiscreteInputs,
    /// Holding registers (0x03).
    Holding,
    /// Input registers (0x04).
    Input,
}

/// Read coils, discrete inputs, holding or input registers.
#[derive(Args, Debug)]
pub(crate) struct ReadArgs {
    /// Which table.
    table: ReadTable,
    /// First address.
    address: u16,
    /// How many (1..=2000 bits, 1..=125 registers).
    #[arg(default_value_t = 1)]
    count: u16,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Repeat every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS")]
    poll: Option<f64>,
}

/// What to write.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum WriteTable {
    /// One coil (0x05) or several (0x0F): values 0/1.
    Coils,
    /// One holding register (0x06) or several (0x10).
    Holding,
}

/// Write coils or holding registers.
#[derive(Args, Debug)]
pub(crate) struct WriteArgs {
    /// Which table.
    table: WriteTable,
    /// First address.
    address: u16,
    /// The values: 0/1 for coils, 0..=65535 for registers.
    #[arg(required = true)]
    values: Vec<u16>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) fn read(args: &ReadArgs) -> Result<bool> {
    let request = match args.table {
        ReadTable::Coils => Request::ReadCoils {
            address: args.address,
            quantity: args.count,
        },
        ReadTable::DiscreteInputs => Request::ReadDiscreteInputs {
            address: args.address,
            quantity: args.count,
        },
        ReadTable::Holding => Request::ReadHoldingRegisters {
            address: args.address,
            quantity: args.count,
        },
        ReadTable::Input => Request::ReadInputRegisters {
            address: args.address,
            quantity: args.count,
        },
    };
    // A request that cannot be sent is refused before connecting.
    request.validate()?;
    let mut client = args.connect.connect()?;
    let server_name = args.connect.server_name.clone().unwrap_or_default();
    let interval = match args.poll {
        Some(seconds) => Some(
            std::time::Duration::try_from_secs_f64(seconds)
                .map_err(|_| anyhow::anyhow!("--poll {seconds} is not a number of seconds"))?,
        ),
        None => None,
    };
    loop {
        let pdu = match client.request(args.connect.unit, &request) {
            Ok(pdu) => pdu,
            Err(err) => {
                // An exception leaves the session up: end it with
                // close_notify before reporting (best effort).
                let _ = client.close();
                return Err(explain(err, &server_name));
            }
        };
        let values: Vec<u32> = match pdu.response()? {
            Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => {
                // The response is padded to whole bytes: keep what was asked.
                values
                    .iter()
                    .take(usize::from(args.count))
                    .map(u32::from)
                    .collect()
            }
            Response::ReadHoldingRegisters { values } | Response::ReadInputRegisters { values } => {
                values.iter().map(u32::from).collect()
            }
            other => bail!("unexpected response {other:?}"),
        };
        if args.json {
            let rows: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| json!({ "address": usize::from(args.address) + i, "value": v }))
                .collect();
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            println!("{:>7}  {:>7}  {:>6}", "address", "value", "hex");
            for (i, value) in values.iter().enumerate() {
                println!(
                    "{:>7}  {value:>7}  0x{value:04X}",
                    usize::from(args.address) + i
                );
            }
        }
        match interval {
            Some(interval) => std::thread::sleep(interval),
            None => {
                client.close()?;
                return Ok(true);
            }
        }
    }
}

pub(crate) fn write(args: &WriteArgs) -> Result<bool> {
    let bools: Vec<bool> = match args.table {
        WriteTable::Coils => args
            .values
            .iter()
            .map(|&v| match v {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(anyhow::anyhow!("coil value {other}: give 0 or 1")),
            })
            .collect::<Result<_>>()?,
        WriteTable::Holding => Vec::new(),
    };
    let request = match (args.table, args.values.as_slice()) {
        (WriteTable::Coils, [_]) => Request::WriteSingleCoil {
            address: args.address,
            value: bools[0],
        },
        (WriteTable::Coils, _) => Request::WriteMultipleCoils {
            address: args.address,
            values: Bits::from_bools(&bools),
        },
        (WriteTable::Holding, [value]) => Request::WriteSingleRegister {
            address: args.address,
            value: *value,
        },
        (WriteTable::Holding, values) => Request::WriteMultipleRegisters {
            address: args.address,
            values: Registers::from_values(values),
        },
    };
    request.validate()?;
    let mut client = args.connect.connect()?;
    let server_name = args.connect.server_name.clone().unwrap_or_default();
    let answer = client.request(args.connect.unit, &request);
    // close_notify, so the server logs a clean end rather than a cut-off;
    // an exception leaves the session up, so it is closed then too.
    let closed = client.close();
    answer.map_err(|err| explain(err, &server_name))?;
    closed?;
    println!(
        "written: {} value(s) from address {}",
        args.values.len(),
        args.address
    );
    Ok(true)
}

/// Send one request PDU given in hex and print the response, decoded.
#[derive(Args, Debug)]
pub(crate) struct RequestArgs {
    /// The request PDU in hex: the function code, then its data (spaces,
    /// colons and 0x prefixes are ignored), e.g. `17 0000 0002 0010 0001 02 0007`
    /// for read/write multiple registers.
    #[arg(required = true, value_name = "HEX")]
    pdu: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn request(args: &RequestArgs) -> Result<bool> {
    let bytes = crate::decode::parse_hex(&args.pdu.join(" ")).context("the request PDU")?;
    // Refused before connecting: the server would answer an exception.
    let request = Request::decode(&bytes).context("the request PDU does not decode")?;
    let mut client = args.connect.connect()?;
    let server_name = args.connect.server_name.clone().unwrap_or_default();
    let answer = client.request(args.connect.unit, &request);
    let closed = client.close();
    let pdu = answer.map_err(|err| explain(err, &server_name))?;
    closed?;
    let response = pdu
        .response()
        .context("the server's response does not decode")?;
    let fields = crate::describe::response(&response);
    if args.json {
        println!("{}", serde_json::Value::Object(fields));
    } else {
        for (key, value) in &fields {
            println!("{key}: {value}");
        }
    }
    Ok(true)
}
