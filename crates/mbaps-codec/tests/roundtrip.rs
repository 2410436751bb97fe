//! Property tests for the codec.
//!
//! - Every valid request and response, of every variant, encodes to
//!   `encoded_len()` bytes and decodes back to itself, as a PDU and as an ADU.
//! - Every PDU or ADU the decoders accept, arbitrary bytes and mutations of
//!   valid encodings alike, encodes back to exactly the bytes it came from.
//! - The stream decoder never claims more bytes than it was given, never asks
//!   for more than one ADU, and finds the same frames wherever a stream is cut.
//! - Every valid request and response of a function with a length rule is
//!   framed as RTU and found again in a stream of frames, wherever it is cut;
//!   a flipped bit anywhere in an RTU frame is never taken for a frame.
//!
//! Proptest generates owned values (`Vec`s); each test builds the borrowed
//! typed value from them in its body.

use mbaps_codec::{
    Adu, Bits, CodecError, ConformityLevel, Decoded, DeviceIdObject, DeviceIdentification,
    ExceptionCode, Field, FileRecordData, FileRecordRead, FileRecordWrite, List, MbapHeader,
    ReadDeviceIdCode, Registers, Request, Response, decode, encode_request, encode_response, rtu,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

const MAX_PDU: usize = 253;
const MAX_ADU: usize = 260;

// ---------------------------------------------------------------------------
// Owned values and their strategies
// ---------------------------------------------------------------------------

/// A write file record sub-request (or its echo), owned.
#[derive(Clone, Debug)]
struct OwnedWrite {
    file_number: u16,
    record_number: u16,
    data: Vec<u16>,
}

impl OwnedWrite {
    fn borrow(&self) -> FileRecordWrite<'_> {
        FileRecordWrite {
            file_number: self.file_number,
            record_number: self.record_number,
            data: Registers::from_values(&self.data),
        }
    }
}

#[derive(Clone, Debug)]
enum OwnedRequest {
    ReadCoils(u16, u16),
    ReadDiscreteInputs(u16, u16),
    ReadHoldingRegisters(u16, u16),
    ReadInputRegisters(u16, u16),
    WriteSingleCoil(u16, bool),
    WriteSingleRegister(u16, u16),
    WriteMultipleCoils(u16, Vec<bool>),
    WriteMultipleRegisters(u16, Vec<u16>),
    ReadFileRecord(Vec<FileRecordRead>),
    WriteFileRecord(Vec<OwnedWrite>),
    MaskWriteRegister(u16, u16, u16),
    ReadWriteMultipleRegisters(u16, u16, u16, Vec<u16>),
    ReadFifoQueue(u16),
    ReadDeviceIdentification(ReadDeviceIdCode, u8),
    UserDefined(u8, Vec<u8>),
    ReadExceptionStatus,
    Diagnostics(u16, u16),
    GetCommEventCounter,
    GetCommEventLog,
    ReportServerId,
}

/// Calls `f` with the borrowed request `owned` describes.
fn with_request<R>(owned: &OwnedRequest, f: impl FnOnce(&Request<'_>) -> R) -> R {
    let writes: Vec<FileRecordWrite<'_>>;
    let request = match owned {
        &OwnedRequest::ReadCoils(address, quantity) => Request::ReadCoils { address, quantity },
        &OwnedRequest::ReadDiscreteInputs(address, quantity) => {
            Request::ReadDiscreteInputs { address, quantity }
        }
        &OwnedRequest::ReadHoldingRegisters(address, quantity) => {
            Request::ReadHoldingRegisters { address, quantity }
        }
        &OwnedRequest::ReadInputRegisters(address, quantity) => {
            Request::ReadInputRegisters { address, quantity }
        }
        &OwnedRequest::WriteSingleCoil(address, value) => {
            Request::WriteSingleCoil { address, value }
        }
        &OwnedRequest::WriteSingleRegister(address, value) => {
            Request::WriteSingleRegister { address, value }
        }
        OwnedRequest::WriteMultipleCoils(address, values) => Request::WriteMultipleCoils {
            address: *address,
            values: Bits::from_bools(values),
        },
        OwnedRequest::WriteMultipleRegisters(address, values) => Request::WriteMultipleRegisters {
            address: *address,
            values: Registers::from_values(values),
        },
        OwnedRequest::ReadFileRecord(records) => Request::ReadFileRecord {
            records: List::from_items(records),
        },
        OwnedRequest::WriteFileRecord(records) => {
            writes = records.iter().map(OwnedWrite::borrow).collect();
            Request::WriteFileRecord {
                records: List::from_items(&writes),
            }
        }
        &OwnedRequest::MaskWriteRegister(address, and_mask, or_mask) => {
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            }
        }
        OwnedRequest::ReadWriteMultipleRegisters(
            read_address,
            read_quantity,
            write_address,
            values,
        ) => Request::ReadWriteMultipleRegisters {
            read_address: *read_address,
            read_quantity: *read_quantity,
            write_address: *write_address,
            values: Registers::from_values(values),
        },
        &OwnedRequest::ReadFifoQueue(address) => Request::ReadFifoQueue { address },
        &OwnedRequest::ReadDeviceIdentification(code, object_id) => {
            Request::ReadDeviceIdentification { code, object_id }
        }
        OwnedRequest::UserDefined(function, data) => Request::UserDefined {
            function: *function,
            data,
        },
        OwnedRequest::ReadExceptionStatus => Request::ReadExceptionStatus,
        &OwnedRequest::Diagnostics(sub_function, data) => {
            Request::Diagnostics { sub_function, data }
        }
        OwnedRequest::GetCommEventCounter => Request::GetCommEventCounter,
        OwnedRequest::GetCommEventLog => Request::GetCommEventLog,
        OwnedRequest::ReportServerId => Request::ReportServerId,
    };
    f(&request)
}

#[derive(Clone, Debug)]
struct OwnedDeviceId {
    code: ReadDeviceIdCode,
    conformity_level: ConformityLevel,
    more_follows: bool,
    next_object_id: u8,
    objects: Vec<(u8, Vec<u8>)>,
}

#[derive(Clone, Debug)]
enum OwnedResponse {
    ReadCoils(Vec<bool>),
    ReadDiscreteInputs(Vec<bool>),
    ReadHoldingRegisters(Vec<u16>),
    ReadInputRegisters(Vec<u16>),
    WriteSingleCoil(u16, bool),
    WriteSingleRegister(u16, u16),
    WriteMultipleCoils(u16, u16),
    WriteMultipleRegisters(u16, u16),
    ReadFileRecord(Vec<Vec<u16>>),
    WriteFileRecord(Vec<OwnedWrite>),
    MaskWriteRegister(u16, u16, u16),
    ReadWriteMultipleRegisters(Vec<u16>),
    ReadFifoQueue(Vec<u16>),
    ReadDeviceIdentification(OwnedDeviceId),
    UserDefined(u8, Vec<u8>),
    Exception(u8, ExceptionCode),
    ReadExceptionStatus(u8),
    Diagnostics(u16, u16),
    GetCommEventCounter(u16, u16),
    GetCommEventLog(u16, u16, u16, Vec<u8>),
    ReportServerId(Vec<u8>),
}

/// Calls `f` with the borrowed response `owned` describes.
fn with_response<R>(owned: &OwnedResponse, f: impl FnOnce(&Response<'_>) -> R) -> R {
    let reads: Vec<FileRecordData<'_>>;
    let writes: Vec<FileRecordWrite<'_>>;
    let objects: Vec<DeviceIdObject<'_>>;
    let response = match owned {
        OwnedResponse::ReadCoils(values) => Response::ReadCoils {
            values: Bits::from_bools(values),
        },
        OwnedResponse::ReadDiscreteInputs(values) => Response::ReadDiscreteInputs {
            values: Bits::from_bools(values),
        },
        OwnedResponse::ReadHoldingRegisters(values) => Response::ReadHoldingRegisters {
            values: Registers::from_values(values),
        },
        OwnedResponse::ReadInputRegisters(values) => Response::ReadInputRegisters {
            values: Registers::from_values(values),
        },
        &OwnedResponse::WriteSingleCoil(address, value) => {
            Response::WriteSingleCoil { address, value }
        }
        &OwnedResponse::WriteSingleRegister(address, value) => {
            Response::WriteSingleRegister { address, value }
        }
        &OwnedResponse::WriteMultipleCoils(address, quantity) => {
            Response::WriteMultipleCoils { address, quantity }
        }
        &OwnedResponse::WriteMultipleRegisters(address, quantity) => {
            Response::WriteMultipleRegisters { address, quantity }
        }
        OwnedResponse::ReadFileRecord(records) => {
            reads = records
                .iter()
                .map(|data| FileRecordData {
                    data: Registers::from_values(data),
                })
                .collect();
            Response::ReadFileRecord {
                records: List::from_items(&reads),
            }
        }
        OwnedResponse::WriteFileRecord(records) => {
            writes = records.iter().map(OwnedWrite::borrow).collect();
            Response::WriteFileRecord {
                records: List::from_items(&writes),
            }
        }
        &OwnedResponse::MaskWriteRegister(address, and_mask, or_mask) => {
            Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            }
        }
        OwnedResponse::ReadWriteMultipleRegisters(values) => Response::ReadWriteMultipleRegisters {
            values: Registers::from_values(values),
        },
        OwnedResponse::ReadFifoQueue(values) => Response::ReadFifoQueue {
            values: Registers::from_values(values),
        },
        OwnedResponse::ReadDeviceIdentification(id) => {
            objects = id
                .objects
                .iter()
                .map(|(object_id, value)| DeviceIdObject {
                    id: *object_id,
                    value,
                })
                .collect();
            Response::ReadDeviceIdentification(DeviceIdentification {
                code: id.code,
                conformity_level: id.conformity_level,
                more_follows: id.more_follows,
                next_object_id: id.next_object_id,
                objects: List::from_items(&objects),
            })
        }
        OwnedResponse::UserDefined(function, data) => Response::UserDefined {
            function: *function,
            data,
        },
        &OwnedResponse::Exception(function, code) => Response::Exception { function, code },
        &OwnedResponse::ReadExceptionStatus(status) => Response::ReadExceptionStatus { status },
        &OwnedResponse::Diagnostics(sub_function, data) => {
            Response::Diagnostics { sub_function, data }
        }
        &OwnedResponse::GetCommEventCounter(status, event_count) => Response::GetCommEventCounter {
            status,
            event_count,
        },
        OwnedResponse::GetCommEventLog(status, event_count, message_count, events) => {
            Response::GetCommEventLog {
                status: *status,
                event_count: *event_count,
                message_count: *message_count,
                events,
            }
        }
        OwnedResponse::ReportServerId(data) => Response::ReportServerId { data },
    };
    f(&response)
}

/// The leading items whose wire lengths add up to at most `budget`.
fn fit<T>(items: Vec<T>, budget: usize, wire_len: impl Fn(&T) -> usize) -> Vec<T> {
    let mut total = 0;
    items
        .into_iter()
        .take_while(|item| {
            total += wire_len(item);
            total <= budget
        })
        .collect()
}

/// Mostly short register blocks, sometimes up to the per-record maximum.
fn record_data() -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![
        3 => vec(any::<u16>(), 1..=8),
        1 => vec(any::<u16>(), 1..=121),
    ]
}

fn owned_writes() -> impl Strategy<Value = Vec<OwnedWrite>> {
    vec(
        (any::<u16>(), any::<u16>(), record_data()).prop_map(
            |(file_number, record_number, data)| OwnedWrite {
                file_number,
                record_number,
                data,
            },
        ),
        1..=6,
    )
    // Request data length 0x09..=0xFB; the first record (at most 249 bytes) always fits.
    .prop_map(|records| fit(records, 0xFB, |w| 7 + 2 * w.data.len()))
}

fn user_defined_code() -> impl Strategy<Value = u8> {
    select((65..=72).chain(100..=110).collect::<Vec<u8>>())
}

fn device_id_code() -> impl Strategy<Value = ReadDeviceIdCode> {
    select(vec![
        ReadDeviceIdCode::Basic,
        ReadDeviceIdCode::Regular,
        ReadDeviceIdCode::Extended,
        ReadDeviceIdCode::Individual,
    ])
}

fn request_strategy() -> impl Strategy<Value = OwnedRequest> {
    let a = any::<u16>;
    prop_oneof![
        (a(), 1..=2000u16).prop_map(|(a, q)| OwnedRequest::ReadCoils(a, q)),
        (a(), 1..=2000u16).prop_map(|(a, q)| OwnedRequest::ReadDiscreteInputs(a, q)),
        (a(), 1..=125u16).prop_map(|(a, q)| OwnedRequest::ReadHoldingRegisters(a, q)),
        (a(), 1..=125u16).prop_map(|(a, q)| OwnedRequest::ReadInputRegisters(a, q)),
        (a(), any::<bool>()).prop_map(|(a, v)| OwnedRequest::WriteSingleCoil(a, v)),
        (a(), a()).prop_map(|(a, v)| OwnedRequest::WriteSingleRegister(a, v)),
        (a(), vec(any::<bool>(), 1..=1968))
            .prop_map(|(a, v)| OwnedRequest::WriteMultipleCoils(a, v)),
        (a(), vec(any::<u16>(), 1..=123))
            .prop_map(|(a, v)| OwnedRequest::WriteMultipleRegisters(a, v)),
        vec(
            (a(), a(), 1..=121u16).prop_map(|(file_number, record_number, record_length)| {
                FileRecordRead {
                    file_number,
                    record_number,
                    record_length,
                }
            }),
            1..=35
        )
        .prop_map(OwnedRequest::ReadFileRecord),
        owned_writes().prop_map(OwnedRequest::WriteFileRecord),
        (a(), a(), a()).prop_map(|(a, and, or)| OwnedRequest::MaskWriteRegister(a, and, or)),
        (a(), 1..=125u16, a(), vec(any::<u16>(), 1..=121))
            .prop_map(|(r, q, w, v)| OwnedRequest::ReadWriteMultipleRegisters(r, q, w, v)),
        a().prop_map(OwnedRequest::ReadFifoQueue),
        (device_id_code(), any::<u8>())
            .prop_map(|(c, o)| OwnedRequest::ReadDeviceIdentification(c, o)),
        (user_defined_code(), vec(any::<u8>(), 0..=252))
            .prop_map(|(f, d)| OwnedRequest::UserDefined(f, d)),
        Just(OwnedRequest::ReadExceptionStatus),
        (a(), a()).prop_map(|(s, d)| OwnedRequest::Diagnostics(s, d)),
        Just(OwnedRequest::GetCommEventCounter),
        Just(OwnedRequest::GetCommEventLog),
        Just(OwnedRequest::ReportServerId),
    ]
}

/// Coil values filling whole bytes: a decoded read response holds whole bytes.
fn whole_bytes_of_bits() -> impl Strategy<Value = Vec<bool>> {
    (1usize..=250).prop_flat_map(|bytes| vec(any::<bool>(), bytes * 8))
}

fn device_identification() -> impl Strategy<Value = OwnedDeviceId> {
    let object = (
        any::<u8>(),
        prop_oneof![
            4 => vec(any::<u8>(), 0..=32),
            1 => vec(any::<u8>(), 0..=244),
        ],
    );
    (
        device_id_code(),
        select(vec![
            ConformityLevel::BasicStream,
            ConformityLevel::RegularStream,
            ConformityLevel::ExtendedStream,
            ConformityLevel::Basic,
            ConformityLevel::Regular,
            ConformityLevel::Extended,
        ]),
        any::<bool>(),
        any::<u8>(),
        // The PDU holds 7 bytes before the objects: 246 bytes of objects.
        vec(object, 0..=12).prop_map(|objects| fit(objects, 246, |(_, v)| 2 + v.len())),
    )
        .prop_map(
            |(code, conformity_level, more_follows, next_object_id, objects)| OwnedDeviceId {
                code,
                conformity_level,
                more_follows,
                next_object_id,
                objects,
            },
        )
}

fn response_strategy() -> impl Strategy<Value = OwnedResponse> {
    let a = any::<u16>;
    prop_oneof![
        whole_bytes_of_bits().prop_map(OwnedResponse::ReadCoils),
        whole_bytes_of_bits().prop_map(OwnedResponse::ReadDiscreteInputs),
        vec(any::<u16>(), 1..=125).prop_map(OwnedResponse::ReadHoldingRegisters),
        vec(any::<u16>(), 1..=125).prop_map(OwnedResponse::ReadInputRegisters),
        (a(), any::<bool>()).prop_map(|(a, v)| OwnedResponse::WriteSingleCoil(a, v)),
        (a(), a()).prop_map(|(a, v)| OwnedResponse::WriteSingleRegister(a, v)),
        (a(), 1..=1968u16).prop_map(|(a, q)| OwnedResponse::WriteMultipleCoils(a, q)),
        (a(), 1..=123u16).prop_map(|(a, q)| OwnedResponse::WriteMultipleRegisters(a, q)),
        // Response data length 0x04..=0xF5; the first sub-response (at most 244) fits.
        vec(record_data(), 1..=12)
            .prop_map(|records| fit(records, 0xF5, |data| 2 + 2 * data.len()))
            .prop_map(OwnedResponse::ReadFileRecord),
        owned_writes().prop_map(OwnedResponse::WriteFileRecord),
        (a(), a(), a()).prop_map(|(a, and, or)| OwnedResponse::MaskWriteRegister(a, and, or)),
        vec(any::<u16>(), 1..=125).prop_map(OwnedResponse::ReadWriteMultipleRegisters),
        vec(any::<u16>(), 0..=31).prop_map(OwnedResponse::ReadFifoQueue),
        device_identification().prop_map(OwnedResponse::ReadDeviceIdentification),
        (user_defined_code(), vec(any::<u8>(), 0..=252))
            .prop_map(|(f, d)| OwnedResponse::UserDefined(f, d)),
        (1..=0x7Fu8, select(ExceptionCode::ALL.to_vec()))
            .prop_map(|(f, c)| OwnedResponse::Exception(f, c)),
        any::<u8>().prop_map(OwnedResponse::ReadExceptionStatus),
        (a(), a()).prop_map(|(s, d)| OwnedResponse::Diagnostics(s, d)),
        (a(), a()).prop_map(|(s, c)| OwnedResponse::GetCommEventCounter(s, c)),
        (a(), a(), a(), vec(any::<u8>(), 0..=64))
            .prop_map(|(s, e, m, v)| OwnedResponse::GetCommEventLog(s, e, m, v)),
        vec(any::<u8>(), 1..=251).prop_map(OwnedResponse::ReportServerId),
    ]
}

fn header_strategy() -> impl Strategy<Value = MbapHeader> {
    (any::<u16>(), any::<u8>()).prop_map(|(transaction_id, unit_id)| MbapHeader {
        transaction_id,
        unit_id,
    })
}

fn request_bytes(owned: &OwnedRequest) -> Vec<u8> {
    with_request(owned, |request| {
        let mut out = [0u8; MAX_PDU];
        let len = request.encode(&mut out).expect("a valid request encodes");
        out[..len].to_vec()
    })
}

fn response_bytes(owned: &OwnedResponse) -> Vec<u8> {
    with_response(owned, |response| {
        let mut out = [0u8; MAX_PDU];
        let len = response.encode(&mut out).expect("a valid response encodes");
        out[..len].to_vec()
    })
}

/// A valid PDU, request or response, of any function.
fn valid_pdu() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        request_strategy().prop_map(|owned| request_bytes(&owned)),
        response_strategy().prop_map(|owned| response_bytes(&owned)),
    ]
}

/// A valid ADU around a valid PDU.
fn valid_adu() -> impl Strategy<Value = Vec<u8>> {
    (header_strategy(), valid_pdu()).prop_map(|(header, pdu)| {
        let mut out = [0u8; MAX_ADU];
        let adu = Adu { header, pdu: &pdu };
        let len = adu.encode(&mut out).expect("a valid ADU encodes");
        out[..len].to_vec()
    })
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Keep a proper prefix.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert one byte.
    Insert(Index, u8),
    /// Remove one byte.
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        vec(any::<u8>(), 1..=8).prop_map(Mutation::Extend),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if bytes.is_empty() {
            if let Mutation::Extend(tail) = mutation {
                bytes.extend_from_slice(tail);
            }
            continue;
        }
        let len = bytes.len();
        match mutation {
            Mutation::Flip(i, mask) => bytes[i.index(len)] ^= mask,
            Mutation::Set(i, byte) => bytes[i.index(len)] = *byte,
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Extend(tail) => bytes.extend_from_slice(tail),
            Mutation::Insert(i, byte) => bytes.insert(i.index(len + 1), *byte),
            Mutation::Remove(i) => {
                bytes.remove(i.index(len));
            }
        }
    }
    bytes
}

/// Bytes that are often almost a PDU: a known function code (exception bit
/// or not) and a short body, arbitrary bytes, or a mutated valid PDU.
fn candidate_pdu() -> impl Strategy<Value = Vec<u8>> {
    let codes: Vec<u8> = [
        0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10, 0x14, 0x15, 0x16, 0x17, 0x18, 0x2B, 65,
        110, 0x07, 0x00,
    ]
    .iter()
    .flat_map(|&code| [code, code | 0x80])
    .collect();
    prop_oneof![
        2 => (select(codes), vec(any::<u8>(), 0..=12)).prop_map(|(code, body)| {
            let mut pdu = vec![code];
            pdu.extend(body);
            pdu
        }),
        1 => vec(any::<u8>(), 0..=300),
        4 => (valid_pdu(), vec(mutation(), 0..=3)).prop_map(|(pdu, m)| mutate(pdu, &m)),
    ]
}

/// Bytes that are often almost an ADU stream.
fn candidate_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..=300),
        // A plausible header (protocol 0, small length) and arbitrary rest.
        1 => (any::<u16>(), 0u16..=300, vec(any::<u8>(), 0..=300)).prop_map(|(t, l, rest)| {
            let mut bytes = t.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 0]);
            bytes.extend_from_slice(&l.to_be_bytes());
            bytes.extend(rest);
            bytes
        }),
        4 => (vec(valid_adu(), 1..=3), vec(mutation(), 0..=3))
            .prop_map(|(adus, m)| mutate(adus.concat(), &m)),
    ]
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Encodes a request as a PDU and an ADU and decodes both back.
fn check_request_identity(request: &Request<'_>, header: MbapHeader) -> Result<(), TestCaseError> {
    let mut out = [0u8; MAX_PDU];
    let len = request.encode(&mut out).map_err(|e| fail(request, e))?;
    prop_assert_eq!(len, request.encoded_len());
    prop_assert_eq!(out[0], request.function().code());
    prop_assert_eq!(Request::decode(&out[..len]), Ok(*request));

    let mut adu = [0u8; MAX_ADU];
    let adu_len = encode_request(header, request, &mut adu).map_err(|e| fail(request, e))?;
    prop_assert_eq!(adu_len, 7 + len);
    match decode(&adu[..adu_len]) {
        Ok(Decoded::Frame {
            adu: frame,
            consumed,
        }) => {
            prop_assert_eq!(consumed, adu_len);
            prop_assert_eq!(frame.header, header);
            prop_assert_eq!(frame.pdu, &out[..len]);
            prop_assert_eq!(frame.request(), Ok(*request));
        }
        other => prop_assert!(false, "not a frame: {:?}", other),
    }
    // A buffer one byte short is refused with the exact sizes.
    prop_assert_eq!(
        encode_request(header, request, &mut adu[..adu_len - 1]),
        Err(CodecError::InsufficientSize {
            required: adu_len,
            available: adu_len - 1
        })
    );
    Ok(())
}

fn check_response_identity(
    response: &Response<'_>,
    header: MbapHeader,
) -> Result<(), TestCaseError> {
    let mut out = [0u8; MAX_PDU];
    let len = response.encode(&mut out).map_err(|e| fail(response, e))?;
    prop_assert_eq!(len, response.encoded_len());
    let exception_bit = if response.is_exception() { 0x80 } else { 0 };
    prop_assert_eq!(out[0], response.function_code() | exception_bit);
    prop_assert_eq!(Response::decode(&out[..len]), Ok(*response));

    let mut adu = [0u8; MAX_ADU];
    let adu_len = encode_response(header, response, &mut adu).map_err(|e| fail(response, e))?;
    prop_assert_eq!(adu_len, 7 + len);
    match decode(&adu[..adu_len]) {
        Ok(Decoded::Frame {
            adu: frame,
            consumed,
        }) => {
            prop_assert_eq!(consumed, adu_len);
            prop_assert_eq!(frame.header, header);
            prop_assert_eq!(frame.pdu, &out[..len]);
            prop_assert_eq!(frame.response(), Ok(*response));
        }
        other => prop_assert!(false, "not a frame: {:?}", other),
    }
    prop_assert_eq!(
        response.encode(&mut out[..len - 1]),
        Err(CodecError::InsufficientSize {
            required: len,
            available: len - 1
        })
    );
    Ok(())
}

fn fail(value: &dyn core::fmt::Debug, err: CodecError) -> TestCaseError {
    TestCaseError::fail(format!("{value:?} does not encode: {err}"))
}

/// If `pdu` decodes as a request or a response, it re-encodes to itself.
fn check_pdu_reencodes(pdu: &[u8]) -> Result<(), TestCaseError> {
    let mut out = [0u8; MAX_PDU];
    if let Ok(request) = Request::decode(pdu) {
        prop_assert_eq!(request.encoded_len(), pdu.len());
        let len = request.encode(&mut out).map_err(|e| fail(&request, e))?;
        prop_assert_eq!(&out[..len], pdu, "request {:?}", request);
    }
    if let Ok(response) = Response::decode(pdu) {
        prop_assert_eq!(response.encoded_len(), pdu.len());
        let len = response.encode(&mut out).map_err(|e| fail(&response, e))?;
        prop_assert_eq!(&out[..len], pdu, "response {:?}", response);
    }
    Ok(())
}

/// Whatever `decode` says about `stream` is consistent with the stream.
fn check_stream_decode(stream: &[u8]) -> Result<(), TestCaseError> {
    match decode(stream) {
        Ok(Decoded::Frame { adu, consumed }) => {
            prop_assert!(consumed <= stream.len());
            prop_assert!((8..=MAX_ADU).contains(&consumed));
            prop_assert_eq!(consumed, adu.wire_len());
            prop_assert_eq!(adu.pdu, &stream[7..consumed]);
            let mut out = [0u8; MAX_ADU];
            let len = adu.encode(&mut out).map_err(|e| fail(&adu, e))?;
            prop_assert_eq!(&out[..len], &stream[..consumed]);
            check_pdu_reencodes(adu.pdu)?;
        }
        Ok(Decoded::Incomplete { needed }) => {
            prop_assert!(needed >= 1);
            // Never more than one ADU is buffered.
            prop_assert!(stream.len() + needed <= MAX_ADU);
            if stream.len() >= 6 {
                // Exactly `needed` more bytes complete the frame.
                let mut longer = stream.to_vec();
                longer.resize(stream.len() + needed - 1, 0);
                prop_assert_eq!(decode(&longer), Ok(Decoded::Incomplete { needed: 1 }));
                longer.push(0);
                let complete = matches!(decode(&longer), Ok(Decoded::Frame { consumed, .. }) if consumed == longer.len());
                prop_assert!(complete, "no frame after {} more bytes", needed);
            } else {
                prop_assert_eq!(needed, 7 - stream.len());
            }
        }
        Err(CodecError::OutOfRange {
            function: None,
            field: Field::Length,
            value,
            min: 2,
            max: 254,
        }) => {
            prop_assert!(stream.len() >= 6);
            prop_assert_eq!(value, u32::from(u16::from_be_bytes([stream[4], stream[5]])));
            prop_assert!(!(2..=254).contains(&value));
        }
        Err(CodecError::ProtocolId { value, frame_len }) => {
            prop_assert!(stream.len() >= 6);
            prop_assert_ne!(value, 0);
            prop_assert_eq!(value, u16::from_be_bytes([stream[2], stream[3]]));
            prop_assert!((8..=MAX_ADU).contains(&frame_len));
        }
        Err(other) => prop_assert!(false, "unexpected stream error {:?}", other),
    }
    Ok(())
}

/// Frames found in `pieces` fed one after the other to a reader that keeps
/// what it has not consumed yet: (header, offset of the ADU in the stream,
/// its length). Checks that nothing is left over.
fn frames_fed_in_pieces(
    pieces: &[&[u8]],
) -> Result<Vec<(MbapHeader, usize, usize)>, TestCaseError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut frames = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            match decode(&buffer[start..]) {
                Ok(Decoded::Frame { adu, consumed }) => {
                    prop_assert!(consumed <= buffer.len() - start);
                    frames.push((adu.header, start, consumed));
                    start += consumed;
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(err) => return Err(TestCaseError::fail(format!("{err}"))),
            }
        }
    }
    prop_assert_eq!(start, buffer.len(), "bytes left over");
    Ok(frames)
}

/// RTU frames of `pdus`, back to back, and the frames' lengths.
fn rtu_stream(pdus: &[(u8, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    let mut stream = Vec::new();
    let mut lengths = Vec::new();
    for (unit_id, pdu) in pdus {
        let mut out = [0u8; rtu::MAX_RTU_FRAME_LEN];
        let frame = rtu::RtuFrame {
            unit_id: *unit_id,
            pdu,
        };
        let len = frame.encode(&mut out).expect("a valid PDU frames");
        stream.extend_from_slice(&out[..len]);
        lengths.push(len);
    }
    (stream, lengths)
}

/// Decodes `stream`, fed `chunk` bytes at a time, into (unit, PDU) pairs.
fn rtu_frames_fed_in_pieces(
    stream: &[u8],
    chunk: usize,
    kind: rtu::RtuFrameKind,
) -> Result<Vec<(u8, Vec<u8>)>, TestCaseError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buffer.extend_from_slice(piece);
        loop {
            match rtu::decode_rtu(&buffer, kind) {
                Ok(rtu::RtuDecoded::Frame { frame, consumed }) => {
                    frames.push((frame.unit_id, frame.pdu.to_vec()));
                    buffer.drain(..consumed);
                }
                Ok(rtu::RtuDecoded::Incomplete { needed }) => {
                    prop_assert!(buffer.len() + needed <= rtu::MAX_RTU_FRAME_LEN);
                    break;
                }
                Err(err) => return Err(fail(&buffer, err)),
            }
        }
    }
    prop_assert!(buffer.is_empty(), "{} bytes left", buffer.len());
    Ok(frames)
}

/// PDUs of functions with an RTU length rule (the user-defined codes have
/// none), each with the kind of frame it travels in.
fn rtu_pdus() -> impl Strategy<Value = (rtu::RtuFrameKind, Vec<(u8, Vec<u8>)>)> {
    let framed = |pdu: &Vec<u8>| !matches!(pdu[0] & 0x7F, 65..=72 | 100..=110);
    prop_oneof![
        vec(
            (
                any::<u8>(),
                request_strategy().prop_map(|o| request_bytes(&o))
            ),
            1..6
        )
        .prop_map(|pdus| (rtu::RtuFrameKind::Request, pdus)),
        vec(
            (
                any::<u8>(),
                response_strategy().prop_map(|o| response_bytes(&o))
            ),
            1..6
        )
        .prop_map(|pdus| (rtu::RtuFrameKind::Response, pdus)),
    ]
    .prop_map(move |(kind, pdus)| (kind, pdus.into_iter().filter(|(_, p)| framed(p)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rtu_frames_are_found_again_wherever_the_stream_is_cut(
        (kind, pdus) in rtu_pdus(),
        chunk in 1usize..40,
    ) {
        let (stream, _) = rtu_stream(&pdus);
        prop_assert_eq!(rtu_frames_fed_in_pieces(&stream, chunk, kind)?, pdus);
    }

    #[test]
    fn a_flipped_bit_in_an_rtu_frame_is_never_a_frame(
        (kind, pdus) in rtu_pdus(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let Some(first) = pdus.first() else { return Ok(()) };
        let (mut stream, lengths) = rtu_stream(core::slice::from_ref(first));
        let at = at.index(lengths[0]);
        stream[at] ^= 1 << bit;
        // The CRC-16 finds every single-bit error in a frame of the same
        // length. A flip in a function code or a byte count changes the
        // length rule: the frame read then is another one (whose CRC is
        // right once in 65,536), not this one with an error in it.
        if let Ok(rtu::RtuDecoded::Frame { frame, consumed }) = rtu::decode_rtu(&stream, kind) {
            prop_assert!(
                consumed != lengths[0],
                "bit {} of byte {} flipped, frame accepted: {:?}", bit, at, frame
            );
        }
    }

    #[test]
    fn every_valid_request_encodes_and_decodes_to_itself(
        owned in request_strategy(),
        header in header_strategy(),
    ) {
        with_request(&owned, |request| check_request_identity(request, header))?;
    }

    #[test]
    fn every_valid_response_encodes_and_decodes_to_itself(
        owned in response_strategy(),
        header in header_strategy(),
    ) {
        with_response(&owned, |response| check_response_identity(response, header))?;
    }

    /// Read coils / discrete inputs of any count: the client gets the values
    /// it asked for, then zero padding to a whole byte.
    #[test]
    fn read_bits_responses_of_any_count_keep_their_values(
        values in vec(any::<bool>(), 1..=2000),
        inputs in any::<bool>(),
    ) {
        let bits = Bits::from_bools(&values);
        let response = if inputs {
            Response::ReadDiscreteInputs { values: bits }
        } else {
            Response::ReadCoils { values: bits }
        };
        let mut out = [0u8; MAX_PDU];
        let len = response.encode(&mut out).map_err(|e| fail(&response, e))?;
        prop_assert_eq!(len, response.encoded_len());
        prop_assert_eq!(len, 2 + values.len().div_ceil(8));
        prop_assert_eq!(usize::from(out[1]), values.len().div_ceil(8));
        let decoded = match Response::decode(&out[..len]) {
            Ok(Response::ReadCoils { values }) if !inputs => values,
            Ok(Response::ReadDiscreteInputs { values }) if inputs => values,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(decoded.len(), 8 * values.len().div_ceil(8));
        prop_assert!(decoded.iter().take(values.len()).eq(values.iter().copied()));
        prop_assert!(decoded.iter().skip(values.len()).all(|bit| !bit));
        // The packed bytes, bit by bit, least significant first.
        for (i, value) in values.iter().enumerate() {
            prop_assert_eq!(out[2 + i / 8] & (1 << (i % 8)) != 0, *value);
        }
    }

    #[test]
    fn accepted_pdus_reencode_to_the_same_bytes(pdu in candidate_pdu()) {
        check_pdu_reencodes(&pdu)?;
    }

    #[test]
    fn accepted_frames_reencode_to_the_same_bytes(stream in candidate_stream()) {
        check_stream_decode(&stream)?;
    }

    #[test]
    fn a_stream_split_anywhere_gives_the_same_frames(
        adus in vec(valid_adu(), 1..=5),
    ) {
        let stream = adus.concat();
        let whole = frames_fed_in_pieces(&[&stream])?;
        prop_assert_eq!(whole.len(), adus.len());
        let mut offset = 0;
        for ((header, start, consumed), adu) in whole.iter().zip(&adus) {
            prop_assert_eq!(*start, offset);
            prop_assert_eq!(*consumed, adu.len());
            prop_assert_eq!(header.transaction_id, u16::from_be_bytes([adu[0], adu[1]]));
            prop_assert_eq!(header.unit_id, adu[6]);
            offset += adu.len();
        }
        for split in 0..=stream.len() {
            let (first, second) = stream.split_at(split);
            let pieces = frames_fed_in_pieces(&[first, second])?;
            prop_assert_eq!(&pieces, &whole, "split at {}", split);
        }
    }

    #[test]
    fn decode_never_consumes_more_than_it_was_given(
        stream in candidate_stream(),
        cut in any::<Index>(),
    ) {
        let cut = cut.index(stream.len() + 1);
        check_stream_decode(&stream[..cut])?;
        // Walk the whole stream as a reader would, skipping discarded frames.
        let mut rest = &stream[..];
        loop {
            match decode(rest) {
                Ok(Decoded::Frame { consumed, .. }) => {
                    prop_assert!(consumed <= rest.len());
                    rest = &rest[consumed..];
                }
                Err(CodecError::ProtocolId { frame_len, .. }) if frame_len <= rest.len() => {
                    rest = &rest[frame_len..];
                }
                _ => break,
            }
        }
    }

    /// The views answer `get` like the slices they were built from, for any index.
    #[test]
    fn views_get_like_slices(
        values in vec(any::<u16>(), 0..=8),
        bools in vec(any::<bool>(), 0..=20),
        index in any::<usize>(),
        small in 0usize..32,
    ) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let wire = Registers::from_be_bytes(&bytes).expect("even length");
        let native = Registers::from_values(&values);
        for i in [index, small, usize::MAX, usize::MAX / 2, usize::MAX / 2 + 1] {
            prop_assert_eq!(wire.get(i), values.get(i).copied());
            prop_assert_eq!(native.get(i), values.get(i).copied());
        }
        prop_assert_eq!(wire, native);
        let bits = Bits::from_bools(&bools);
        for i in [index, small, usize::MAX] {
            prop_assert_eq!(bits.get(i), bools.get(i).copied());
        }
    }
}

// ---------------------------------------------------------------------------
// Exhaustive single-byte substitutions of the spec examples
// ---------------------------------------------------------------------------

/// Every byte of every example replaced by every value: whatever is still
/// accepted re-encodes to exactly the bytes it came from. Deterministic, so
/// the decode -> encode property is exercised on many accepted inputs.
#[test]
fn every_single_byte_substitution_of_the_examples_reencodes_exactly() {
    let examples = [
        "01 00 13 00 13",
        "01 03 CD 6B 05",
        "02 03 AC DB 35",
        "03 06 02 2B 00 00 00 64",
        "05 00 AC FF 00",
        "0F 00 13 00 0A 02 CD 01",
        "10 00 01 00 02 04 00 0A 01 02",
        "14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02",
        "14 0C 05 06 0D FE 00 20 05 06 33 CD 00 40",
        "15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D",
        "16 00 04 00 F2 00 25",
        "17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF",
        "17 0C 00 FE 0A CD 00 01 00 03 00 0D 00 FF",
        "18 04 DE",
        "18 00 06 00 02 01 B8 12 84",
        "2B 0E 01 00",
        "2B 0E 01 01 00 00 01 02 05 56 32 2E 31 31",
        "81 02",
    ];
    let mut accepted = 0usize;
    let mut rejected = 0usize;
    for example in examples {
        let original = hex::decode(example.replace(' ', "")).unwrap();
        assert!(
            Request::decode(&original).is_ok() || Response::decode(&original).is_ok(),
            "{example}"
        );
        for position in 0..original.len() {
            for byte in 0..=u8::MAX {
                let mut pdu = original.clone();
                pdu[position] = byte;
                let any_accepted = Request::decode(&pdu).is_ok() || Response::decode(&pdu).is_ok();
                if any_accepted {
                    accepted += 1;
                } else {
                    rejected += 1;
                }
                check_pdu_reencodes(&pdu).unwrap_or_else(|e| panic!("{pdu:02X?}: {e}"));
            }
        }
    }
    // Both outcomes occur, many times: the loop above is not vacuous.
    assert!(accepted > 10_000, "accepted {accepted}");
    assert!(rejected > 1_000, "rejected {rejected}");
}
