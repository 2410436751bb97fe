//! What a client call ends in, and typed calls: a request and how to read
//! its response. The std and tokio adapters build their one-method-per-
//! function clients on these, so they agree on results and errors.

use mbaps_codec::{
    Bits, DeviceIdObject, ExceptionCode, FileRecordRead, FileRecordWrite, List, ReadDeviceIdCode,
    Registers, Request, Response,
};
use mbaps_codec::{ConformityLevel, DeviceIdentification as WireIdentification};

use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, Handshake, InvalidResponse, Pdu};

/// Why a call returned no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection failed (connect refused, reset, ...).
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The session failed: a TLS alert (which one is in the error), a
    /// refused certificate (why), a handshake timeout.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// The server answered with a Modbus exception.
    #[error("the server answered exception {0}")]
    Exception(ExceptionCode),
    /// A response came but does not answer the request.
    #[error("invalid response: {0:?}")]
    Invalid(InvalidResponse),
    /// No response within the call's timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The session closed before the response came.
    #[error("the session closed ({0:?})")]
    Closed(CloseReason),
    /// The response is valid but not of the kind the typed call expects.
    #[error("unexpected response: {0:?}")]
    Unexpected(Box<Pdu>),
}

impl ClientError {
    /// The same error again, for each of several calls a session failure
    /// ends (an I/O error keeps its kind and message).
    pub fn again(&self) -> ClientError {
        match self {
            ClientError::Io(error) => {
                ClientError::Io(std::io::Error::new(error.kind(), error.to_string()))
            }
            ClientError::Session(error) => ClientError::Session(error.clone()),
            ClientError::Exception(code) => ClientError::Exception(*code),
            ClientError::Invalid(invalid) => ClientError::Invalid(*invalid),
            ClientError::Timeout => ClientError::Timeout,
            ClientError::Closed(reason) => ClientError::Closed(*reason),
            ClientError::Unexpected(pdu) => ClientError::Unexpected(pdu.clone()),
        }
    }
}

/// A [`ClientEvent`] seen from a caller waiting on a transaction id.
#[derive(Debug)]
// The PDU travels inline, as in ClientEvent: boxing would allocate per call.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Request `transaction_id` is over, with this result (an exception
    /// response is [`ClientError::Exception`]).
    Call {
        /// The request's transaction id.
        transaction_id: u16,
        /// Its result.
        result: Result<Pdu, ClientError>,
    },
    /// The handshake finished.
    Connected(Option<Handshake>),
    /// The session ended without error; requests in flight were
    /// reported before as [`Outcome::Call`] with [`ClientError::Closed`].
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
            ClientEvent::Aborted { transaction_id } => (
                transaction_id,
                Err(ClientError::Closed(CloseReason::PeerClosed)),
            ),
            ClientEvent::Connected(handshake) => return Outcome::Connected(handshake),
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
/// Built by the functions of this module, one per function code; run by an
/// adapter's `execute`.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a, T> {
    request: Request<'a>,
    /// Read coils/discrete inputs answer whole bytes: keep this many bits.
    quantity: usize,
    read: fn(&Response<'_>, usize) -> Option<T>,
}

impl<'a, T> Call<'a, T> {
    /// The request to send.
    pub fn request(&self) -> &Request<'a> {
        &self.request
    }

    /// Reads the response `pdu` (not an exception: see [`Outcome`]).
    pub fn output(&self, pdu: Pdu) -> Result<T, ClientError> {
        match pdu.response() {
            Ok(Response::Exception { code, .. }) => Err(ClientError::Exception(code)),
            Ok(response) => match (self.read)(&response, self.quantity) {
                Some(output) => Ok(output),
                None => Err(ClientError::Unexpected(Box::new(pdu))),
            },
            Err(_) => Err(ClientError::Unexpected(Box::new(pdu))),
        }
    }
}

fn call<'a, T>(
    request: Request<'a>,
    quantity: usize,
    read: fn(&Response<'_>, usize) -> Option<T>,
) -> Call<'a, T> {
    Call {
        request,
        quantity,
        read,
    }
}

fn first_bits(values: &Bits<'_>, quantity: usize) -> Option<Vec<bool>> {
    (values.len() >= quantity).then(|| values.iter().take(quantity).collect())
}

fn registers(values: &Registers<'_>) -> Vec<u16> {
    values.iter().collect()
}

/// 0x01: `quantity` coils from `address`.
pub fn read_coils(address: u16, quantity: u16) -> Call<'static, Vec<bool>> {
    call(
        Request::ReadCoils { address, quantity },
        usize::from(quantity),
        |r, n| match r {
            Response::ReadCoils { values } => first_bits(values, n),
            _ => None,
        },
    )
}

/// 0x02: `quantity` discrete inputs from `address`.
pub fn read_discrete_inputs(address: u16, quantity: u16) -> Call<'static, Vec<bool>> {
    call(
        Request::ReadDiscreteInputs { address, quantity },
        usize::from(quantity),
        |r, n| match r {
            Response::ReadDiscreteInputs { values } => first_bits(values, n),
            _ => None,
        },
    )
}

/// 0x03: `quantity` holding registers from `address`.
pub fn read_holding_registers(address: u16, quantity: u16) -> Call<'static, Vec<u16>> {
    call(
        Request::ReadHoldingRegisters { address, quantity },
        usize::from(quantity),
        |r, n| match r {
            Response::ReadHoldingRegisters { values } if values.len() == n => {
                Some(registers(values))
            }
            _ => None,
        },
    )
}

/// 0x04: `quantity` input registers from `address`.
pub fn read_input_registers(address: u16, quantity: u16) -> Call<'static, Vec<u16>> {
    call(
        Request::ReadInputRegisters { address, quantity },
        usize::from(quantity),
        |r, n| match r {
            Response::ReadInputRegisters { values } if values.len() == n => Some(registers(values)),
            _ => None,
        },
    )
}

/// 0x05: sets one coil ON or OFF.
pub fn write_single_coil(address: u16, value: bool) -> Call<'static, ()> {
    call(Request::WriteSingleCoil { address, value }, 0, |r, _| {
        matches!(r, Response::WriteSingleCoil { .. }).then_some(())
    })
}

/// 0x06: writes one holding register.
pub fn write_single_register(address: u16, value: u16) -> Call<'static, ()> {
    call(
        Request::WriteSingleRegister { address, value },
        0,
        |r, _| matches!(r, Response::WriteSingleRegister { .. }).then_some(()),
    )
}

/// 0x0F: writes coils from `address`.
pub fn write_multiple_coils(address: u16, values: &[bool]) -> Call<'_, ()> {
    let request = Request::WriteMultipleCoils {
        address,
        values: Bits::from_bools(values),
    };
    call(request, values.len(), |r, n| match r {
        Response::WriteMultipleCoils { quantity, .. } if usize::from(*quantity) == n => Some(()),
        _ => None,
    })
}

/// 0x10: writes holding registers from `address`.
pub fn write_multiple_registers(address: u16, values: &[u16]) -> Call<'_, ()> {
    let request = Request::WriteMultipleRegisters {
        address,
        values: Registers::from_values(values),
    };
    call(request, values.len(), |r, n| match r {
        Response::WriteMultipleRegisters { quantity, .. } if usize::from(*quantity) == n => {
            Some(())
        }
        _ => None,
    })
}

/// 0x14: reads file records, one register list per sub-request.
pub fn read_file_records(records: &[FileRecordRead]) -> Call<'_, Vec<Vec<u16>>> {
    let request = Request::ReadFileRecord {
        records: List::from_items(records),
    };
    call(request, records.len(), |r, n| match r {
        Response::ReadFileRecord { records } if records.len() == n => Some(
            records
                .iter()
                .map(|record| registers(&record.data))
                .collect(),
        ),
        _ => None,
    })
}

/// 0x15: writes file records.
pub fn write_file_records<'a>(records: &'a [FileRecordWrite<'a>]) -> Call<'a, ()> {
    let request = Request::WriteFileRecord {
        records: List::from_items(records),
    };
    call(request, records.len(), |r, n| match r {
        Response::WriteFileRecord { records } if records.len() == n => Some(()),
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
    call(request, 0, |r, _| {
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
    call(request, usize::from(read_quantity), |r, n| match r {
        Response::ReadWriteMultipleRegisters { values } if values.len() == n => {
            Some(registers(values))
        }
        _ => None,
    })
}

/// 0x18: the FIFO queue whose count register is at `address`, oldest first.
pub fn read_fifo_queue(address: u16) -> Call<'static, Vec<u16>> {
    call(Request::ReadFifoQueue { address }, 0, |r, _| match r {
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
        0,
        |r, _| match r {
            Response::ReadDeviceIdentification(identification) => Some(identification.into()),
            _ => None,
        },
    )
}

/// A user-defined function code (65..=72, 100..=110): `data` is sent after
/// the function code, and the response's data is returned as is.
pub fn user_defined(function: u8, data: &[u8]) -> Call<'_, Vec<u8>> {
    call(
        Request::UserDefined { function, data },
        usize::from(function),
        |r, f| match r {
            Response::UserDefined { function, data } if usize::from(*function) == f => {
                Some(data.to_vec())
            }
            _ => None,
        },
    )
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
