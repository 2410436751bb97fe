//! # mbaps-simulator
//!
//! An in-memory Modbus device for simulators, tests and benchmarks:
//! [`RegisterMap`] answers every function code of Modbus/TCP from its
//! [`Tables`] (coils, discrete inputs, holding and input registers, file
//! records, a FIFO, device identification). It is a
//! `Handler` for the std and tokio servers, and
//! what `mbaps server` serves.
//!
//! ```text
//!  server session ──authorized request──► RegisterMap::handle ──► Tables (behind a mutex)
//!                 ◄─────── response (encoded into the session's output)
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mbaps_codec::{
    Bits, DeviceIdObject, DeviceIdentification, ExceptionCode, FileRecordData, List,
    ReadDeviceIdCode, Registers, Request, Response,
};
use mbaps_session::{Handler, Reply, RequestContext};

/// Device identification objects a [`RegisterMap`] reports (0x2B / 0x0E).
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Object 0x00, mandatory.
    pub vendor_name: String,
    /// Object 0x01, mandatory.
    pub product_code: String,
    /// Object 0x02, mandatory.
    pub revision: String,
}

impl Default for DeviceInfo {
    fn default() -> Self {
        DeviceInfo {
            vendor_name: "mbaps".into(),
            product_code: "mbaps-simulator".into(),
            revision: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The data of one device: every table with all 65,536 addresses, and a
/// sparse file area.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Coils.
    pub coils: Vec<bool>,
    /// Discrete inputs.
    pub discrete_inputs: Vec<bool>,
    /// Holding registers.
    pub holding_registers: Vec<u16>,
    /// Input registers.
    pub input_registers: Vec<u16>,
    /// File records: (file number, record number) -> value.
    pub files: BTreeMap<(u16, u16), u16>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            coils: vec![false; 65_536],
            discrete_inputs: vec![false; 65_536],
            holding_registers: vec![0; 65_536],
            input_registers: vec![0; 65_536],
            files: BTreeMap::new(),
        }
    }
}

impl Tables {
    /// Tables preset so that reads return recognisable data: register `n`
    /// holds `n`, coil and input `n` are on when `n % 3 == 0`.
    pub fn preset() -> Tables {
        let mut tables = Tables::default();
        for n in 0..65_536usize {
            tables.holding_registers[n] = n as u16;
            tables.input_registers[n] = n as u16;
            tables.coils[n] = n % 3 == 0;
            tables.discrete_inputs[n] = n % 3 == 0;
        }
        tables
    }
}

/// An in-memory device: one set of [`Tables`] answering every unit id (or
/// only the ones given), with device identification. Thread-safe; cheap to
/// clone (clones share the data).
#[derive(Clone, Debug)]
pub struct RegisterMap {
    tables: Arc<Mutex<Tables>>,
    units: Option<Vec<u8>>,
    info: Arc<DeviceInfo>,
    /// Requests answered normally since the last clear: the comm event
    /// counter of the serial-line functions.
    events: Arc<std::sync::atomic::AtomicU16>,
}

impl Default for RegisterMap {
    fn default() -> Self {
        RegisterMap::new(Tables::default())
    }
}

fn range(address: u16, count: usize) -> Result<std::ops::Range<usize>, ExceptionCode> {
    let start = usize::from(address);
    let end = start + count;
    if end > 65_536 {
        Err(ExceptionCode::IllegalDataAddress)
    } else {
        Ok(start..end)
    }
}

impl RegisterMap {
    /// A device with these tables, answering every unit id.
    pub fn new(tables: Tables) -> RegisterMap {
        RegisterMap {
            tables: Arc::new(Mutex::new(tables)),
            units: None,
            info: Arc::new(DeviceInfo::default()),
            events: Arc::default(),
        }
    }

    /// Answers only these unit ids; others get exception 0x0B (gateway
    /// target failed to respond).
    pub fn only_units(mut self, units: &[u8]) -> RegisterMap {
        self.units = Some(units.to_vec());
        self
    }

    /// The device identification objects.
    pub fn device_info(mut self, info: DeviceInfo) -> RegisterMap {
        self.info = Arc::new(info);
        self
    }

    /// The tables, locked, to read or change them from the application.
    pub fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while the lock was held leaves plain data: keep serving.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Handler for RegisterMap {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        if let Some(units) = &self.units
            && !units.contains(&context.unit_id)
        {
            return Err(ExceptionCode::GatewayTargetFailedToRespond);
        }
        let result = self.answer(request, reply);
        if result.is_ok() {
            self.events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}

/// The id report server id (0x11) answers with: `M`, then the run
/// indicator (0xFF: running) and the product's name.
pub const SERVER_ID: u8 = b'M';

impl RegisterMap {
    fn answer(&self, request: &Request<'_>, reply: &mut Reply<'_>) -> Result<(), ExceptionCode> {
        let mut t = self.tables();
        let events = || self.events.load(std::sync::atomic::Ordering::Relaxed);
        match *request {
            // The serial-line functions, as a small serial device answers
            // them: the first eight coils are the exception status, the
            // counters count requests answered, and only the diagnostics
            // that change nothing but the counters are served.
            Request::ReadExceptionStatus => {
                let status = t.coils[..8]
                    .iter()
                    .enumerate()
                    .fold(0u8, |status, (bit, &on)| status | (u8::from(on) << bit));
                reply.send(&Response::ReadExceptionStatus { status })
            }
            Request::Diagnostics { sub_function, data } => {
                let data = match sub_function {
                    // Return query data: the echo.
                    0x00 => data,
                    // Clear counters and diagnostic register.
                    0x0A => {
                        self.events.store(0, std::sync::atomic::Ordering::Relaxed);
                        data
                    }
                    // Return bus message count, server message count.
                    0x0B | 0x0E => events(),
                    _ => return Err(ExceptionCode::IllegalFunction),
                };
                reply.send(&Response::Diagnostics { sub_function, data })
            }
            Request::GetCommEventCounter => reply.send(&Response::GetCommEventCounter {
                status: 0,
                event_count: events(),
            }),
            Request::GetCommEventLog => reply.send(&Response::GetCommEventLog {
                status: 0,
                event_count: events(),
                message_count: events(),
                events: &[],
            }),
            Request::ReportServerId => {
                let mut data = vec![SERVER_ID, 0xFF];
                data.extend_from_slice(self.info.product_code.as_bytes());
                data.truncate(251);
                reply.send(&Response::ReportServerId { data: &data })
            }
            Request::ReadCoils { address, quantity } => {
                let values = &t.coils[range(address, quantity.into())?];
                reply.send(&Response::ReadCoils {
                    values: Bits::from_bools(values),
                })
            }
            Request::ReadDiscreteInputs { address, quantity } => {
                let values = &t.discrete_inputs[range(address, quantity.into())?];
                reply.send(&Response::ReadDiscreteInputs {
                    values: Bits::from_bools(values),
                })
            }
            Request::ReadHoldingRegisters { address, quantity } => {
                let values = &t.holding_registers[range(address, quantity.into())?];
                reply.send(&Response::ReadHoldingRegisters {
                    values: Registers::from_values(values),
                })
            }
            Request::ReadInputRegisters { address, quantity } => {
                let values = &t.input_registers[range(address, quantity.into())?];
                reply.send(&Response::ReadInputRegisters {
                    values: Registers::from_values(values),
                })
            }
            Request::WriteSingleCoil { address, value } => {
                t.coils[usize::from(address)] = value;
                reply.send(&Response::WriteSingleCoil { address, value })
            }
            Request::WriteSingleRegister { address, value } => {
                t.holding_registers[usize::from(address)] = value;
                reply.send(&Response::WriteSingleRegister { address, value })
            }
            Request::WriteMultipleCoils { address, values } => {
                let span = range(address, values.len())?;
                for (slot, value) in t.coils[span].iter_mut().zip(values.iter()) {
                    *slot = value;
                }
                reply.send(&Response::WriteMultipleCoils {
                    address,
                    quantity: values.len() as u16,
                })
            }
            Request::WriteMultipleRegisters { address, values } => {
                let span = range(address, values.len())?;
                for (slot, value) in t.holding_registers[span].iter_mut().zip(values.iter()) {
                    *slot = value;
                }
                reply.send(&Response::WriteMultipleRegisters {
                    address,
                    quantity: values.len() as u16,
                })
            }
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                let slot = &mut t.holding_registers[usize::from(address)];
                *slot = (*slot & and_mask) | (or_mask & !and_mask);
                reply.send(&Response::MaskWriteRegister {
                    address,
                    and_mask,
                    or_mask,
                })
            }
            Request::ReadWriteMultipleRegisters {
                read_address,
                read_quantity,
                write_address,
                values,
            } => {
                // The write happens before the read (Application Protocol 6.17).
                let write = range(write_address, values.len())?;
                let read = range(read_address, read_quantity.into())?;
                for (slot, value) in t.holding_registers[write].iter_mut().zip(values.iter()) {
                    *slot = value;
                }
                let values = &t.holding_registers[read];
                reply.send(&Response::ReadWriteMultipleRegisters {
                    values: Registers::from_values(values),
                })
            }
            Request::ReadFifoQueue { address } => {
                // The count register at `address`, the values after it.
                let count = t.holding_registers[usize::from(address)];
                if count > 31 {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                let values = &t.holding_registers[range(address, usize::from(count) + 1)?][1..];
                reply.send(&Response::ReadFifoQueue {
                    values: Registers::from_values(values),
                })
            }
            Request::ReadFileRecord { records } => {
                let mut data: Vec<Vec<u16>> = Vec::with_capacity(records.len());
                for record in records {
                    if record.record_number > 9999
                        || usize::from(record.record_number) + usize::from(record.record_length)
                            > 10_000
                    {
                        return Err(ExceptionCode::IllegalDataAddress);
                    }
                    data.push(
                        (0..record.record_length)
                            .map(|i| {
                                *t.files
                                    .get(&(record.file_number, record.record_number + i))
                                    .unwrap_or(&0)
                            })
                            .collect(),
                    );
                }
                let items: Vec<FileRecordData<'_>> = data
                    .iter()
                    .map(|d| FileRecordData {
                        data: Registers::from_values(d),
                    })
                    .collect();
                reply.send(&Response::ReadFileRecord {
                    records: List::from_items(&items),
                })
            }
            Request::WriteFileRecord { records } => {
                for record in records {
                    if usize::from(record.record_number) + record.data.len() > 10_000 {
                        return Err(ExceptionCode::IllegalDataAddress);
                    }
                    for (i, value) in record.data.iter().enumerate() {
                        t.files
                            .insert((record.file_number, record.record_number + i as u16), value);
                    }
                }
                reply.send(&Response::WriteFileRecord { records })
            }
            Request::ReadDeviceIdentification { code, object_id } => {
                let objects = [
                    DeviceIdObject {
                        id: 0,
                        value: self.info.vendor_name.as_bytes(),
                    },
                    DeviceIdObject {
                        id: 1,
                        value: self.info.product_code.as_bytes(),
                    },
                    DeviceIdObject {
                        id: 2,
                        value: self.info.revision.as_bytes(),
                    },
                ];
                let chosen: &[DeviceIdObject<'_>] = match code {
                    ReadDeviceIdCode::Basic
                    | ReadDeviceIdCode::Regular
                    | ReadDeviceIdCode::Extended => &objects[usize::from(object_id.min(3))..],
                    ReadDeviceIdCode::Individual => match object_id {
                        0..=2 => &objects[usize::from(object_id)..=usize::from(object_id)],
                        _ => return Err(ExceptionCode::IllegalDataAddress),
                    },
                };
                reply.send(&Response::ReadDeviceIdentification(DeviceIdentification {
                    code,
                    conformity_level: mbaps_codec::ConformityLevel::Basic,
                    more_follows: false,
                    next_object_id: 0,
                    objects: List::from_items(chosen),
                }))
            }
            Request::UserDefined { .. } => Err(ExceptionCode::IllegalFunction),
        }
    }
}
