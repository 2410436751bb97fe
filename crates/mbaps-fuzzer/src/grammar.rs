//! The inputs: request PDUs generated from the grammar of every function
//! code the codec knows (valid, on the boundaries of each field, and
//! outside it), framing mutations on top, and mutations of inputs the
//! device answered in a way not seen before. Seeded: the same seed and
//! scope give the same inputs (and, against a device that answers the same,
//! the same mutations).

use mbaps_authz::FunctionSet;
use mbaps_codec::limits::{self, MAX_PDU_LEN};
use mbaps_codec::{DIAGNOSTICS_CHANGING_STATE, DIAGNOSTICS_READING, FunctionCode, MbapHeader};

use crate::input::{Delivery, Step};
use crate::rng::Rng;

/// The function codes a campaign sends without `allow_writes`: those that
/// only read (`read` and `diagnostic` of the policy file, and the
/// serial-line reads 0x07, 0x0B, 0x0C, 0x11), and diagnostics (0x08) with
/// its sub-functions that change nothing ([`DIAGNOSTICS_CHANGING_STATE`]
/// are never sent without `allow_writes`, whatever the input's kind).
pub const READ_ONLY: [u8; 12] = [
    0x01, 0x02, 0x03, 0x04, 0x07, 0x08, 0x0B, 0x0C, 0x11, 0x14, 0x18, 0x2B,
];

/// What a campaign may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Unit ids addressed (besides 0 and 255, which framing mutations
    /// try).
    pub units: Vec<u8>,
    /// Function codes that may be sent. Codes outside the standard and
    /// user-defined ones (and codes with the exception bit) are sent only
    /// if `allow_writes`: a device may do anything with them.
    pub functions: FunctionSet,
    /// Whether functions that change state may be sent (writes, and codes
    /// whose effect the device defines). Off by default: a write can move
    /// real equipment.
    pub allow_writes: bool,
}

impl Scope {
    /// Every function the codec knows that `allow_writes` permits, to
    /// unit 1.
    pub fn new(allow_writes: bool) -> Scope {
        let mut functions = FunctionSet::new();
        for code in 1..=0xFF_u8 {
            functions.insert(code);
        }
        Scope {
            units: vec![1],
            functions,
            allow_writes,
        }
    }

    /// Whether `function` may be sent.
    pub fn sends(&self, function: u8) -> bool {
        if !self.functions.contains(function) {
            return false;
        }
        self.allow_writes || READ_ONLY.contains(&function)
    }

    /// The functions the codec types (the serial-line ones included) in
    /// scope.
    fn standard(&self) -> Vec<u8> {
        FunctionCode::STANDARD
            .iter()
            .chain(&FunctionCode::SERIAL_LINE)
            .map(|f| f.code())
            .filter(|&code| self.sends(code))
            .collect()
    }
}

/// What the generator makes the next input from.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Valid,
    Boundary,
    Outside,
    Mutated,
}

/// The generator of a campaign: request PDUs from the grammar of every
/// function code the codec knows (valid, on the boundaries of each field,
/// outside it), framing mutations on top, and mutations of inputs the
/// device answered in a way not seen before ([`Generator::remember`]).
/// The same seed and scope give the same inputs.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    scope: Scope,
    /// The standard functions in scope.
    standard: Vec<u8>,
    /// Every function code in scope.
    in_scope: Vec<u8>,
    next_transaction: u16,
    /// PDUs whose answers were new: mutated further.
    corpus: Vec<Vec<u8>>,
}

/// PDUs kept for mutation at most.
const CORPUS: usize = 256;

impl Generator {
    /// A generator for `scope` from `seed`. `None` if `scope` holds no
    /// function that may be sent.
    pub fn new(seed: u64, scope: Scope) -> Option<Generator> {
        let standard = scope.standard();
        let in_scope: Vec<u8> = (1..=0xFF_u8).filter(|&code| scope.sends(code)).collect();
        (!in_scope.is_empty()).then(|| Generator {
            rng: Rng::new(seed),
            scope,
            standard,
            in_scope,
            next_transaction: 1,
            corpus: Vec::new(),
        })
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A PDU the device answered in a way not seen before: later inputs
    /// mutate it.
    pub fn remember(&mut self, pdu: &[u8]) {
        if self.corpus.len() == CORPUS {
            let at = self.rng.below(CORPUS);
            self.corpus[at] = pdu.to_vec();
        } else {
            self.corpus.push(pdu.to_vec());
        }
    }

    /// The next transaction id on a connection (never 0, so that a
    /// device's 0 stands out).
    pub fn transaction_id(&mut self) -> u16 {
        let id = self.next_transaction;
        self.next_transaction = self.next_transaction.checked_add(1).unwrap_or(1);
        id
    }

    /// The inputs of one batch on one connection: `count` ADUs, each under
    /// a transaction id of its own but for the reused ones; mutations that
    /// end the connection or its framing (a wrong MBAP length, a close in
    /// the middle of an ADU) only as the last.
    pub fn batch(&mut self, count: usize) -> Vec<Step> {
        let mut steps = Vec::with_capacity(count);
        for index in 0..count {
            let last = index + 1 == count;
            let pdu = self.pdu();
            let mut header = MbapHeader {
                transaction_id: self.transaction_id(),
                unit_id: *self.rng.pick(&self.scope.units),
            };
            let mut protocol_id = 0u16;
            let mut length = u16::try_from(pdu.len() + 1).unwrap_or(u16::MAX);
            let mut delivery = Delivery::Record;
            match self.rng.below(40) {
                0 => protocol_id = self.rng.range(1, 0xFFFF) as u16,
                1 => header.unit_id = 0,
                2 => header.unit_id = 255,
                3 if !steps.is_empty() => {
                    // Reused while the earlier one is in flight.
                    let earlier: &Step = self.rng.pick(&steps);
                    header.transaction_id = earlier.transaction_id();
                }
                4 if !last => delivery = Delivery::Joined,
                5 => delivery = Delivery::Split { at: 0 },
                // Mutations that end the connection's framing: rarer, as
                // each costs a connection.
                6 if last && self.rng.one_in(3) => match self.rng.below(4) {
                    0 => length = length.wrapping_add(1),
                    1 => length = length.wrapping_sub(1),
                    2 => length = *self.rng.pick(&[0u16, 1, 255, 256, 0xFFFF]),
                    _ => delivery = Delivery::CloseAfter { at: 0 },
                },
                _ => {}
            }
            let mut adu = Vec::with_capacity(pdu.len() + 7);
            adu.extend_from_slice(&header.transaction_id.to_be_bytes());
            adu.extend_from_slice(&protocol_id.to_be_bytes());
            adu.extend_from_slice(&length.to_be_bytes());
            adu.push(header.unit_id);
            adu.extend_from_slice(&pdu);
            // Splits and cuts inside the ADU, the header included.
            let within = |rng: &mut Rng| 1 + rng.below(adu.len() - 1);
            delivery = match delivery {
                Delivery::Split { .. } => Delivery::Split {
                    at: within(&mut self.rng),
                },
                Delivery::CloseAfter { .. } => Delivery::CloseAfter {
                    at: within(&mut self.rng),
                },
                other => other,
            };
            let mut step = Step::new(adu, delivery);
            if !self.scope.units.contains(&header.unit_id) {
                step.expect = step.expect.for_unserved_unit();
            }
            steps.push(step);
        }
        steps
    }

    /// One request PDU in scope.
    fn pdu(&mut self) -> Vec<u8> {
        let kind = match self.rng.below(20) {
            0..=5 => Kind::Valid,
            6..=12 => Kind::Boundary,
            13..=15 => Kind::Outside,
            _ if self.corpus.is_empty() => Kind::Boundary,
            _ => Kind::Mutated,
        };
        let pdu = match kind {
            Kind::Valid | Kind::Boundary if self.standard.is_empty() => self.outside(),
            Kind::Valid => {
                let function = *self.rng.pick(&self.standard);
                self.valid(function)
            }
            Kind::Boundary => {
                let function = *self.rng.pick(&self.standard);
                self.boundary(function)
            }
            Kind::Outside => self.outside(),
            Kind::Mutated => self.mutated(),
        };
        debug_assert!(!pdu.is_empty() && pdu.len() <= MAX_PDU_LEN);
        self.without_state_changes(pdu)
    }

    /// Without `allow_writes`, a diagnostics PDU of any kind (valid,
    /// malformed, mutated) carries a sub-function that only reads: a
    /// lenient device may act on a malformed request's sub-function.
    fn without_state_changes(&mut self, mut pdu: Vec<u8>) -> Vec<u8> {
        if self.scope.allow_writes || pdu[0] != 0x08 {
            return pdu;
        }
        // Too short to carry a sub-function: a lenient device might read
        // one from what its buffer held before.
        if pdu.len() < 3 {
            pdu.resize(3, 0);
        }
        let sub_function = u16::from_be_bytes([pdu[1], pdu[2]]);
        if !DIAGNOSTICS_READING.contains(&sub_function) {
            let reading = *self.rng.pick(&DIAGNOSTICS_READING);
            pdu[1..3].copy_from_slice(&reading.to_be_bytes());
        }
        pdu
    }

    /// A random count in `range`, or one of its ends.
    fn count(&mut self, low: u16, high: u16) -> u16 {
        match self.rng.below(4) {
            0 => low,
            1 => high,
            _ => self.rng.range(u32::from(low), u32::from(high)) as u16,
        }
    }

    /// An address from which `quantity` items stay within 0..=0xFFFF.
    fn address_for(&mut self, quantity: u16) -> u16 {
        let last_start = 0x1_0000 - u32::from(quantity.max(1));
        match self.rng.below(4) {
            0 => 0,
            1 => last_start as u16,
            _ => self.rng.range(0, last_start.min(0x0FFF)) as u16,
        }
    }

    /// A valid request of `function`.
    fn valid(&mut self, function: u8) -> Vec<u8> {
        let mut pdu = vec![function];
        let push16 = |pdu: &mut Vec<u8>, value: u16| pdu.extend_from_slice(&value.to_be_bytes());
        match function {
            0x01 | 0x02 => {
                let quantity = self.count(1, *limits::READ_BITS.end());
                push16(&mut pdu, self.address_for(quantity));
                push16(&mut pdu, quantity);
            }
            0x03 | 0x04 => {
                let quantity = self.count(1, *limits::READ_REGISTERS.end());
                push16(&mut pdu, self.address_for(quantity));
                push16(&mut pdu, quantity);
            }
            0x05 => {
                push16(&mut pdu, self.rng.word());
                push16(
                    &mut pdu,
                    *self.rng.pick(&[limits::COIL_ON, limits::COIL_OFF]),
                );
            }
            0x06 => {
                push16(&mut pdu, self.rng.word());
                push16(&mut pdu, self.rng.word());
            }
            0x0F => {
                let quantity = self.count(1, *limits::WRITE_COILS.end());
                push16(&mut pdu, self.address_for(quantity));
                push16(&mut pdu, quantity);
                let bytes = quantity.div_ceil(8) as usize;
                pdu.push(bytes as u8);
                pdu.extend((0..bytes).map(|_| self.rng.byte()));
            }
            0x10 => {
                let quantity = self.count(1, *limits::WRITE_REGISTERS.end());
                push16(&mut pdu, self.address_for(quantity));
                push16(&mut pdu, quantity);
                pdu.push((quantity * 2) as u8);
                pdu.extend((0..quantity * 2).map(|_| self.rng.byte()));
            }
            0x14 => {
                let records = self.rng.range(1, 3) as usize;
                pdu.push((records * 7) as u8);
                for _ in 0..records {
                    pdu.push(limits::FILE_REFERENCE_TYPE);
                    push16(&mut pdu, self.rng.range(1, 4) as u16);
                    push16(&mut pdu, self.rng.range(0, 9999) as u16);
                    push16(&mut pdu, self.rng.range(1, 30) as u16);
                }
            }
            0x15 => {
                let length = self.rng.range(1, 20) as u16;
                pdu.push((7 + 2 * length) as u8);
                pdu.push(limits::FILE_REFERENCE_TYPE);
                push16(&mut pdu, self.rng.range(1, 4) as u16);
                push16(&mut pdu, self.rng.range(0, 9999) as u16);
                push16(&mut pdu, length);
                pdu.extend((0..length * 2).map(|_| self.rng.byte()));
            }
            0x16 => {
                push16(&mut pdu, self.rng.word());
                let (and, or) = (self.rng.word(), self.rng.word());
                push16(&mut pdu, *self.rng.pick(&[0x0000, 0xFFFF, 0x00F2, and]));
                push16(&mut pdu, *self.rng.pick(&[0x0000, 0xFFFF, 0x0025, or]));
            }
            0x17 => {
                let read = self.count(1, *limits::READ_REGISTERS.end());
                let write = self.count(1, *limits::READ_WRITE_WRITE_REGISTERS.end());
                push16(&mut pdu, self.address_for(read));
                push16(&mut pdu, read);
                push16(&mut pdu, self.address_for(write));
                push16(&mut pdu, write);
                pdu.push((write * 2) as u8);
                pdu.extend((0..write * 2).map(|_| self.rng.byte()));
            }
            0x18 => push16(&mut pdu, self.rng.word()),
            0x08 => {
                let sub_function = if self.scope.allow_writes && self.rng.one_in(3) {
                    *self.rng.pick(&DIAGNOSTICS_CHANGING_STATE)
                } else {
                    *self.rng.pick(&DIAGNOSTICS_READING)
                };
                push16(&mut pdu, sub_function);
                // Return query data echoes any word; the others take 0.
                let data = if sub_function == 0 {
                    self.rng.word()
                } else {
                    0
                };
                push16(&mut pdu, data);
            }
            0x07 | 0x0B | 0x0C | 0x11 => {}
            0x2B => {
                pdu.push(0x0E);
                pdu.push(self.rng.range(1, 4) as u8);
                pdu.push(*self.rng.pick(&[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]));
            }
            _ => pdu.extend((0..self.rng.below(8)).map(|_| self.rng.byte())),
        }
        pdu
    }

    /// A request of `function` on or past the boundary of one field.
    fn boundary(&mut self, function: u8) -> Vec<u8> {
        let mut pdu = self.valid(function);
        let set16 = |pdu: &mut Vec<u8>, at: usize, value: u16| {
            if pdu.len() >= at + 2 {
                pdu[at..at + 2].copy_from_slice(&value.to_be_bytes());
            }
        };
        match function {
            0x01..=0x04 => {
                let max = if function <= 0x02 { 2000 } else { 125 };
                match self.rng.below(4) {
                    // Quantity 0, the maximum + 1, far off.
                    0 => set16(&mut pdu, 3, *self.rng.pick(&[0, max + 1, 0xFFFF])),
                    // The last addresses, and past them: wrapping.
                    1 => {
                        let quantity = self.rng.range(2, u32::from(max));
                        set16(&mut pdu, 3, quantity as u16);
                        set16(&mut pdu, 1, (0x1_0000 - quantity + 1) as u16);
                    }
                    2 => set16(&mut pdu, 3, max),
                    _ => set16(&mut pdu, 3, 1),
                }
            }
            0x05 => set16(
                &mut pdu,
                3,
                *self.rng.pick(&[0x00FF, 0x0001, 0xFF01, 0xFFFF]),
            ),
            0x0F | 0x10 => {
                let byte_count = pdu[5];
                match self.rng.below(4) {
                    0 => pdu[5] = byte_count.wrapping_add(1),
                    1 => pdu[5] = byte_count.wrapping_sub(1),
                    2 => pdu[5] = *self.rng.pick(&[0, 0xFF]),
                    _ => set16(&mut pdu, 3, *self.rng.pick(&[0, 0x07B1, 124, 0xFFFF])),
                }
            }
            0x14 | 0x15 => match self.rng.below(4) {
                0 => pdu[1] = pdu[1].wrapping_add(1),
                1 => pdu[2] = self.rng.byte(),
                2 => set16(&mut pdu, 5, *self.rng.pick(&[10_000, 0xFFFF])),
                _ => pdu.truncate(pdu.len() - 1),
            },
            0x16 => pdu.truncate(1 + self.rng.below(6)),
            0x17 => match self.rng.below(4) {
                0 => set16(&mut pdu, 3, 0),
                1 => set16(&mut pdu, 7, 0),
                2 => pdu[9] = pdu[9].wrapping_add(1),
                _ => set16(&mut pdu, 7, 122),
            },
            0x18 => pdu.push(self.rng.byte()),
            // Reserved sub-functions (a device may do anything with them:
            // replaced by reading ones without writes), a data word far off.
            0x08 => match self.rng.below(2) {
                0 => set16(
                    &mut pdu,
                    1,
                    *self
                        .rng
                        .pick(&[0x05, 0x09, 0x13, 0x15, 0x16, 0x7FFF, 0xFFFF]),
                ),
                _ => set16(&mut pdu, 3, *self.rng.pick(&[0xFF00, 0xFFFF, 0x0001])),
            },
            // Data where none is taken.
            0x07 | 0x0B | 0x0C | 0x11 => pdu.push(self.rng.byte()),
            0x2B => match self.rng.below(3) {
                // Every read code, 0 and past 4.
                0 => pdu[2] = self.rng.range(0, 8) as u8,
                // Reserved and private object ids.
                1 => {
                    let any = self.rng.byte();
                    pdu[3] = *self.rng.pick(&[0x07, 0x7F, 0x80, 0xFF, any]);
                }
                _ => pdu[1] = self.rng.byte(),
            },
            _ => {}
        }
        // A request one byte short, or with one more.
        if self.rng.one_in(8) {
            match self.rng.below(2) {
                0 if pdu.len() > 1 => {
                    pdu.pop();
                }
                _ if pdu.len() < MAX_PDU_LEN => pdu.push(self.rng.byte()),
                _ => {}
            }
        }
        pdu
    }

    /// A request outside the grammar: an unknown or user-defined function,
    /// a code with the exception bit, or a PDU of any length 1..=253 under
    /// a function in scope.
    fn outside(&mut self) -> Vec<u8> {
        // Without writes, only the reading functions are in scope: their
        // PDUs of any length; with them, every code in scope.
        let function = *self.rng.pick(&self.in_scope);
        let length = match self.rng.below(3) {
            0 => 1 + self.rng.below(MAX_PDU_LEN),
            1 => 1 + self.rng.below(8),
            _ => *self.rng.pick(&[1, 2, 5, 6, 252, 253]),
        };
        let mut pdu = vec![function];
        pdu.extend((1..length).map(|_| self.rng.byte()));
        pdu
    }

    /// A PDU of the corpus, mutated: bytes flipped, or spliced with
    /// another. Its function code stays one in scope.
    fn mutated(&mut self) -> Vec<u8> {
        let mut pdu = self.rng.pick(&self.corpus).clone();
        match self.rng.below(3) {
            0 => {
                for _ in 0..1 + self.rng.below(3) {
                    let at = self.rng.below(pdu.len());
                    pdu[at] ^= 1 << self.rng.below(8);
                }
            }
            1 => {
                let other = self.rng.pick(&self.corpus).clone();
                let cut = self.rng.below(pdu.len().min(other.len()) + 1).max(1);
                pdu.truncate(cut);
                pdu.extend_from_slice(&other[cut.min(other.len())..]);
            }
            _ => {
                let at = 1 + self.rng.below(pdu.len());
                if self.rng.one_in(2) && pdu.len() < MAX_PDU_LEN {
                    pdu.insert(at.min(pdu.len()), self.rng.byte());
                } else if pdu.len() > 1 {
                    pdu.remove(at.min(pdu.len() - 1).max(1));
                }
            }
        }
        pdu.truncate(MAX_PDU_LEN);
        if !self.scope.sends(pdu[0]) {
            // A flipped function code out of scope goes back in.
            pdu[0] = *self.rng.pick(&self.in_scope);
        }
        pdu
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Expect;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let batch = |seed| {
            let mut generator = Generator::new(seed, Scope::new(true)).unwrap();
            (0..50).flat_map(|_| generator.batch(8)).collect::<Vec<_>>()
        };
        assert_eq!(batch(3), batch(3));
        assert_ne!(batch(3), batch(4));
    }

    #[test]
    fn without_writes_only_reading_functions_go_out() {
        let mut generator = Generator::new(9, Scope::new(false)).unwrap();
        let mut diagnostics = 0;
        for _ in 0..2000 {
            for step in generator.batch(8) {
                if let Some(function) = step.function() {
                    assert!(READ_ONLY.contains(&function), "{function:#04x}: {step:?}");
                }
                let pdu = step.pdu();
                // Diagnostics, valid or not: never a sub-function that
                // restarts, silences or clears the device.
                if pdu.first() == Some(&0x08) {
                    assert!(pdu.len() >= 3, "a diagnostics PDU of {} bytes", pdu.len());
                }
                if let [0x08, high, low, ..] = *pdu {
                    diagnostics += 1;
                    let sub_function = u16::from_be_bytes([high, low]);
                    assert!(
                        DIAGNOSTICS_READING.contains(&sub_function),
                        "sub-function {sub_function:#06x}: {step:?}"
                    );
                }
                generator.remember(pdu);
            }
        }
        assert!(diagnostics > 100, "{diagnostics} diagnostics requests");
    }

    #[test]
    fn every_kind_of_input_comes_within_sixteen_thousand() {
        let mut generator = Generator::new(1, Scope::new(true)).unwrap();
        let steps: Vec<Step> = (0..2000).flat_map(|_| generator.batch(8)).collect();
        let count = |expect| steps.iter().filter(|s| s.expect == expect).count();
        for expect in [
            Expect::Answer,
            Expect::Refusal,
            Expect::Silence,
            Expect::MayClose,
            Expect::AnswerIfServed,
            Expect::RefusalIfServed,
        ] {
            assert!(count(expect) > 20, "{expect:?}: {}", count(expect));
        }
        let functions: std::collections::BTreeSet<u8> =
            steps.iter().filter_map(Step::function).collect();
        for code in FunctionCode::STANDARD
            .iter()
            .chain(&FunctionCode::SERIAL_LINE)
        {
            assert!(functions.contains(&code.code()), "{code:?} never sent");
        }
        assert!(functions.contains(&0x41) || functions.contains(&0x64));
        assert!(
            steps
                .iter()
                .any(|s| matches!(s.delivery, Delivery::Split { .. }))
        );
        assert!(
            steps
                .iter()
                .any(|s| matches!(s.delivery, Delivery::CloseAfter { .. }))
        );
        assert!(steps.iter().any(|s| s.unit_id() == 255));
    }
}
