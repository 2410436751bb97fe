//! `mbaps.Client` (async) and `mbaps.SyncClient` (blocking): one
//! `TokioClient` each, its calls written once ([`Call`], [`perform`]) and
//! offered twice ([`client_methods!`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mbaps_codec::{ReadDeviceIdCode, Request};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, TlsVersions, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::raise;

/// How to reach a server, checked before anything is sent.
struct Settings {
    address: String,
    config: ClientConfig,
    server_name: ServerName<'static>,
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
        let config = if plain {
            if ca.is_some() || cert.is_some() || key.is_some() || tls.is_some() {
                return Err(PyValueError::new_err(
                    "ca, cert, key and tls are for Modbus/TCP Security: plain=True sends no certificate",
                ));
            }
            ClientConfig::plain()
                .request_timeout(timeout)
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
            .versions(versions)
            .build()
            .map_err(|e| invalid("the client's configuration", &e))?
        };
        // As the CLI does: the host of the address, unless told otherwise.
        let name = server_name.unwrap_or_else(|| host_of(&address).to_owned());
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            PyValueError::new_err(format!(
                "server_name {name:?} is neither a DNS name nor an IP address"
            ))
        })?;
        Ok(Settings {
            address,
            config,
            server_name,
            timeout,
        })
    }

    /// Connects (the TCP connection and the handshake within the timeout).
    async fn connect(self) -> Result<Connected, (ClientError, String)> {
        let name = server_name_text(&self.server_name);
        let connecting = TokioClient::connect(self.address.as_str(), self.config, self.server_name);
        let client = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(client)) => client.with_timeout(self.timeout),
            Ok(Err(error)) => return Err((error, name)),
            Err(_) => return Err((ClientError::Timeout, name)),
        };
        Ok(Connected {
            client,
            server_name: Arc::from(name),
        })
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

/// A connected client and the name its server was checked for (for the
/// errors' explanations).
#[derive(Clone)]
struct Connected {
    client: TokioClient,
    server_name: Arc<str>,
}

/// One call, with its arguments owned (it travels to the runtime).
enum Call {
    ReadCoils(u8, u16, u16),
    ReadDiscreteInputs(u8, u16, u16),
    ReadHoldingRegisters(u8, u16, u16),
    ReadInputRegisters(u8, u16, u16),
    WriteSingleCoil(u8, u16, bool),
    WriteSingleRegister(u8, u16, u16),
    WriteMultipleCoils(u8, u16, Vec<bool>),
    WriteMultipleRegisters(u8, u16, Vec<u16>),
    ReadWriteMultipleRegisters(u8, u16, u16, u16, Vec<u16>),
    MaskWriteRegister(u8, u16, u16, u16),
    ReadDeviceIdentification(u8, ReadDeviceIdCode, u8),
    Request(u8, Vec<u8>),
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
    /// An exception response to `request`, its code as received (one the
    /// codec may not name).
    Exception(u8),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure::Client(error)
    }
}

/// Runs `call` on `client`.
async fn perform(client: &TokioClient, call: Call) -> Result<Answer, Failure> {
    Ok(match call {
        Call::ReadCoils(unit, address, count) => {
            Answer::Bits(client.read_coils(unit, address, count).await?)
        }
        Call::ReadDiscreteInputs(unit, address, count) => {
            Answer::Bits(client.read_discrete_inputs(unit, address, count).await?)
        }
        Call::ReadHoldingRegisters(unit, address, count) => {
            Answer::Words(client.read_holding_registers(unit, address, count).await?)
        }
        Call::ReadInputRegisters(unit, address, count) => {
            Answer::Words(client.read_input_registers(unit, address, count).await?)
        }
        Call::WriteSingleCoil(unit, address, value) => {
            client.write_single_coil(unit, address, value).await?;
            Answer::Done
        }
        Call::WriteSingleRegister(unit, address, value) => {
            client.write_single_register(unit, address, value).await?;
            Answer::Done
        }
        Call::WriteMultipleCoils(unit, address, values) => {
            client.write_multiple_coils(unit, address, &values).await?;
            Answer::Done
        }
        Call::WriteMultipleRegisters(unit, address, values) => {
            client
                .write_multiple_registers(unit, address, &values)
                .await?;
            Answer::Done
        }
        Call::ReadWriteMultipleRegisters(unit, read_address, read_count, write_address, values) => {
            Answer::Words(
                client
                    .read_write_multiple_registers(
                        unit,
                        read_address,
                        read_count,
                        write_address,
                        &values,
                    )
                    .await?,
            )
        }
        Call::MaskWriteRegister(unit, address, and_mask, or_mask) => {
            client
                .mask_write_register(unit, address, and_mask, or_mask)
                .await?;
            Answer::Done
        }
        Call::ReadDeviceIdentification(unit, code, object_id) => {
            // A device with more objects than one response holds says
            // "more follows": asked again from the object it names, as
            // long as that moves forward (a device that loops is not
            // followed round), at most 255 times.
            let mut objects = Vec::new();
            let mut next = object_id;
            for _ in 0..255 {
                let part = client.read_device_identification(unit, code, next).await?;
                objects.extend(part.objects);
                if !part.more_follows || part.next_object_id <= next {
                    break;
                }
                next = part.next_object_id;
            }
            Answer::Objects(objects)
        }
        Call::Request(unit, pdu) => {
            let request = Request::decode(&pdu)
                .map_err(|error| Failure::Pdu(format!("pdu does not decode: {error}")))?;
            let answer = client.request(unit, &request).await?;
            let bytes = answer.as_bytes();
            // An exception response raises, as every call's does.
            if bytes.first().is_some_and(|f| f & 0x80 != 0) {
                return Err(Failure::Exception(bytes.get(1).copied().unwrap_or(0)));
            }
            Answer::Bytes(bytes.to_vec())
        }
    })
}

/// A failure, as a Python exception (with the GIL).
fn to_python(py: Python<'_>, failure: Failure, server_name: &str) -> PyErr {
    match failure {
        Failure::Client(error) => raise(py, error, server_name),
        Failure::Pdu(words) => PyValueError::new_err(words),
        Failure::Exception(code) => crate::errors::exception(
            py,
            "ModbusError",
            (code, format!("the server answered exception 0x{code:02X}")),
        ),
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

/// The Python methods of a client, written once for both: `$run` turns a
/// [`Call`] into what the method returns (an awaitable, or the answer).
macro_rules! client_methods {
    ($client:ty, { $($own:tt)* }) => {
        #[pymethods]
        impl $client {
            $($own)*

            /// Reads `count` coils from `address`: a list of bools.
            fn read_coils<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::ReadCoils(self::unit(unit)?, word("address", address)?, quantity("count", count, 2000)?))
            }

            /// Reads `count` discrete inputs from `address`: a list of bools.
            fn read_discrete_inputs<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::ReadDiscreteInputs(self::unit(unit)?, word("address", address)?, quantity("count", count, 2000)?))
            }

            /// Reads `count` holding registers from `address`: a list of ints.
            fn read_holding_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::ReadHoldingRegisters(self::unit(unit)?, word("address", address)?, quantity("count", count, 125)?))
            }

            /// Reads `count` input registers from `address`: a list of ints.
            fn read_input_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, count: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::ReadInputRegisters(self::unit(unit)?, word("address", address)?, quantity("count", count, 125)?))
            }

            /// Writes one coil.
            fn write_single_coil<'py>(&self, py: Python<'py>, unit: i64, address: i64, value: bool) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::WriteSingleCoil(self::unit(unit)?, word("address", address)?, value))
            }

            /// Writes one holding register.
            fn write_single_register<'py>(&self, py: Python<'py>, unit: i64, address: i64, value: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::WriteSingleRegister(self::unit(unit)?, word("address", address)?, word("value", value)?))
            }

            /// Writes coils from `address`.
            fn write_multiple_coils<'py>(&self, py: Python<'py>, unit: i64, address: i64, values: Vec<bool>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 1968)?;
                self.run(py, Call::WriteMultipleCoils(self::unit(unit)?, word("address", address)?, values))
            }

            /// Writes holding registers from `address`.
            fn write_multiple_registers<'py>(&self, py: Python<'py>, unit: i64, address: i64, values: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 123)?;
                self.run(py, Call::WriteMultipleRegisters(self::unit(unit)?, word("address", address)?, words("values", values)?))
            }

            /// Writes `values` at `write_address`, then reads `read_count`
            /// registers from `read_address`: a list of ints.
            fn read_write_multiple_registers<'py>(&self, py: Python<'py>, unit: i64, read_address: i64, read_count: i64, write_address: i64, values: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
                how_many("values", &values, 121)?;
                self.run(py, Call::ReadWriteMultipleRegisters(
                    self::unit(unit)?,
                    word("read_address", read_address)?,
                    quantity("read_count", read_count, 125)?,
                    word("write_address", write_address)?,
                    words("values", values)?,
                ))
            }

            /// Sets a register to `(value & and_mask) | (or_mask & !and_mask)`.
            fn mask_write_register<'py>(&self, py: Python<'py>, unit: i64, address: i64, and_mask: i64, or_mask: i64) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Call::MaskWriteRegister(self::unit(unit)?, word("address", address)?, word("and_mask", and_mask)?, word("or_mask", or_mask)?))
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
                self.run(py, Call::ReadDeviceIdentification(self::unit(unit)?, code, checked("object_id", object_id, 255)?))
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
                self.run(py, Call::Request(self::unit(unit)?, pdu))
            }
        }
    };
}

/// An async Modbus/TCP Security client: `await Client.connect(...)`, then
/// its coroutines; many may be awaited at once (they go in flight
/// together). Usable as `async with`.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct Client {
    connected: Connected,
}

impl Client {
    fn run<'py>(&self, py: Python<'py>, call: Call) -> PyResult<Bound<'py, PyAny>> {
        let connected = self.connected.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match perform(&connected.client, call).await {
                Ok(answer) => Ok(answer),
                Err(failure) => Err(Python::attach(|py| {
                    to_python(py, failure, &connected.server_name)
                })),
            }
        })
    }
}

client_methods!(Client, {
    /// Connects to `address` (`HOST:PORT`): an awaitable that gives the
    /// client. `ca`, `cert`, `key`: paths to PEM files (required unless
    /// `plain`); `server_name`: the name the server's certificate must
    /// carry (default: the host of `address`); `tls`: "1.2" or "1.3" to
    /// pin the version; `timeout`: seconds for the connection and for
    /// each call.
    #[staticmethod]
    #[pyo3(signature = (address, *, ca = None, cert = None, key = None, server_name = None, tls = None, timeout = 3.0, plain = false))]
    #[allow(clippy::too_many_arguments)]
    fn connect<'py>(
        py: Python<'py>,
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        server_name: Option<String>,
        tls: Option<String>,
        timeout: f64,
        plain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let settings = Settings::new(
            address,
            ca,
            cert,
            key,
            server_name,
            tls.as_deref(),
            timeout,
            plain,
        )?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match settings.connect().await {
                Ok(connected) => Ok(Client { connected }),
                Err((error, name)) => Err(Python::attach(|py| raise(py, error, &name))),
            }
        })
    }

    /// Ends the session with close_notify (an awaitable).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.connected.client.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client.close().await;
            Ok(())
        })
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _kind: Py<PyAny>,
        _value: Py<PyAny>,
        _traceback: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }
});

/// The blocking client, for scripts and notebooks: the same calls as
/// [`Client`], each returning its answer; the GIL is released while it
/// waits. Usable as `with`.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct SyncClient {
    connected: Connected,
}

impl SyncClient {
    fn run<'py>(&self, py: Python<'py>, call: Call) -> PyResult<Bound<'py, PyAny>> {
        let client = &self.connected.client;
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        match py.detach(|| runtime.block_on(perform(client, call))) {
            Ok(answer) => answer.into_pyobject(py),
            Err(failure) => Err(to_python(py, failure, &self.connected.server_name)),
        }
    }
}

client_methods!(SyncClient, {
    /// Connects to `address`; the arguments are [`Client::connect`]'s.
    #[staticmethod]
    #[pyo3(signature = (address, *, ca = None, cert = None, key = None, server_name = None, tls = None, timeout = 3.0, plain = false))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        server_name: Option<String>,
        tls: Option<String>,
        timeout: f64,
        plain: bool,
    ) -> PyResult<SyncClient> {
        let settings = Settings::new(
            address,
            ca,
            cert,
            key,
            server_name,
            tls.as_deref(),
            timeout,
            plain,
        )?;
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        match py.detach(|| runtime.block_on(settings.connect())) {
            Ok(connected) => Ok(SyncClient { connected }),
            Err((error, name)) => Err(raise(py, error, &name)),
        }
    }

    /// Ends the session with close_notify.
    fn close(&self, py: Python<'_>) {
        let client = &self.connected.client;
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        py.detach(|| runtime.block_on(client.close()));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _kind: Py<PyAny>, _value: Py<PyAny>, _traceback: Py<PyAny>) {
        self.close(py);
    }
});
