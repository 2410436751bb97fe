//! What a client call ends in, typed calls (a request and how to read its
//! response), and the typed client API, written once: [`Calls`] for a
//! blocking client and [`AsyncCalls`] for an async one, each a method per
//! function code over one primitive. The std and tokio clients implement
//! the primitive, so they agree on results and errors.

use std::future::Future;
use std::sync::Arc;

use mbaps_codec::{
    Bits, DeviceIdObject, ExceptionCode, FileRecordRead, FileRecordWrite, List, ReadDeviceIdCode,
    Registers, Request, Response,
};
use mbaps_codec::{ConformityLevel, DeviceIdentification as WireIdentification};

use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, DropReason, Handshake, InvalidResponse, Pdu};

/// Why a call returned no response.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection failed (connect refused, reset, ...): the adapter's
    /// I/O error, shared by every call it ended.
    #[error("connection: {0}")]
    Io(Arc<std::io::Error>),
    /// The session failed: a TLS alert (which one is in the error), a
    /// refused certificate (why), a handshake timeout.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// The server answered with a Modbus exception.
    #[error("the server answered exception {0}")]
    Exception(ExceptionCode),
    /// A response came but does not answer the request.
    #[error("invalid response: {0}")]
    Invalid(InvalidResponse),
    /// No response within the call's timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The session closed before the response came.
    #[error("the session closed: {}", closed_words(.0))]
    Closed(CloseReason),
    /// The response is valid but not of the kind the typed call expects.
    #[error("unexpected response (it does not answer the request): PDU {}", hex(.0.as_bytes()))]
    Unexpected(Box<Pdu>),
}

/// Why a client's session closed, in a client's words (the reason's own
/// words are a server's).
fn closed_words(reason: &CloseReason) -> String {
    match reason {
        CloseReason::LocalClose => "we closed it".to_owned(),
        CloseReason::PeerClosed => "the server closed it (close_notify)".to_owned(),
        CloseReason::PeerEofWithoutCloseNotify => {
            "the server's stream ended (without close_notify)".to_owned()
        }
        reason => reason.to_string(),
    }
}

/// Bytes as hex pairs, space-separated.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl ClientError {
    /// What the error most likely means for whoever made the call, when
    /// there is more to say than its words: why a certificate was refused
    /// (ours by the server, by the alert it sent; the server's by us), a
    /// denial (0x01 under Modbus/TCP Security, R-31), nothing listening.
    /// `server_name` is the name the server's certificate was checked for.
    pub fn hint(&self, server_name: &str) -> Option<String> {
        use rustls::{AlertDescription, CertificateError};
        let hint = match self {
            ClientError::Session(SessionError::Tls(tls)) => match tls {
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
                    "the server requires a client certificate".to_owned()
                }
                // DecryptError: signed by a CA of the trusted one's name
                // but another key.
                rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
                    | AlertDescription::DecryptError,
                ) => "the server refused our certificate: it is not signed by a CA the server trusts, or its role extension is malformed".to_owned(),
                rustls::Error::AlertReceived(AlertDescription::CertificateExpired) => {
                    "the server says our certificate has expired".to_owned()
                }
                rustls::Error::AlertReceived(AlertDescription::CertificateRevoked) => {
                    "the server says our certificate is revoked".to_owned()
                }
                rustls::Error::AlertReceived(
                    AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure,
                ) => "the server offers no TLS version or cipher suite we accept (Modbus/TCP Security needs TLS 1.2 or 1.3 with ECDHE and AES-GCM)".to_owned(),
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ) => "the server's certificate has expired".to_owned(),
                // A CA of the same name but another key: BadSignature.
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => "the server's certificate is not signed by the CA we were given".to_owned(),
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => format!(
                    "the server's certificate is not for {server_name:?}: give the name it carries as the server name"
                ),
                _ => return None,
            },
            ClientError::Exception(ExceptionCode::IllegalFunction) => "the role in our certificate may not make this request (the server's policy denied it, R-31), or the server does not serve this function".to_owned(),
            ClientError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "nothing listens there: is the server running, and is the port right?".to_owned()
            }
            _ => return None,
        };
        Some(hint)
    }
}

impl From<std::io::Error> for ClientError {
    fn from(error: std::io::Error) -> ClientError {
        ClientError::Io(Arc::new(error))
    }
}

impl From<CloseReason> for ClientError {
    /// A call the end of its session cut off: the failure, or the close.
    fn from(reason: CloseReason) -> ClientError {
        match reason {
            CloseReason::Failed(error) => ClientError::Session(error),
            reason => ClientError::Closed(reason),
        }
    }
}

/// A [`ClientEvent`] seen from a caller waiting on a transaction id.
#[derive(Debug)]
// The PDU travels inline, as in ClientEvent: boxing would allocate per call.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Request `transaction_id` is over, with this result (an exception
    /// response is [`ClientError::Exception`]; a request the session's end
    /// cut off has the end's error).
    Call {
        /// The request's transaction id.
        transaction_id: u16,
        /// Its result.
        result: Result<Pdu, ClientError>,
    },
    /// The handshake finished.
    Connected(Option<Handshake>),
    /// A frame no call waits for was dropped ([`ClientEvent::Dropped`]).
    Dropped {
        /// Its transaction id.
        transaction_id: u16,
        /// Why it answers no call.
        reason: DropReason,
    },
    /// The session ended: the last outcome.
    Closed(CloseReason),
}

impl From<ClientEvent> for Outcome {
    fn from(event: ClientEvent) -> Outcome {
        let (transaction_id, result) = match event {
            ClientEvent::Response {
                transaction_id,
                pdu,
                ..
            } => match pdu.response() {
                Ok(Response::Exception { code, .. }) => {
                    (transaction_id, Err(ClientError::Exception(code)))
                }
                _ => (transaction_id, Ok(pdu)),
            },
            ClientEvent::Invalid {
                transaction_id,
                error,
            } => (transaction_id, Err(ClientError::Invalid(error))),
            ClientEvent::Timeout { transaction_id } => (transaction_id, Err(ClientError::Timeout)),
            ClientEvent::Aborted {
                transaction_id,
                reason,
            } => (transaction_id, Err(ClientError::from(reason))),
            ClientEvent::Connected(handshake) => return Outcome::Connected(handshake),
            ClientEvent::Dropped {
                transaction_id,
                reason,
            } => {
                return Outcome::Dropped {
                    transaction_id,
                    reason,
                };
            }
            ClientEvent::Closed(reason) => return Outcome::Closed(reason),
        };
        Outcome::Call {
            transaction_id,
            result,
        }
    }
}

/// A device identification response, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentification {
    /// What the device supports.
    pub conformity_level: ConformityLevel,
    /// Whether more objects follow: ask again from `next_object_id`.
    pub more_follows: bool,
    /// The object to ask for next when `more_follows`.
    pub next_object_id: u8,
    /// Object id and value, in the order received.
    pub objects: Vec<(u8, Vec<u8>)>,
}

impl From<&WireIdentification<'_>> for DeviceIdentification {
    fn from(wire: &WireIdentification<'_>) -> DeviceIdentification {
        DeviceIdentification {
            conformity_level: wire.conformity_level,
            more_follows: wire.more_follows,
            next_object_id: wire.next_object_id,
            objects: wire
                .objects
                .iter()
                .map(|o: DeviceIdObject<'_>| (o.id, o.value.to_vec()))
                .collect(),
        }
    }
}

/// A typed call: the request, and how to read its response into `T`.
///
/// Built by the functions of this module, one per function code; run by a
/// client's [`Calls::call`] or [`AsyncCalls::call`].
#[derive(Clone, Copy, Debug)]
pub struct Call<'a, T> {
    request: Request<'a>,
    /// Reads the response to the request (checked against it: counts,
    /// function codes) into `T`, or `None` if it is not an answer to it.
    read: fn(&Request<'_>, &Response<'_>) -> Option<T>,
}

impl<'a, T> Call<'a, T> {
    /// The request to send.
    pub fn request(&self) -> &Request<'a> {
        &self.request
    }

    /// Reads the response `pdu` (an exception response is
    /// [`ClientError::Exception`]).
    pub fn output(&self, pdu: Pdu) -> Result<T, ClientError> {
        match pdu.response() {
            Ok(Response::Exception { code, .. }) => Err(ClientError::Exception(code)),
            Ok(response) => match (self.read)(&self.request, &response) {
                Some(output) => Ok(output),
                None => Err(ClientError::Unexpected(Box::new(pdu))),
            },
            Err(_) => Err(ClientError::Unexpected(Box::new(pdu))),
        }
    }
}

fn call<T>(
    request: Request<'_>,
    read: fn(&Request<'_>, &Response<'_>) -> Option<T>,
) -> Call<'_, T> {
    Call { request, read }
}

/// Whether `response` answers `request`: an exception for its function,
/// or the response its typed call reads (the same function, and the counts
/// that must match the request's). The check every call of this module
/// makes, for those who judge a device's answers without a typed call (a
/// fuzzer's oracle).
pub fn answers(request: &Request<'_>, response: &Response<'_>) -> bool {
    if let Response::Exception { function, .. } = response {
        return *function == request.function().code();
    }
    // Each call's reader looks at the request it is given, not at the one
    // it was built with: built with nothing, it reads this one.
    match request {
        Request::ReadCoils { .. } => (read_coils(0, 0).read)(request, response).is_some(),
        Request::ReadDiscreteInputs { .. } => {
            (read_discrete_inputs(0, 0).read)(request, response).is_some()
        }
        Request::ReadHoldingRegisters { .. } => {
            (read_holding_registers(0, 0).read)(request, response).is_some()
        }
        Request::ReadInputRegisters { .. } => {
            (read_input_registers(0, 0).read)(request, response).is_some()
        }
        Request::WriteSingleCoil { .. } => {
            (write_single_coil(0, false).read)(request, response).is_some()
        }
        Request::WriteSingleRegister { .. } => {
            (write_single_register(0, 0).read)(request, response).is_some()
        }
        Request::WriteMultipleCoils { .. } => {
            (write_multiple_coils(0, &[]).read)(request, response).is_some()
        }
        Request::WriteMultipleRegisters { .. } => {
            (write_multiple_registers(0, &[]).read)(request, response).is_some()
        }
        Request::ReadFileRecord { .. } => {
            (read_file_records(&[]).read)(request, response).is_some()
        }
        Request::WriteFileRecord { .. } => {
            (write_file_records(&[]).read)(request, response).is_some()
        }
        Request::MaskWriteRegister { .. } => {
            (mask_write_register(0, 0, 0).read)(request, response).is_some()
        }
        Request::ReadWriteMultipleRegisters { .. } => {
            (read_write_multiple_registers(0, 0, 0, &[]).read)(request, response).is_some()
        }
        Request::ReadFifoQueue { .. } => (read_fifo_queue(0).read)(request, response).is_some(),
        Request::ReadDeviceIdentification { .. } => {
            (read_device_identification(ReadDeviceIdCode::Basic, 0).read)(request, response)
                .is_some()
        }
        Request::UserDefined { function, .. } => {
            (user_defined(*function, &[]).read)(request, response).is_some()
        }
        Request::ReadExceptionStatus => (read_exception_status().read)(request, response).is_some(),
        Request::Diagnostics { .. } => (diagnostics(0, 0).read)(request, response).is_some(),
        Request::GetCommEventCounter => {
            (get_comm_event_counter().read)(request, response).is_some()
        }
        Request::GetCommEventLog => (get_comm_event_log().read)(request, response).is_some(),
        Request::ReportServerId => (report_server_id().read)(request, response).is_some(),
    }
}

fn first_bits(values: &Bits<'_>, quantity: u16) -> Option<Vec<bool>> {
    let quantity = usize::from(quantity);
    (values.len() >= quantity).then(|| values.iter().take(quantity).collect())
}

fn registers(values: &Registers<'_>) -> Vec<u16> {
    values.iter().collect()
}

/// `quantity` registers exactly.
fn exactly(values: &Registers<'_>, quantity: u16) -> Option<Vec<u16>> {
    (values.len() == usize::from(quantity)).then(|| registers(values))
}

/// 0x01: `quantity` coils from `address`.
pub fn read_coils(address: u16, quantity: u16) -> Call<'static, Vec<bool>> {
    call(Request::ReadCoils { address, quantity }, |q, r| {
        match (q, r) {
            (Request::ReadCoils { quantity, .. }, Response::ReadCoils { values }) => {
                first_bits(values, *quantity)
            }
            _ => None,
        }
    })
}

/// 0x02: `quantity` discrete inputs from `address`.
pub fn read_discrete_inputs(address: u16, quantity: u16) -> Call<'static, Vec<bool>> {
    call(
        Request::ReadDiscreteInputs { address, quantity },
        |q, r| match (q, r) {
            (
                Request::ReadDiscreteInputs { quantity, .. },
                Response::ReadDiscreteInputs { values },
            ) => first_bits(values, *quantity),
            _ => None,
        },
    )
}

/// 0x03: `quantity` holding registers from `address`.
pub fn read_holding_registers(address: u16, quantity: u16) -> Call<'static, Vec<u16>> {
    call(
        Request::ReadHoldingRegisters { address, quantity },
        |q, r| match (q, r) {
            (
                Request::ReadHoldingRegisters { quantity, .. },
                Response::ReadHoldingRegisters { values },
            ) => exactly(values, *quantity),
            _ => None,
        },
    )
}

/// 0x04: `quantity` input registers from `address`.
pub fn read_input_registers(address: u16, quantity: u16) -> Call<'static, Vec<u16>> {
    call(
        Request::ReadInputRegisters { address, quantity },
        |q, r| match (q, r) {
            (
                Request::ReadInputRegisters { quantity, .. },
                Response::ReadInputRegisters { values },
            ) => exactly(values, *quantity),
            _ => None,
        },
    )
}

/// 0x05: sets one coil ON or OFF.
pub fn write_single_coil(address: u16, value: bool) -> Call<'static, ()> {
    call(Request::WriteSingleCoil { address, value }, |_, r| {
        matches!(r, Response::WriteSingleCoil { .. }).then_some(())
    })
}

/// 0x06: writes one holding register.
pub fn write_single_register(address: u16, value: u16) -> Call<'static, ()> {
    call(Request::WriteSingleRegister { address, value }, |_, r| {
        matches!(r, Response::WriteSingleRegister { .. }).then_some(())
    })
}

/// 0x0F: writes coils from `address`.
pub fn write_multiple_coils(address: u16, values: &[bool]) -> Call<'_, ()> {
    let request = Request::WriteMultipleCoils {
        address,
        values: Bits::from_bools(values),
    };
    call(request, |q, r| match (q, r) {
        (
            Request::WriteMultipleCoils { values, .. },
            Response::WriteMultipleCoils { quantity, .. },
        ) if usize::from(*quantity) == values.len() => Some(()),
        _ => None,
    })
}

/// 0x10: writes holding registers from `address`.
pub fn write_multiple_registers(address: u16, values: &[u16]) -> Call<'_, ()> {
    let request = Request::WriteMultipleRegisters {
        address,
        values: Registers::from_values(values),
    };
    call(request, |q, r| match (q, r) {
        (
            Request::WriteMultipleRegisters { values, .. },
            Response::WriteMultipleRegisters { quantity, .. },
        ) if usize::from(*quantity) == values.len() => Some(()),
        _ => None,
    })
}

/// 0x14: reads file records, one register list per sub-request.
pub fn read_file_records(records: &[FileRecordRead]) -> Call<'_, Vec<Vec<u16>>> {
    let request = Request::ReadFileRecord {
        records: List::from_items(records),
    };
    call(request, |q, r| match (q, r) {
        (Request::ReadFileRecord { records: asked }, Response::ReadFileRecord { records })
            if records.len() == asked.len() =>
        {
            Some(
                records
                    .iter()
                    .map(|record| registers(&record.data))
                    .collect(),
            )
        }
        _ => None,
    })
}

/// 0x15: writes file records.
pub fn write_file_records<'a>(records: &'a [FileRecordWrite<'a>]) -> Call<'a, ()> {
    let request = Request::WriteFileRecord {
        records: List::from_items(records),
    };
    call(request, |q, r| match (q, r) {
        (Request::WriteFileRecord { records: asked }, Response::WriteFileRecord { records })
            if records.len() == asked.len() =>
        {
            Some(())
        }
        _ => None,
    })
}

/// 0x16: `register = (register & and_mask) | (or_mask & !and_mask)`.
pub fn mask_write_register(address: u16, and_mask: u16, or_mask: u16) -> Call<'static, ()> {
    let request = Request::MaskWriteRegister {
        address,
        and_mask,
        or_mask,
    };
    call(request, |_, r| {
        matches!(r, Response::MaskWriteRegister { .. }).then_some(())
    })
}

/// 0x17: writes `values` at `write_address`, then reads `read_quantity`
/// registers from `read_address`.
pub fn read_write_multiple_registers(
    read_address: u16,
    read_quantity: u16,
    write_address: u16,
    values: &[u16],
) -> Call<'_, Vec<u16>> {
    let request = Request::ReadWriteMultipleRegisters {
        read_address,
        read_quantity,
        write_address,
        values: Registers::from_values(values),
    };
    call(request, |q, r| match (q, r) {
        (
            Request::ReadWriteMultipleRegisters { read_quantity, .. },
            Response::ReadWriteMultipleRegisters { values },
        ) => exactly(values, *read_quantity),
        _ => None,
    })
}

/// 0x18: the FIFO queue whose count register is at `address`, oldest first.
pub fn read_fifo_queue(address: u16) -> Call<'static, Vec<u16>> {
    call(Request::ReadFifoQueue { address }, |_, r| match r {
        Response::ReadFifoQueue { values } => Some(registers(values)),
        _ => None,
    })
}

/// 0x2B / 0x0E: device identification objects from `object_id`.
pub fn read_device_identification(
    code: ReadDeviceIdCode,
    object_id: u8,
) -> Call<'static, DeviceIdentification> {
    call(
        Request::ReadDeviceIdentification { code, object_id },
        |_, r| match r {
            Response::ReadDeviceIdentification(identification) => Some(identification.into()),
            _ => None,
        },
    )
}

/// A user-defined function code (65..=72, 100..=110): `data` is sent after
/// the function code, and the response's data is returned as is.
pub fn user_defined(function: u8, data: &[u8]) -> Call<'_, Vec<u8>> {
    call(Request::UserDefined { function, data }, |q, r| {
        match (q, r) {
            (
                Request::UserDefined {
                    function: asked, ..
                },
                Response::UserDefined { function, data },
            ) if function == asked => Some(data.to_vec()),
            _ => None,
        }
    })
}

/// 0x07: the eight exception status outputs, one bit each.
pub fn read_exception_status() -> Call<'static, u8> {
    call(Request::ReadExceptionStatus, |_, r| match r {
        Response::ReadExceptionStatus { status } => Some(*status),
        _ => None,
    })
}

/// 0x08: diagnostics `sub_function` with its data word; the answer's data
/// word (the sub-function must be echoed).
pub fn diagnostics(sub_function: u16, data: u16) -> Call<'static, u16> {
    call(Request::Diagnostics { sub_function, data }, |q, r| {
        match (q, r) {
            (
                Request::Diagnostics {
                    sub_function: asked,
                    ..
                },
                Response::Diagnostics { sub_function, data },
            ) if sub_function == asked => Some(*data),
            _ => None,
        }
    })
}

/// A get comm event log response (0x0C), owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommEventLog {
    /// 0xFFFF while a previous command is still being processed.
    pub status: u16,
    /// Messages processed successfully.
    pub event_count: u16,
    /// Messages processed.
    pub message_count: u16,
    /// The events, most recent first.
    pub events: Vec<u8>,
}

/// 0x0B: the status word and the event count.
pub fn get_comm_event_counter() -> Call<'static, (u16, u16)> {
    call(Request::GetCommEventCounter, |_, r| match r {
        Response::GetCommEventCounter {
            status,
            event_count,
        } => Some((*status, *event_count)),
        _ => None,
    })
}

/// 0x0C: the status, the counters and the last events.
pub fn get_comm_event_log() -> Call<'static, CommEventLog> {
    call(Request::GetCommEventLog, |_, r| match r {
        Response::GetCommEventLog {
            status,
            event_count,
            message_count,
            events,
        } => Some(CommEventLog {
            status: *status,
            event_count: *event_count,
            message_count: *message_count,
            events: events.to_vec(),
        }),
        _ => None,
    })
}

/// 0x11: the server's id, run indicator and its own data, as it sends them.
pub fn report_server_id() -> Call<'static, Vec<u8>> {
    call(Request::ReportServerId, |_, r| match r {
        Response::ReportServerId { data } => Some(data.to_vec()),
        _ => None,
    })
}

/// Writes the typed client API once, for the blocking and the async
/// client alike: one method per function code over the primitive `call`.
macro_rules! typed_calls {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty = $call:ident;
    )*) => {
        /// The typed calls of a blocking client (`mbaps_std::StdClient`):
        /// a method per function code, each one [`Calls::call`].
        // Each method names the lifetime of its borrowed arguments, those
        // without any too (one macro writes them all).
        #[allow(clippy::extra_unused_lifetimes)]
        pub trait Calls {
            /// Runs a typed call on unit `unit_id` and waits for its result.
            fn call<T>(&mut self, unit_id: u8, call: Call<'_, T>) -> Result<T, ClientError>;

            $(
                $(#[$doc])*
                fn $name<'a>(&mut self, unit_id: u8, $($arg: $ty),*) -> Result<$out, ClientError> {
                    self.call(unit_id, $call($($arg),*))
                }
            )*
        }

        /// The typed calls of an async client (`mbaps_tokio::TokioClient`):
        /// a method per function code, each one [`AsyncCalls::call`].
        pub trait AsyncCalls {
            /// Runs a typed call on unit `unit_id`; the future ends with its
            /// result.
            fn call<'a, T: Send + 'a>(
                &'a self,
                unit_id: u8,
                call: Call<'a, T>,
            ) -> impl Future<Output = Result<T, ClientError>> + Send + 'a;

            $(
                $(#[$doc])*
                fn $name<'a>(
                    &'a self,
                    unit_id: u8,
                    $($arg: $ty),*
                ) -> impl Future<Output = Result<$out, ClientError>> + Send + 'a {
                    self.call(unit_id, $call($($arg),*))
                }
            )*
        }
    };
}

typed_calls! {
    /// 0x01: `quantity` coils from `address`.
    fn read_coils(address: u16, quantity: u16) -> Vec<bool> = read_coils;
    /// 0x02: `quantity` discrete inputs from `address`.
    fn read_discrete_inputs(address: u16, quantity: u16) -> Vec<bool> = read_discrete_inputs;
    /// 0x03: `quantity` holding registers from `address`.
    fn read_holding_registers(address: u16, quantity: u16) -> Vec<u16> = read_holding_registers;
    /// 0x04: `quantity` input registers from `address`.
    fn read_input_registers(address: u16, quantity: u16) -> Vec<u16> = read_input_registers;
    /// 0x05: sets one coil.
    fn write_single_coil(address: u16, value: bool) -> () = write_single_coil;
    /// 0x06: writes one holding register.
    fn write_single_register(address: u16, value: u16) -> () = write_single_register;
    /// 0x0F: writes coils from `address`.
    fn write_multiple_coils(address: u16, values: &'a [bool]) -> () = write_multiple_coils;
    /// 0x10: writes holding registers from `address`.
    fn write_multiple_registers(address: u16, values: &'a [u16]) -> () = write_multiple_registers;
    /// 0x14: reads file records, one register list per sub-request.
    fn read_file_records(records: &'a [FileRecordRead]) -> Vec<Vec<u16>> = read_file_records;
    /// 0x15: writes file records.
    fn write_file_records(records: &'a [FileRecordWrite<'a>]) -> () = write_file_records;
    /// 0x16: masks one holding register.
    fn mask_write_register(address: u16, and_mask: u16, or_mask: u16) -> () = mask_write_register;
    /// 0x17: writes `values` at `write_address`, then reads `read_quantity`
    /// registers from `read_address`.
    fn read_write_multiple_registers(read_address: u16, read_quantity: u16, write_address: u16, values: &'a [u16]) -> Vec<u16> = read_write_multiple_registers;
    /// 0x18: the FIFO queue at `address`, oldest first.
    fn read_fifo_queue(address: u16) -> Vec<u16> = read_fifo_queue;
    /// 0x2B / 0x0E: device identification objects from `object_id`.
    fn read_device_identification(code: ReadDeviceIdCode, object_id: u8) -> DeviceIdentification = read_device_identification;
    /// A user-defined function code: `data` after the function code out,
    /// the response's data back.
    fn user_defined(function: u8, data: &'a [u8]) -> Vec<u8> = user_defined;
    /// 0x07 (serial line): the eight exception status outputs.
    fn read_exception_status() -> u8 = read_exception_status;
    /// 0x08 (serial line): diagnostics `sub_function`; the answer's data word.
    fn diagnostics(sub_function: u16, data: u16) -> u16 = diagnostics;
    /// 0x0B (serial line): the status word and the event count.
    fn get_comm_event_counter() -> (u16, u16) = get_comm_event_counter;
    /// 0x0C (serial line): the status, the counters and the last events.
    fn get_comm_event_log() -> CommEventLog = get_comm_event_log;
    /// 0x11 (serial line): the server's id, run indicator and own data.
    fn report_server_id() -> Vec<u8> = report_server_id;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu(bytes: &[u8]) -> Pdu {
        Pdu::copy_of(bytes)
    }

    #[test]
    fn read_coils_keeps_only_the_quantity_asked_for() {
        let coils = read_coils(0, 3)
            .output(pdu(&[0x01, 0x01, 0b1111_0101]))
            .unwrap();
        assert_eq!(coils, vec![true, false, true]);
    }

    #[test]
    fn too_few_values_is_unexpected_not_a_short_result() {
        let short = read_holding_registers(0, 2).output(pdu(&[0x03, 0x02, 0x00, 0x01]));
        assert!(matches!(short, Err(ClientError::Unexpected(_))));
    }

    #[test]
    fn an_exception_response_is_the_exception() {
        let denied = write_single_register(1, 2).output(pdu(&[0x86, 0x01]));
        assert!(matches!(
            denied,
            Err(ClientError::Exception(ExceptionCode::IllegalFunction))
        ));
    }

    #[test]
    fn a_response_of_another_kind_is_unexpected() {
        let other = write_single_coil(1, true).output(pdu(&[0x06, 0, 1, 0, 2]));
        assert!(matches!(other, Err(ClientError::Unexpected(_))));
    }

    #[test]
    fn events_become_outcomes_for_their_transaction() {
        let outcome = Outcome::from(ClientEvent::Timeout { transaction_id: 7 });
        assert!(matches!(
            outcome,
            Outcome::Call {
                transaction_id: 7,
                result: Err(ClientError::Timeout)
            }
        ));
    }
}
