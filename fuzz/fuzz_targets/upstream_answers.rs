//! A gateway's device queue fed whatever a plain Modbus/TCP device, or an
//! RTU device on a serial line (the first byte's top bit), or an attacker
//! on its wire, sends back, split at arbitrary points, with requests
//! submitted and time passing in between: never panics, and every request
//! submitted ends in exactly one answer (after the close at the end at the
//! latest), never more than the in-flight limit on the wire.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mbaps_codec::Request;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::upstream::rtu::{RtuLine, RtuSettings};
use mbaps_session::upstream::{Requester, Ticket, Upstream, UpstreamLimits};
use mbaps_session::{Client, ClientConfig, Pdu};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, mut rest)) = data.split_first() else {
        return;
    };
    let rtu = shape & 0x80 != 0;
    let queue = usize::from(shape / 4 % 8) + 1;
    let limits = UpstreamLimits {
        // An RTU line carries one request at a time.
        in_flight: if rtu { 1 } else { usize::from(shape % 4) + 1 },
        queue,
        queue_per_session: match usize::from(shape / 32 % 4) {
            0 => None,
            share => Some(share.min(queue)),
        },
        ..UpstreamLimits::default()
    };
    let line = RtuSettings {
        retries: shape % 3,
        ..RtuSettings::serial(9_600, limits.timeout)
    };
    let config = ClientConfig::plain()
        .max_outstanding(limits.in_flight)
        .build()
        .unwrap();
    let mut now = Instant::now();
    let mut upstream = if rtu {
        Upstream::rtu(limits, line, now).unwrap()
    } else {
        Upstream::new(limits, now).unwrap()
    };
    let mut submitted = 0u64;
    let mut answered = BTreeSet::new();
    let mut out = Vec::new();
    // Each step: a control byte, then (for bytes from the device) a length
    // and that many bytes.
    while let Some((&control, tail)) = rest.split_first() {
        rest = tail;
        match control % 5 {
            0 => {
                let request = Request::ReadHoldingRegisters {
                    address: submitted as u16,
                    quantity: u16::from(control / 5 % 8) + 1,
                };
                let pdu = Pdu::encode_request(&request).unwrap();
                // Three requesters sharing the device, so the fair queue's
                // per-requester share is exercised as well.
                let requester = Requester(u64::from(control / 5 % 3));
                upstream.submit(now, requester, Ticket(submitted), control / 5, pdu);
                submitted += 1;
            }
            1 => {
                let len = rest
                    .first()
                    .map_or(0, |&n| usize::from(n))
                    .min(rest.len().saturating_sub(1));
                let bytes = rest.get(1..1 + len).unwrap_or(&[]);
                if upstream.has_connection() {
                    upstream.handle_bytes(now, bytes);
                }
                rest = rest.get(1 + len..).unwrap_or(&[]);
            }
            2 => {
                if upstream.poll_connect(now) {
                    if rtu {
                        upstream.connected(now, RtuLine::new(line, now));
                    } else {
                        let name = ServerName::try_from("device").unwrap();
                        upstream.connected(now, Client::new(&config, name, now).unwrap());
                    }
                }
            }
            3 => {
                now += Duration::from_millis(u64::from(control) * 40);
                upstream.handle_timeout(now);
            }
            _ => {
                if upstream.has_connection() {
                    upstream.handle_eof(now);
                } else if upstream.poll_connect(now) {
                    upstream.connect_failed(now);
                }
            }
        }
        out.clear();
        upstream.poll_transmit(&mut out);
        while let Some(answer) = upstream.poll_completion() {
            assert!(
                answered.insert(answer.ticket),
                "{:?} answered twice",
                answer.ticket
            );
        }
        assert!(upstream.in_flight() <= limits.in_flight);
        assert!(upstream.queued() <= limits.queue);
    }
    upstream.close(now);
    while let Some(answer) = upstream.poll_completion() {
        assert!(
            answered.insert(answer.ticket),
            "{:?} answered twice",
            answer.ticket
        );
    }
    assert_eq!(answered.len() as u64, submitted, "a request never answered");
});
