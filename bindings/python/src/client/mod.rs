//! `mbaps.Client` (async, on the asyncio loop: [`on_loop`]) and
//! `mbaps.SyncClient` (blocking, on the tokio runtime: [`blocking`]):
//! their settings, their calls ([`Call`]: the arguments; what is sent and
//! how the response reads is `mbaps_session::call`'s) and their Python
//! methods, written once ([`client_methods!`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mbaps_codec::{ReadDeviceIdCode, Request, Response};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{
    ClientConfig, ClientError, Pdu, Timers, TlsVersions, call, load_certificates, load_private_key,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::raise;

/// How to reach a server, checked before anything is sent.
struct Settings {
    address: String,
    config: ClientConfig,
    server_name: ServerName<'static>,
    /// The name, for the errors' explanations.
    name: Arc<str>,
    timeout: Duration,
}

impl Settings {
    #[allow(clippy::too_many_arguments)]
    fn new(
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        server_name: Option<String>,
        tls: Option<&str>,
        timeout: f64,
        plain: bool,
    ) -> PyResult<Settings> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|t| !t.is_zero() && *t <= Duration::from_secs(86_400))
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "timeout is {timeout}: give a number of seconds above 0, at most 86400"
                ))
            })?;
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            PyValueError::new_err(format!("{what}: {error}"))
        };
        // The one timeout given covers the handshake (within the connect's)
        // and the wait for the server's close_notify (at most the usual
        // 5 s); a client is never closed for being idle.
        let timers = Timers {
            handshake_timeout: timeout,
            idle_timeout: None,
            close_timeout: timeout.min(Timers::default().close_timeout),
        };
        let config = if plain {
            if ca.is_some() || cert.is_some() || key.is_some() || tls.is_some() {
                return Err(PyValueError::new_err(
                    "ca, cert, key and tls are for Modbus/TCP Security: plain=True sends no certificate",
                ));
            }
            ClientConfig::plain()
                .request_timeout(timeout)
                .timers(timers)
                .build()
                .map_err(|e| invalid("plain", &e))?
        } else {
            let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
                return Err(PyValueError::new_err(
                    "ca, cert and key (paths to PEM files) are required for Modbus/TCP Security, or give plain=True",
                ));
            };
            let versions = match tls {
                None => TlsVersions::Both,
                Some("1.2") => TlsVersions::Tls12Only,
                Some("1.3") => TlsVersions::Tls13Only,
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "tls is {other:?}: give \"1.2\" or \"1.3\" (or None for either)"
                    )));
                }
            };
            ClientConfig::builder(
                load_certificates(&ca).map_err(|e| invalid("ca", &e))?,
                load_certificates(&cert).map_err(|e| invalid("cert", &e))?,
                load_private_key(&key).map_err(|e| invalid("key", &e))?,
            )
            .request_timeout(timeout)
            .timers(timers)
            .versions(versions)
            .build()
            .map_err(|e| invalid("the client's configuration", &e))?
        };
        // As the CLI does: the host of the address, unless told otherwise.
        let name = server_name.unwrap_or_else(|| host_of(&address).to_owned());
        let server_name = match ServerName::try_from(name.clone()) {
            Ok(server_name) => server_name,
            // Plain Modbus/TCP checks no name: any host asyncio reaches
            // will do (a scoped IPv6 address, fe80::1%eth0, too).
            Err(_) if plain => ServerName::try_from("localhost")
                .map_err(|error| PyValueError::new_err(format!("server_name: {error}")))?,
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "server_name {name:?} is neither a DNS name nor an IP address"
                )));
            }
        };
        Ok(Settings {
            address,
            config,
            name: Arc::from(server_name_text(&server_name)),
            server_name,
            timeout,
        })
    }

    /// The host and the port of the address.
    fn endpoint(&self) -> PyResult<(String, u16)> {
        let port = self
            .address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "address {:?} has no port: give HOST:PORT ([V6]:PORT for an IPv6 address; Modbus/TCP Security is on 802)",
                    self.address
                ))
            })?;
        Ok((host_of(&self.address).to_owned(), port))
    }
}

/// The host part of `HOST:PORT` (`[V6]:PORT` too).
fn host_of(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    }
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

/// One call, with its arguments owned (it waits in a queue, or travels
/// to the runtime), the unit apart. What each sends and how each reads
/// its response is [`mbaps_session::call`]'s, written once for every
/// client; this only carries the arguments.
enum Call {
    ReadCoils(u16, u16),
    ReadDiscreteInputs(u16, u16),
    ReadHoldingRegisters(u16, u16),
    ReadInputRegisters(u16, u16),
    WriteSingleCoil(u16, bool),
    WriteSingleRegister(u16, u16),
    WriteMultipleCoils(u16, Vec<bool>),
    WriteMultipleRegisters(u16, Vec<u16>),
    ReadWriteMultipleRegisters(u16, u16, u16, Vec<u16>),
    MaskWriteRegister(u16, u16, u16),
    /// Device identification from `next`, with the objects read so far
    /// and how many requests it has made.
    ReadDeviceIdentification {
        code: ReadDeviceIdCode,
        next: u8,
        objects: Vec<(u8, Vec<u8>)>,
        asked: u16,
    },
    /// Any request PDU (it decodes: checked when the call is made).
    Request(Vec<u8>),
}

/// A device that keeps saying "more follows" is asked at most this many
/// times for one call.
const MAX_IDENTIFICATION_REQUESTS: u16 = 255;

/// Where a call is after a response.
enum Step {
    /// It is over, with this answer.
    Done(Answer),
    /// It goes on with another request (device identification whose
    /// objects did not fit one response).
    Again(Call),
}

impl Call {
    /// The request this call sends now.
    fn request(&self) -> Result<Request<'_>, Failure> {
        Ok(match self {
            Call::ReadCoils(address, count) => *call::read_coils(*address, *count).request(),
            Call::ReadDiscreteInputs(address, count) => {
                *call::read_discrete_inputs(*address, *count).request()
            }
            Call::ReadHoldingRegisters(address, count) => {
                *call::read_holding_registers(*address, *count).request()
            }
            Call::ReadInputRegisters(address, count) => {
                *call::read_input_registers(*address, *count).request()
            }
            Call::WriteSingleCoil(address, value) => {
                *call::write_single_coil(*address, *value).request()
            }
            Call::WriteSingleRegister(address, value) => {
                *call::write_single_register(*address, *value).request()
            }
            Call::WriteMultipleCoils(address, values) => {
                *call::write_multiple_coils(*address, values).request()
            }
            Call::WriteMultipleRegisters(address, values) => {
                *call::write_multiple_registers(*address, values).request()
            }
            Call::ReadWriteMultipleRegisters(read_address, read_count, write_address, values) => {
                *call::read_write_multiple_registers(
                    *read_address,
                    *read_count,
                    *write_address,
                    values,
                )
                .request()
            }
            Call::MaskWriteRegister(address, and_mask, or_mask) => {
                *call::mask_write_register(*address, *and_mask, *or_mask).request()
            }
            Call::ReadDeviceIdentification { code, next, .. } => {
                *call::read_device_identification(*code, *next).request()
            }
            Call::Request(pdu) => Request::decode(pdu)
                .map_err(|error| Failure::Pdu(format!("pdu does not decode: {error}")))?,
        })
    }

    /// Reads `pdu`, the response to [`Call::request`]: the answer, or the
    /// next request (an exception response is an error, as everywhere).
    fn answer(self, pdu: Pdu) -> Result<Step, Failure> {
        let answer = match self {
            Call::ReadCoils(address, count) => {
                Answer::Bits(call::read_coils(address, count).output(pdu)?)
            }
            Call::ReadDiscreteInputs(address, count) => {
                Answer::Bits(call::read_discrete_inputs(address, count).output(pdu)?)
            }
            Call::ReadHoldingRegisters(address, count) => {
                Answer::Words(call::read_holding_registers(address, count).output(pdu)?)
            }
            Call::ReadInputRegisters(address, count) => {
                Answer::Words(call::read_input_registers(address, count).output(pdu)?)
            }
            Call::WriteSingleCoil(address, value) => {
                call::write_single_coil(address, value).output(pdu)?;
                Answer::Done
            }
            Call::WriteSingleRegister(address, value) => {
                call::write_single_register(address, value).output(pdu)?;
                Answer::Done
            }
            Call::WriteMultipleCoils(address, values) => {
                call::write_multiple_coils(address, &values).output(pdu)?;
                Answer::Done
            }
            Call::WriteMultipleRegisters(address, values) => {
                call::write_multiple_registers(address, &values).output(pdu)?;
                Answer::Done
            }
            Call::ReadWriteMultipleRegisters(read_address, read_count, write_address, values) => {
                Answer::Words(
                    call::read_write_multiple_registers(
                        read_address,
                        read_count,
                        write_address,
                        &values,
                    )
                    .output(pdu)?,
                )
            }
            Call::MaskWriteRegister(address, and_mask, or_mask) => {
                call::mask_write_register(address, and_mask, or_mask).output(pdu)?;
                Answer::Done
            }
            Call::ReadDeviceIdentification {
                code,
                next,
                mut objects,
                asked,
            } => {
                let part = call::read_device_identification(code, next).output(pdu)?;
                objects.extend(part.objects);
                // "More follows" is followed from the object it names, as
                // long as that moves forward (a device that loops is not
                // followed round), a bounded number of times.
                let asked = asked + 1;
                if part.more_follows
                    && part.next_object_id > next
                    && asked < MAX_IDENTIFICATION_REQUESTS
                {
                    return Ok(Step::Again(Call::ReadDeviceIdentification {
                        code,
                        next: part.next_object_id,
                        objects,
                        asked,
                    }));
                }
                Answer::Objects(objects)
            }
            Call::Request(_) => match pdu.response() {
                Ok(Response::Exception { code, .. }) => {
                    return Err(ClientError::Exception(code).into());
                }
                _ => Answer::Bytes(pdu.as_bytes().to_vec()),
            },
        };
        Ok(Step::Done(answer))
    }
}

/// What a call answers, for Python.
enum Answer {
    Bits(Vec<bool>),
    Words(Vec<u16>),
    Done,
    Bytes(Vec<u8>),
    Objects(Vec<(u8, Vec<u8>)>),
}

impl<'py> IntoPyObject<'py> for Answer {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Answer::Bits(bits) => bits.into_pyobject(py)?.into_any(),
            Answer::Words(words) => words.into_pyobject(py)?.into_any(),
            Answer::Done => py.None().into_bound(py),
            Answer::Bytes(bytes) => PyBytes::new(py, &bytes).into_any(),
            Answer::Objects(objects) => {
                let dict = PyDict::new(py);
                for (id, value) in objects {
                    dict.set_item(id, PyBytes::new(py, &value))?;
                }
                dict.into_any()
            }
        })
    }
}

/// Why a call failed: the client's error, or a request that does not
/// decode (`request`'s PDU).
enum Failure {
    Client(ClientError),
    Pdu(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure::Client(error)
    }
}

/// A failure, as a Python exception (with the GIL).
fn to_python(py: Python<'_>, failure: Failure, server_name: &str) -> PyErr {
    match failure {
        Failure::Client(error) => raise(py, error, server_name),
        Failure::Pdu(words) => PyValueError::new_err(words),
    }
}

/// `value` as a `T`, or a `ValueError` naming `name` and the range.
fn checked<T: TryFrom<i64>>(name: &str, value: i64, max: i64) -> PyResult<T> {
    T::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} is {value}: it must be 0 to {max}")))
}

fn unit(value: i64) -> PyResult<u8> {
    checked("unit", value, 255)
}

fn word(name: &str, value: i64) -> PyResult<u16> {
    checked(name, value, 65_535)
}

/// A quantity from 1 to `max` (the Application Protocol's limit for the
/// function), or a `ValueError` naming it.
fn quantity(name: &str, value: i64, max: u16) -> PyResult<u16> {
    match u16::try_from(value) {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "{name} is {value}: it must be 1 to {max}"
        ))),
    }
}

/// `values` of a write of at most `max` (1 at least).
fn how_many<T>(name: &str, values: &[T], max: usize) -> PyResult<()> {
    if (1..=max).contains(&values.len()) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "{name} has {} values: it must have 1 to {max}",
            values.len()
        )))
    }
}

fn words(name: &str, values: Vec<i64>) -> PyResult<Vec<u16>> {
    values
        .into_iter()
        .enumerate()
        .map(|(n, value)| word(&format!("{name}[{n}]"), value))
        .collect()
}

/// The Python methods of a client, written once for both: each checks its
/// arguments and hands its [`Call`] to the client's `run(py, unit, call)`,
/// which returns what the method returns (an awaitable, or the answer).
/// Expanded in the clients' modules, with the names it uses imported.
macro_rules! client_methods {
    ($client:ty, { $($own:tt)* }) => {
        #[pymethods]
        impl $client {
            $($own)*

            /// Reads `count` coils from `address`: a list of bools.
            fn read_coils<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::ReadCoils(word("address", address)?, quantity("count", count, 2000)?))
            }

            /// Reads `count` discrete inputs from `address`: a list of bools.
            fn read_discrete_inputs<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::ReadDiscreteInputs(word("address", address)?, quantity("count", count, 2000)?))
            }

            /// Reads `count` holding registers from `address`: a list of ints.
            fn read_holding_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::ReadHoldingRegisters(word("address", address)?, quantity("count", count, 125)?))
            }

            /// Reads `count` input registers from `address`: a list of ints.
            fn read_input_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::ReadInputRegisters(word("address", address)?, quantity("count", count, 125)?))
            }

            /// Writes one coil.
            fn write_single_coil<'py>(&self, py: Python<'py>, unit: i64, address: i64, value: bool) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::WriteSingleCoil(word("address", address)?, value))
            }

            /// Writes one holding register.
            fn write_single_register<'py>(&self, py: Python<'py>, unit: i64, address: i64, value: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::WriteSingleRegister(word("address", address)?, word("value", value)?))
            }

            /// Writes coils from `address`.
            fn write_multiple_coils<'py>(&self, py: Python<'py>, unit: i64, address: i64, values: Vec<bool>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 1968)?;
                self.run(py, self::unit(unit)?, Call::WriteMultipleCoils(word("address", address)?, values))
            }

            /// Writes holding registers from `address`.
            fn write_multiple_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, values: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 123)?;
                self.run(py, self::unit(unit)?, Call::WriteMultipleRegisters(word("address", address)?, words("values", values)?))
            }

            /// Writes `values` at `write_address`, then reads `read_count`
            /// registers from `read_address`: a list of ints.
            fn read_write_multiple_registers<'py>(&self, py: Python<'py>, unit: i64, read_address: i64, read_count: i64, write_address: i64, values: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 121)?;
                self.run(py, self::unit(unit)?, Call::ReadWriteMultipleRegisters(
                    word("read_address", read_address)?,
                    quantity("read_count", read_count, 125)?,
                    word("write_address", write_address)?,
                    words("values", values)?,
                ))
            }

            /// Sets a register to `(value & and_mask) | (or_mask & !and_mask)`.
            fn mask_write_register<'py>(&self, py: Python<'py>, unit: i64, address: i64, and_mask: i64, or_mask: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, self::unit(unit)?, Call::MaskWriteRegister(word("address", address)?, word("and_mask", and_mask)?, word("or_mask", or_mask)?))
            }

            /// Reads device identification objects (code 1 basic, 2
            /// regular, 3 extended, 4 one object): a dict of object id to
            /// bytes.
            #[pyo3(signature = (unit, code = 1, object_id = 0))]
            fn read_device_identification<'py>(&self, py: Python<'py>, unit: i64, code: i64, object_id: i64) -> PyResult<Bound<'py, PyAny>> {
                let code = u8::try_from(code)
                    .ok()
                    .and_then(|code| ReadDeviceIdCode::from_code(code, 0x2B).ok())
                    .ok_or_else(|| PyValueError::new_err(format!("code is {code}: it must be 1 to 4")))?;
                self.run(py, self::unit(unit)?, Call::ReadDeviceIdentification {
                    code,
                    next: checked("object_id", object_id, 255)?,
                    objects: Vec::new(),
                    asked: 0,
                })
            }

            /// Sends the request PDU `pdu` (function code first) and
            /// returns the response PDU: for any function the typed calls
            /// do not cover. An exception response raises.
            fn request<'py>(&self, py: Python<'py>, unit: i64, pdu: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
                if pdu.is_empty() || pdu.len() > 253 {
                    return Err(PyValueError::new_err(format!(
                        "pdu is {} bytes: a PDU is 1 to 253 bytes", pdu.len()
                    )));
                }
                self.run(py, self::unit(unit)?, Call::Request(pdu))
            }
        }
    };
}

mod blocking;
mod on_loop;

pub(crate) use blocking::SyncClient;
pub(crate) use on_loop::Client;
