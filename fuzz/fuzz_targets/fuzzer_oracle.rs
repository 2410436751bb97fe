//! The fuzzer's oracle on what a hostile device could answer: a batch of
//! inputs from the fuzzer's own grammar (seeded by the first bytes) and
//! arbitrary frames back, however the connection ended. It never panics,
//! names only inputs of the batch, and owes nothing that may go unanswered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_fuzzer::{End, Frame, Generator, Scope, judge};

fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let seed = u64::from_le_bytes(head[..8].try_into().unwrap());
    let mut generator = Generator::new(seed, Scope::new(true)).unwrap();
    let steps = generator.batch(1 + usize::from(head[8] % 8));
    // Frames: transaction id, protocol id, unit, PDU length, PDU.
    let mut frames = Vec::new();
    while let [a, b, c, d, unit, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        // Transaction ids of the batch are the likely ones.
        let transaction_id = match a % 4 {
            0 => u16::from_be_bytes([*a, *b]),
            _ => steps[usize::from(*b) % steps.len()].transaction_id(),
        };
        frames.push(Frame {
            transaction_id,
            protocol_id: u16::from_be_bytes([*c, *d]) & if *a & 0x10 == 0 { 0 } else { 0xFFFF },
            unit_id: *unit,
            pdu: tail[..len].to_vec(),
        });
        rest = &tail[len..];
    }
    for end in [
        End::Open,
        End::Closed,
        End::Failed("reset".into()),
        End::Garbage(vec![0; 3]),
    ] {
        let judgement = judge(&steps, &frames, &end);
        for verdict in &judgement.verdicts {
            assert!(verdict.step.is_none_or(|i| i < steps.len()), "{verdict:?}");
            assert!(!verdict.summary.is_empty());
        }
        for &silent in &judgement.silent {
            assert!(silent < steps.len());
            assert!(!steps[silent].expect.may_be_silent(), "{:?}", steps[silent]);
        }
        if end != End::Open {
            assert!(
                judgement.silent.is_empty(),
                "silence is only on an open connection"
            );
        }
    }
});
