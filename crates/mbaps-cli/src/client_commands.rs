//! `mbaps read` and `mbaps write`: one request, or a poll, like the
//! familiar poll tools; `mbaps request`: any request PDU, given in hex,
//! for the function codes `read` and `write` do not offer.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mbaps_codec::{Bits, Registers, Request, Response};
use serde_json::json;

use crate::connect::{ConnectArgs, explain};
use crate::values::{Layout, ValueType, WordOrder};

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

/// How register values are read and written: `--type`, `--word-order`,
/// `--byte-swap`.
#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct ValueArgs {
    /// The values' type: u16 (the default), i16, u32, i32, u64, i64, f32,
    /// f64 (2 or 4 registers each), hex, or ascii (2 characters a register).
    #[arg(long = "type", value_enum, default_value = "u16")]
    kind: ValueType,
    /// Which register of a 2- or 4-register value holds its most
    /// significant word: big (the first, Modbus's own order, "ABCD"; the
    /// default) or little (the last, "CDAB").
    #[arg(long, value_enum, default_value = "big")]
    word_order: WordOrder,
    /// Swap the two bytes of each register ("BADC", or with --word-order
    /// little "DCBA").
    #[arg(long)]
    byte_swap: bool,
}

impl ValueArgs {
    fn layout(&self) -> Layout {
        Layout {
            kind: self.kind,
            words: self.word_order,
            byte_swap: self.byte_swap,
        }
    }
}

/// Read coils, discrete inputs, holding or input registers.
#[derive(Args, Debug)]
pub(crate) struct ReadArgs {
    /// Which table.
    table: ReadTable,
    /// First address.
    address: u16,
    /// How many values (1..=2000 bits; registers: 1..=125 in all, so 62
    /// 32-bit or 31 64-bit values).
    #[arg(default_value_t = 1)]
    count: u16,
    #[command(flatten)]
    values: ValueArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON (with --poll: one object per line).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV.
    #[arg(long)]
    csv: bool,
    /// Repeat every SECONDS, one line per poll with its time, until
    /// Ctrl-C (then a count of polls and failures); a failed poll is
    /// reported and the next one tried.
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
    /// The values: 0/1 for coils; for registers, of --type (0..=65535 by
    /// default; `--type f32 3.5` writes two registers).
    #[arg(required = true, allow_negative_numbers = true)]
    values: Vec<String>,
    #[command(flatten)]
    types: ValueArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) fn read(args: &ReadArgs) -> Result<bool> {
    let layout = args.values.layout();
    let bits = matches!(args.table, ReadTable::Coils | ReadTable::DiscreteInputs);
    if bits && layout.kind != ValueType::U16 {
        bail!("--type is for registers: coils and discrete inputs are bits");
    }
    let width = if bits { 1 } else { layout.kind.registers() };
    let quantity = usize::from(args.count)
        .checked_mul(width)
        .and_then(|n| u16::try_from(n).ok())
        .context("--type makes the count too large")?;
    let request = match args.table {
        ReadTable::Coils => Request::ReadCoils {
            address: args.address,
            quantity,
        },
        ReadTable::DiscreteInputs => Request::ReadDiscreteInputs {
            address: args.address,
            quantity,
        },
        ReadTable::Holding => Request::ReadHoldingRegisters {
            address: args.address,
            quantity,
        },
        ReadTable::Input => Request::ReadInputRegisters {
            address: args.address,
            quantity,
        },
    };
    // A request that cannot be sent is refused before connecting.
    request.validate()?;
    let interval = match args.poll {
        Some(seconds) => Some(
            std::time::Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("--poll {seconds} is not a number of seconds above 0"))?,
        ),
        None => None,
    };
    let mut client = args.connect.connect()?;
    let server_name = args.connect.server_name.clone().unwrap_or_default();
    let Some(interval) = interval else {
        let answer = client.request(args.connect.unit, &request);
        let closed = client.close();
        let pdu = answer.map_err(|err| explain(err, &server_name))?;
        closed?;
        let rows = rows(args, &layout, &pdu)?;
        print_once(args, &rows)?;
        return Ok(true);
    };
    // Polling: a line per poll, until Ctrl-C.
    let interrupted = crate::poll::interrupted();
    let (mut polls, mut failures) = (0u64, 0u64);
    let mut client = Some(client);
    let mut header = true;
    while !interrupted.is_set() {
        polls += 1;
        let now = crate::poll::timestamp();
        let answer = match client.as_mut() {
            Some(session) => session
                .request(args.connect.unit, &request)
                .map_err(|err| explain(err, &server_name)),
            None => args.connect.connect().and_then(|mut session| {
                let answer = session
                    .request(args.connect.unit, &request)
                    .map_err(|err| explain(err, &server_name));
                client = Some(session);
                answer
            }),
        };
        match answer.and_then(|pdu| rows(args, &layout, &pdu)) {
            Ok(rows) => {
                print_poll(args, &now, &rows, header)?;
                header = false;
            }
            Err(error) => {
                failures += 1;
                eprintln!("{now} poll failed: {error:#}");
                // A session that failed is opened again for the next poll.
                if let Some(session) = client.take() {
                    let _ = session.close();
                }
            }
        }
        interrupted.sleep(interval);
    }
    if let Some(session) = client {
        let _ = session.close();
    }
    eprintln!("{polls} poll(s), {failures} failed");
    Ok(failures == 0)
}

/// One value read: its first address, as text and JSON, and its registers.
struct Row {
    address: usize,
    text: String,
    json: serde_json::Value,
    registers: Vec<u16>,
}

/// The values of a read's response.
fn rows(
    args: &ReadArgs,
    layout: &crate::values::Layout,
    pdu: &mbaps_session::Pdu,
) -> Result<Vec<Row>> {
    let start = usize::from(args.address);
    match pdu.response()? {
        Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => Ok(values
            .iter()
            // The response is padded to whole bytes: keep what was asked.
            .take(usize::from(args.count))
            .enumerate()
            .map(|(i, bit)| Row {
                address: start + i,
                text: u8::from(bit).to_string(),
                json: u8::from(bit).into(),
                registers: vec![u16::from(bit)],
            })
            .collect()),
        Response::ReadHoldingRegisters { values } | Response::ReadInputRegisters { values } => {
            let registers: Vec<u16> = values.iter().collect();
            let width = layout.kind.registers();
            if !registers.len().is_multiple_of(width) {
                bail!(
                    "the server answered {} registers: not whole {:?} values",
                    registers.len(),
                    layout.kind
                );
            }
            Ok(layout
                .decode(&registers)
                .into_iter()
                .zip(registers.chunks_exact(width))
                .enumerate()
                .map(|(i, ((text, json), chunk))| Row {
                    address: start + i * width,
                    text,
                    json,
                    registers: chunk.to_vec(),
                })
                .collect())
        }
        other => bail!("unexpected response {other:?}"),
    }
}

fn hex(registers: &[u16]) -> String {
    registers
        .iter()
        .map(|r| format!("0x{r:04X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_once(args: &ReadArgs, rows: &[Row]) -> Result<()> {
    if args.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| json!({ "address": row.address, "value": row.json }))
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else if args.csv {
        println!("address,value,registers");
        for row in rows {
            println!(
                "{},{},{}",
                row.address,
                csv_field(&row.text),
                hex(&row.registers)
            );
        }
    } else {
        println!("{:>7}  {:>7}  {:>6}", "address", "value", "hex");
        for row in rows {
            println!(
                "{:>7}  {:>7}  {}",
                row.address,
                row.text,
                hex(&row.registers)
            );
        }
    }
    Ok(())
}

fn print_poll(args: &ReadArgs, time: &str, rows: &[Row], header: bool) -> Result<()> {
    if args.json {
        let values: Vec<_> = rows
            .iter()
            .map(|row| json!({ "address": row.address, "value": row.json }))
            .collect();
        println!("{}", json!({ "time": time, "values": values }));
    } else if args.csv {
        if header {
            let addresses: Vec<String> = rows.iter().map(|r| r.address.to_string()).collect();
            println!("time,{}", addresses.join(","));
        }
        let values: Vec<String> = rows.iter().map(|r| csv_field(&r.text)).collect();
        println!("{time},{}", values.join(","));
    } else {
        if header {
            let addresses: Vec<String> =
                rows.iter().map(|r| format!("{:>10}", r.address)).collect();
            println!("{:<30} {}", "time", addresses.join(" "));
        }
        let values: Vec<String> = rows.iter().map(|r| format!("{:>10}", r.text)).collect();
        println!("{time:<30} {}", values.join(" "));
    }
    std::io::Write::flush(&mut std::io::stdout())?;
    Ok(())
}

/// A CSV field: quoted when it holds a comma or a quote.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub(crate) fn write(args: &WriteArgs) -> Result<bool> {
    let layout = args.types.layout();
    if matches!(args.table, WriteTable::Coils) && layout.kind != ValueType::U16 {
        bail!("--type is for registers: coils are bits");
    }
    let bools: Vec<bool> = match args.table {
        WriteTable::Coils => args
            .values
            .iter()
            .map(|v| match v.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                other => Err(anyhow::anyhow!("coil value {other}: give 0 or 1")),
            })
            .collect::<Result<_>>()?,
        WriteTable::Holding => Vec::new(),
    };
    // Every value checked against its type before anything is sent.
    let mut registers: Vec<u16> = Vec::new();
    if let WriteTable::Holding = args.table {
        for value in &args.values {
            registers.extend(layout.encode(value)?);
        }
    }
    let words = match args.table {
        WriteTable::Coils => args.values.iter().map(|_| 0).collect::<Vec<u16>>(),
        WriteTable::Holding => registers.clone(),
    };
    let request = match (args.table, words.as_slice()) {
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
        (WriteTable::Holding, _) => Request::WriteMultipleRegisters {
            address: args.address,
            values: Registers::from_values(&registers),
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
