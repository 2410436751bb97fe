//! `mbaps.Server`: Modbus/TCP Security served from Python. Authorization
//! happens in Rust before the handler is called, as in every mbaps server:
//! a denied request never reaches Python. The handler is the simulator
//! (`mbaps.RegisterMap()`) or an object with `handle(request)` (plain or
//! `async def`), called with a [`Request`] that says who asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mbaps_authz::Role;
use mbaps_codec::{Bits, ExceptionCode, Registers, Request as Decoded, Response};
use mbaps_session::{Pdu, ServerConfig, load_certificates, load_crls, load_private_key};
use mbaps_simulator::{RegisterMap as Simulator, Tables};
use mbaps_tokio::{AsyncHandler, IncomingRequest, Later, TokioServer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::watch;

use crate::policy::Policy;

/// The simulator's register map (register n holds n; coil n is set when
/// n % 3 == 0), as a handler for [`Server`]: answered in Rust.
#[pyclass(module = "mbaps", name = "RegisterMap", frozen)]
pub(crate) struct RegisterMap;

#[pymethods]
impl RegisterMap {
    #[new]
    fn new() -> RegisterMap {
        RegisterMap
    }
}

/// An authorized request, as the handler sees it.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct Request {
    /// The client's role (None: the NULL role).
    #[pyo3(get)]
    role: Option<String>,
    /// The unit id.
    #[pyo3(get)]
    unit: u8,
    /// The function code.
    #[pyo3(get)]
    function: u8,
    /// The first address (for 0x17, the one read).
    #[pyo3(get)]
    address: Option<u16>,
    /// How many values a read asks for, or a write carries.
    #[pyo3(get)]
    count: Option<u16>,
    /// The values a write carries (bools for coils; for 0x16 the AND and
    /// OR masks).
    values: Values,
    /// For 0x17, where the values are written.
    #[pyo3(get)]
    write_address: Option<u16>,
    /// The client's address, `ip:port`.
    #[pyo3(get)]
    peer: String,
    /// The client's certificate (None on plain Modbus/TCP).
    certificate: Option<Vec<u8>>,
}

/// A write's values.
#[derive(Clone)]
enum Values {
    None,
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

#[pymethods]
impl Request {
    /// The values a write carries (None for a read).
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &self.values {
            Values::None => py.None().into_bound(py),
            Values::Bits(bits) => bits.clone().into_pyobject(py)?.into_any(),
            Values::Words(words) => words.clone().into_pyobject(py)?.into_any(),
        })
    }

    /// The client's certificate, DER (None on plain Modbus/TCP).
    #[getter]
    fn certificate<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.certificate.as_ref().map(|der| PyBytes::new(py, der))
    }

    fn __repr__(&self) -> String {
        format!(
            "Request(role={:?}, unit={}, function=0x{:02X}, address={:?}, count={:?}, peer={:?})",
            self.role, self.unit, self.function, self.address, self.count, self.peer
        )
    }
}

/// What the answer to a request must be, kept from its decoding.
#[derive(Clone, Copy)]
enum Shape {
    Bits {
        count: u16,
        coils: bool,
    },
    Words {
        count: u16,
        holding: bool,
    },
    EchoCoil {
        address: u16,
        value: bool,
    },
    EchoRegister {
        address: u16,
        value: u16,
    },
    WroteCoils {
        address: u16,
        count: u16,
    },
    WroteRegisters {
        address: u16,
        count: u16,
    },
    Masked {
        address: u16,
        and_mask: u16,
        or_mask: u16,
    },
    ReadWrite {
        count: u16,
    },
}

/// The request for Python and the shape of its answer; `None` for a
/// function a Python handler does not answer (0x01).
fn describe(incoming: &IncomingRequest) -> Option<(Request, Shape)> {
    let decoded = incoming.request().ok()?;
    let (address, count, values, write_address, shape) = match decoded {
        Decoded::ReadCoils { address, quantity } => (
            address,
            quantity,
            Values::None,
            None,
            Shape::Bits {
                count: quantity,
                coils: true,
            },
        ),
        Decoded::ReadDiscreteInputs { address, quantity } => (
            address,
            quantity,
            Values::None,
            None,
            Shape::Bits {
                count: quantity,
                coils: false,
            },
        ),
        Decoded::ReadHoldingRegisters { address, quantity } => (
            address,
            quantity,
            Values::None,
            None,
            Shape::Words {
                count: quantity,
                holding: true,
            },
        ),
        Decoded::ReadInputRegisters { address, quantity } => (
            address,
            quantity,
            Values::None,
            None,
            Shape::Words {
                count: quantity,
                holding: false,
            },
        ),
        Decoded::WriteSingleCoil { address, value } => (
            address,
            1,
            Values::Bits(vec![value]),
            None,
            Shape::EchoCoil { address, value },
        ),
        Decoded::WriteSingleRegister { address, value } => (
            address,
            1,
            Values::Words(vec![value]),
            None,
            Shape::EchoRegister { address, value },
        ),
        Decoded::WriteMultipleCoils { address, values } => {
            let bits: Vec<bool> = values.iter().collect();
            let count = bits.len() as u16;
            (
                address,
                count,
                Values::Bits(bits),
                None,
                Shape::WroteCoils { address, count },
            )
        }
        Decoded::WriteMultipleRegisters { address, values } => {
            let words: Vec<u16> = values.iter().collect();
            let count = words.len() as u16;
            (
                address,
                count,
                Values::Words(words),
                None,
                Shape::WroteRegisters { address, count },
            )
        }
        Decoded::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => (
            address,
            1,
            Values::Words(vec![and_mask, or_mask]),
            None,
            Shape::Masked {
                address,
                and_mask,
                or_mask,
            },
        ),
        Decoded::ReadWriteMultipleRegisters {
            read_address,
            read_quantity,
            write_address,
            values,
        } => (
            read_address,
            read_quantity,
            Values::Words(values.iter().collect()),
            Some(write_address),
            Shape::ReadWrite {
                count: read_quantity,
            },
        ),
        _ => return None,
    };
    let request = Request {
        role: incoming.role.as_ref().map(|role| role.as_str().to_owned()),
        unit: incoming.unit_id,
        function: incoming.pdu.function(),
        address: Some(address),
        count: Some(count),
        values,
        write_address,
        peer: incoming.peer.to_string(),
        certificate: incoming
            .certificate
            .as_ref()
            .map(|der| der.as_ref().to_vec()),
    };
    Some((request, shape))
}

/// The handler's return value as the response `shape` asks for; `Err`
/// says what is wrong with it.
fn response(shape: Shape, value: &Bound<'_, PyAny>) -> Result<Pdu, String> {
    let encode = |response: &Response<'_>| {
        Pdu::encode_response(response)
            .map_err(|error| format!("the answer does not encode: {error}"))
    };
    let none = || {
        if value.is_none() {
            Ok(())
        } else {
            Err(format!("a write's handler returns None, not {value}"))
        }
    };
    match shape {
        Shape::Bits { count, coils } => {
            let bits: Vec<bool> = value
                .extract()
                .map_err(|_| format!("a read of bits returns a list of bools, not {value}"))?;
            if bits.len() != usize::from(count) {
                return Err(format!("{} values answer a read of {count}", bits.len()));
            }
            let values = Bits::from_bools(&bits);
            encode(&if coils {
                Response::ReadCoils { values }
            } else {
                Response::ReadDiscreteInputs { values }
            })
        }
        Shape::Words { count, holding } => {
            let words = words(value, count)?;
            let values = Registers::from_values(&words);
            encode(&if holding {
                Response::ReadHoldingRegisters { values }
            } else {
                Response::ReadInputRegisters { values }
            })
        }
        Shape::ReadWrite { count } => {
            let words = words(value, count)?;
            encode(&Response::ReadWriteMultipleRegisters {
                values: Registers::from_values(&words),
            })
        }
        Shape::EchoCoil { address, value } => {
            none()?;
            encode(&Response::WriteSingleCoil { address, value })
        }
        Shape::EchoRegister { address, value } => {
            none()?;
            encode(&Response::WriteSingleRegister { address, value })
        }
        Shape::WroteCoils { address, count } => {
            none()?;
            encode(&Response::WriteMultipleCoils {
                address,
                quantity: count,
            })
        }
        Shape::WroteRegisters { address, count } => {
            none()?;
            encode(&Response::WriteMultipleRegisters {
                address,
                quantity: count,
            })
        }
        Shape::Masked {
            address,
            and_mask,
            or_mask,
        } => {
            none()?;
            encode(&Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            })
        }
    }
}

/// `count` register values from `value`.
fn words(value: &Bound<'_, PyAny>, count: u16) -> Result<Vec<u16>, String> {
    let words: Vec<i64> = value
        .extract()
        .map_err(|_| format!("a read of registers returns a list of ints, not {value}"))?;
    if words.len() != usize::from(count) {
        return Err(format!("{} values answer a read of {count}", words.len()));
    }
    words
        .into_iter()
        .map(|word| {
            u16::try_from(word).map_err(|_| format!("{word} is not a register value (0 to 65535)"))
        })
        .collect()
}

/// The exception a handler's error answers: a `mbaps.ModbusError`'s code,
/// else 0x04 (and the error logged to the `mbaps` logger).
fn exception_of(py: Python<'_>, error: PyErr) -> ExceptionCode {
    let modbus = py
        .import("mbaps._errors")
        .and_then(|errors| errors.getattr("ModbusError"));
    if let Ok(modbus) = modbus
        && error.is_instance(py, &modbus)
        && let Ok(code) = error
            .value(py)
            .getattr("code")
            .and_then(|c| c.extract::<u8>())
        && let Ok(code) = ExceptionCode::from_code(code, 0)
    {
        return code;
    }
    log(py, &format!("the handler failed, answered 0x04: {error}"));
    ExceptionCode::ServerDeviceFailure
}

/// Logs `message` to Python's `mbaps` logger, at error level.
fn log(py: Python<'_>, message: &str) {
    let _ = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("mbaps",)))
        .and_then(|logger| logger.call_method1("error", (message,)));
}

/// A Python object with `handle(request)`: called on a thread of the
/// runtime's blocking pool (a plain `def handle` runs there, several at
/// once for several requests); an `async def handle`'s coroutine runs on
/// the asyncio loop that serves.
struct PythonHandler {
    handler: Arc<Py<PyAny>>,
    locals: TaskLocals,
}

/// What the handler gave: a value at once, or an awaitable to wait for.
enum Given<F> {
    Ready(PyResult<Py<PyAny>>),
    Later(F),
}

impl AsyncHandler for PythonHandler {
    fn handle(
        &self,
        incoming: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        let handler = Arc::clone(&self.handler);
        let locals = self.locals.clone();
        async move {
            let Some((request, shape)) = describe(&incoming) else {
                return Err(ExceptionCode::IllegalFunction);
            };
            // Python runs on the blocking pool, never on a runtime worker:
            // a handler that sleeps, waits on a database or blocks on a
            // SyncClient holds one thread of the pool, not the runtime
            // that serves every session.
            let called = tokio::task::spawn_blocking(move || {
                Python::try_attach(|py| {
                    let called = handler.bind(py).call_method1("handle", (request,));
                    match called {
                        Ok(value) if is_awaitable(&value) => {
                            match pyo3_async_runtimes::into_future_with_locals(&locals, value) {
                                Ok(future) => Given::Later(future),
                                Err(error) => Given::Ready(Err(error)),
                            }
                        }
                        Ok(value) => Given::Ready(Ok(value.unbind())),
                        Err(error) => Given::Ready(Err(error)),
                    }
                })
            })
            .await;
            // The interpreter is finishing, or the call panicked.
            let Ok(Some(given)) = called else {
                return Err(ExceptionCode::ServerDeviceFailure);
            };
            let value = match given {
                Given::Ready(value) => value,
                Given::Later(future) => future.await,
            };
            let answered = tokio::task::spawn_blocking(move || {
                Python::try_attach(|py| match value {
                    Ok(value) => response(shape, value.bind(py)).map_err(|wrong| {
                        log(
                            py,
                            &format!("the handler's answer is wrong, answered 0x04: {wrong}"),
                        );
                        ExceptionCode::ServerDeviceFailure
                    }),
                    Err(error) => Err(exception_of(py, error)),
                })
            })
            .await;
            match answered {
                Ok(Some(answer)) => answer,
                _ => Err(ExceptionCode::ServerDeviceFailure),
            }
        }
    }
}

fn is_awaitable(value: &Bound<'_, PyAny>) -> bool {
    value.hasattr("__await__").unwrap_or(false)
}

/// What to serve with.
enum Answering {
    Simulator,
    Python(Arc<Py<PyAny>>),
}

/// A Modbus/TCP Security server (or plain Modbus/TCP with `plain=True`):
/// `await server.serve()` until `server.close()`.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct Server {
    listen: String,
    config: ServerConfig,
    answering: Answering,
    stop: watch::Sender<bool>,
    address: Arc<Mutex<Option<SocketAddr>>>,
}

#[pymethods]
impl Server {
    /// A server on `listen` (`HOST:PORT`; port 0 picks one, see
    /// `address`). `ca`, `cert`, `key`: PEM paths (required unless
    /// `plain`); `policy`: a path or a `mbaps.Policy`; `handler`:
    /// `mbaps.RegisterMap()` or an object with `handle(request)`; `crl`:
    /// CRL paths; `plain_role`: with `plain`, the role every connection
    /// has (default: the NULL role).
    #[new]
    #[pyo3(signature = (listen, *, policy, handler, ca = None, cert = None, key = None, crl = Vec::new(), plain = false, plain_role = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        listen: String,
        policy: &Bound<'_, PyAny>,
        handler: Py<PyAny>,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        crl: Vec<PathBuf>,
        plain: bool,
        plain_role: Option<String>,
    ) -> PyResult<Server> {
        let policy = match policy.cast::<Policy>() {
            Ok(policy) => policy.get().policy().clone(),
            Err(_) => {
                let path: PathBuf = policy
                    .extract()
                    .map_err(|_| PyValueError::new_err("policy is a path or a mbaps.Policy"))?;
                Policy::load(py, path)?.policy().clone()
            }
        };
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            PyValueError::new_err(format!("{what}: {error}"))
        };
        let config = if plain {
            if ca.is_some() || cert.is_some() || key.is_some() || !crl.is_empty() {
                return Err(PyValueError::new_err(
                    "ca, cert, key and crl are for Modbus/TCP Security: plain=True has no TLS",
                ));
            }
            let role = plain_role
                .as_deref()
                .map(Role::new)
                .transpose()
                .map_err(|e| invalid("plain_role", &e))?;
            ServerConfig::plain(policy, role)
                .build()
                .map_err(|e| invalid("the server's configuration", &e))?
        } else {
            if plain_role.is_some() {
                return Err(PyValueError::new_err(
                    "plain_role is for plain=True: a TLS client's role is in its certificate",
                ));
            }
            let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
                return Err(PyValueError::new_err(
                    "ca, cert and key (paths to PEM files) are required for Modbus/TCP Security, or give plain=True",
                ));
            };
            let mut crls = Vec::new();
            for path in &crl {
                crls.extend(load_crls(path).map_err(|e| invalid("crl", &e))?);
            }
            ServerConfig::builder(
                load_certificates(&ca).map_err(|e| invalid("ca", &e))?,
                load_certificates(&cert).map_err(|e| invalid("cert", &e))?,
                load_private_key(&key).map_err(|e| invalid("key", &e))?,
                policy,
            )
            .crls(crls)
            .build()
            .map_err(|e| invalid("the server's configuration", &e))?
        };
        let answering = if handler.bind(py).cast::<RegisterMap>().is_ok() {
            Answering::Simulator
        } else if handler.bind(py).hasattr("handle")? {
            Answering::Python(Arc::new(handler))
        } else {
            return Err(PyValueError::new_err(
                "handler is mbaps.RegisterMap() or an object with a method handle(request)",
            ));
        };
        Ok(Server {
            listen,
            config,
            answering,
            stop: watch::channel(false).0,
            address: Arc::new(Mutex::new(None)),
        })
    }

    /// Serves until `close()` (an awaitable). Requests to an `async def
    /// handle` run on the loop that awaits this.
    fn serve<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if *self.stop.borrow() {
            return Err(crate::errors::exception(
                py,
                "Error",
                ("the server was closed: make a new mbaps.Server to serve again",),
            ));
        }
        let listen = self.listen.clone();
        let config = self.config.clone();
        let mut stop = self.stop.subscribe();
        let address = Arc::clone(&self.address);
        let python = match &self.answering {
            Answering::Simulator => None,
            Answering::Python(handler) => Some(PythonHandler {
                handler: Arc::clone(handler),
                locals: pyo3_async_runtimes::tokio::get_current_locals(py)?,
            }),
        };
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let served = async {
                match python {
                    None => {
                        let map = Simulator::new(Tables::preset());
                        let server = TokioServer::bind(listen.as_str(), config, map).await?;
                        *address.lock().unwrap_or_else(|p| p.into_inner()) =
                            server.local_addr().ok();
                        server.serve(stopped).await
                    }
                    Some(handler) => {
                        let server =
                            TokioServer::bind(listen.as_str(), config, Later(handler)).await?;
                        *address.lock().unwrap_or_else(|p| p.into_inner()) =
                            server.local_addr().ok();
                        server.serve(stopped).await
                    }
                }
            }
            .await;
            served.map_err(|error| {
                Python::attach(|py| {
                    crate::errors::exception(
                        py,
                        "ConnectionError",
                        (format!("serving on {listen}: {error}"),),
                    )
                })
            })
        })
    }

    /// Stops serving: requests under way are answered, sessions closed.
    fn close(&self) {
        // Kept even when no serve() is running: a serve() after close()
        // is refused.
        self.stop.send_replace(true);
    }

    /// The address it listens on (`ip:port`), once `serve()` has bound it.
    #[getter]
    fn address(&self) -> Option<String> {
        self.address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|address| address.to_string())
    }
}
