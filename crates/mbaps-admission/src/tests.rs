use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;

fn limits(sessions: usize, handshakes: usize, per_address: usize) -> AdmissionLimits {
    AdmissionLimits {
        max_sessions: sessions,
        max_handshakes: handshakes,
        max_handshakes_per_address: per_address,
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// The tests' clock starts at one real instant; the rest is arithmetic.
fn epoch() -> Instant {
    #[allow(clippy::disallowed_methods)] // the tests own their clock
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Connects `handle` from `address` at `t0 + at`, returning its id and
/// the handle of what it dropped.
fn connect(
    admission: &mut Admission<&'static str>,
    t0: Instant,
    at: u64,
    address: IpAddr,
    handle: &'static str,
) -> (
    ConnectionId,
    Arc<Activity>,
    Option<(&'static str, HandshakeBound)>,
) {
    let connected = admission.connect(t0 + ms(at), address, false, handle);
    let dropped = connected.dropped.map(|d| (d.handle, d.bound));
    (connected.id, connected.activity, dropped)
}

#[test]
fn a_full_handshake_table_drops_the_oldest_silent_handshake_before_one_that_sent_its_hello() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 3, 3), t0);
    let (hello, ..) = connect(&mut admission, t0, 0, v4(1), "first, with its hello");
    admission.hello_received(hello);
    connect(&mut admission, t0, 1, v4(2), "second, silent");
    connect(&mut admission, t0, 2, v4(3), "third, silent");
    let (_, _, dropped) = connect(&mut admission, t0, 3, v4(4), "fourth");
    assert_eq!(
        dropped,
        Some(("second, silent", HandshakeBound::Global { max: 3 }))
    );
    let (_, _, dropped) = connect(&mut admission, t0, 4, v4(5), "fifth");
    assert_eq!(
        dropped,
        Some(("third, silent", HandshakeBound::Global { max: 3 }))
    );
    assert_eq!(admission.handshakes(), 3);
}

#[test]
fn a_flood_gives_way_before_a_client_whose_hello_is_not_read_yet() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 4, 4), t0);
    // The client connected first; its ClientHello is on its way, so it
    // looks as silent as the flood around it.
    connect(&mut admission, t0, 0, v4(1), "client");
    for (at, name) in [(1, "flood a"), (2, "flood b"), (3, "flood c")] {
        connect(&mut admission, t0, at, v4(66), name);
    }
    // The flood's oldest goes, not the client: its source holds three.
    for (at, gone) in [(4, "flood a"), (5, "flood b"), (6, "flood c")] {
        let (_, _, dropped) = connect(&mut admission, t0, at, v4(66), "flood");
        assert_eq!(dropped.map(|(name, _)| name), Some(gone));
    }
    // Sources of one handshake each: the oldest of them gives way.
    let mut admission = Admission::new(limits(4, 2, 2), t0);
    connect(&mut admission, t0, 0, v4(1), "one");
    connect(&mut admission, t0, 1, v4(2), "two");
    let (_, _, dropped) = connect(&mut admission, t0, 2, v4(3), "three");
    assert_eq!(dropped.map(|(name, _)| name), Some("one"));
}

#[test]
fn when_every_pending_handshake_sent_its_hello_the_oldest_gives_way() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 2, 2), t0);
    for (at, name) in [(0, "a"), (1, "b")] {
        let (id, ..) = connect(&mut admission, t0, at, v4(at as u8), name);
        admission.hello_received(id);
    }
    let (_, _, dropped) = connect(&mut admission, t0, 5, v4(9), "c");
    assert_eq!(dropped, Some(("a", HandshakeBound::Global { max: 2 })));
}

#[test]
fn one_address_at_its_bound_drops_its_own_oldest_handshake_and_no_one_elses() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 10, 2), t0);
    connect(&mut admission, t0, 0, v4(7), "other address");
    connect(&mut admission, t0, 1, v4(1), "attacker 1");
    connect(&mut admission, t0, 2, v4(1), "attacker 2");
    let (_, _, dropped) = connect(&mut admission, t0, 3, v4(1), "attacker 3");
    assert_eq!(
        dropped,
        Some(("attacker 1", HandshakeBound::PerAddress { max: 2 }))
    );
    let held: Vec<_> = admission.connections().map(|(h, _)| *h).collect();
    assert_eq!(held, ["other address", "attacker 2", "attacker 3"]);
}

#[test]
fn ipv6_sources_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 10, 1), t0);
    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
    let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 2));
    let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
    connect(&mut admission, t0, 0, a, "a");
    let (_, _, dropped) = connect(&mut admission, t0, 1, b, "b, same /64");
    assert_eq!(dropped, Some(("a", HandshakeBound::PerAddress { max: 1 })));
    let (_, _, dropped) = connect(&mut admission, t0, 2, other, "another /64");
    assert_eq!(dropped, None);
    connect(&mut admission, t0, 3, v4(1), "v4");
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    let (_, _, dropped) = connect(&mut admission, t0, 4, mapped, "mapped");
    assert_eq!(dropped, Some(("v4", HandshakeBound::PerAddress { max: 1 })));
}

#[test]
fn handshakes_never_evict_sessions_and_sessions_do_not_count_against_handshakes() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(1, 2, 2), t0);
    let (operator, activity, _) = connect(&mut admission, t0, 0, v4(1), "operator");
    assert!(matches!(
        admission.authenticated(operator, t0 + ms(1)),
        Admitted::Admitted
    ));
    activity.set_idle(t0 + ms(2));
    for at in 10..200 {
        let (_, _, dropped) = connect(&mut admission, t0, at, v4(2), "stranger");
        assert_ne!(dropped.map(|d| d.0), Some("operator"));
    }
    assert_eq!(admission.sessions(), 1);
    assert_eq!(admission.handshakes(), 2);
}

#[test]
fn at_the_session_bound_a_newcomer_closes_the_session_idle_the_longest() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(2, 4, 4), t0);
    let (a, a_activity, _) = connect(&mut admission, t0, 0, v4(1), "a");
    let (b, b_activity, _) = connect(&mut admission, t0, 0, v4(2), "b");
    admission.authenticated(a, t0);
    admission.authenticated(b, t0);
    a_activity.set_idle(t0 + ms(50));
    b_activity.set_idle(t0 + ms(10));
    let (c, ..) = connect(&mut admission, t0, 100, v4(3), "c");
    match admission.authenticated(c, t0 + ms(110)) {
        Admitted::Evicting(Evicted {
            handle: "b",
            reason: EvictionReason::Idle { idle_for },
        }) => assert_eq!(idle_for, ms(100)),
        other => panic!("{other:?}"),
    }
    assert_eq!(admission.sessions(), 2);
}

#[test]
fn a_stalled_session_is_closed_before_an_idle_one() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(2, 4, 4), t0);
    let (idle, idle_activity, _) = connect(&mut admission, t0, 0, v4(1), "idle operator");
    let (stalled, stalled_activity, _) = connect(&mut admission, t0, 0, v4(2), "never reads");
    admission.authenticated(idle, t0);
    admission.authenticated(stalled, t0);
    idle_activity.set_idle(t0);
    stalled_activity.set_stalled(t0 + ms(500));
    let (c, ..) = connect(&mut admission, t0, 600, v4(3), "c");
    match admission.authenticated(c, t0 + ms(600)) {
        Admitted::Evicting(Evicted {
            handle: "never reads",
            reason: EvictionReason::Stalled { stalled_for },
        }) => assert_eq!(stalled_for, ms(100)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_every_session_busy_the_newcomer_is_refused_and_leaves_the_tables() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(1, 4, 4), t0);
    let (a, activity, _) = connect(&mut admission, t0, 0, v4(1), "a");
    admission.authenticated(a, t0);
    activity.set_busy();
    let (b, ..) = connect(&mut admission, t0, 1, v4(2), "b");
    assert!(matches!(
        admission.authenticated(b, t0 + ms(2)),
        Admitted::Refused { max_sessions: 1 }
    ));
    assert_eq!((admission.sessions(), admission.handshakes()), (1, 0));
    admission.closed(b);
    assert_eq!(admission.sessions(), 1);
}

#[test]
fn a_dropped_handshake_that_authenticates_anyway_is_unknown_and_closing_it_is_harmless() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 1, 1), t0);
    let (a, ..) = connect(&mut admission, t0, 0, v4(1), "a");
    connect(&mut admission, t0, 1, v4(1), "b");
    assert!(matches!(admission.authenticated(a, t0), Admitted::Unknown));
    admission.closed(a);
    assert_eq!((admission.sessions(), admission.handshakes()), (0, 1));
}

#[test]
fn bounds_of_zero_admit_one() {
    let t0 = epoch();
    let admission: Admission<()> = Admission::new(limits(0, 0, 0), t0);
    assert_eq!(admission.limits(), limits(1, 1, 1));
}

#[test]
fn activity_reads_back_what_was_set() {
    let t0 = epoch();
    let activity = Activity::new(t0);
    assert_eq!(activity.get(), SessionActivity::Busy);
    activity.set_stalled(t0 + ms(3));
    assert_eq!(
        activity.get(),
        SessionActivity::Stalled { since: t0 + ms(3) }
    );
    activity.set_idle(t0 + ms(10));
    assert_eq!(activity.get(), SessionActivity::Idle { since: t0 + ms(10) });
    activity.set_busy();
    assert_eq!(activity.get(), SessionActivity::Busy);
}

#[test]
fn a_hello_seen_at_accept_protects_the_newcomer_from_a_burst_of_silent_connects() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 3, 3), t0);
    let legitimate = admission.connect(t0, v4(1), true, "legitimate").id;
    for at in 1..100 {
        let (_, _, dropped) = connect(&mut admission, t0, at, v4(2 + (at % 50) as u8), "silent");
        assert_eq!(dropped.map(|d| d.0), Some("silent").filter(|_| at > 2));
    }
    assert!(matches!(
        admission.authenticated(legitimate, t0 + ms(100)),
        Admitted::Admitted
    ));
}

#[test]
fn a_connection_whose_task_has_not_looked_yet_outlives_the_silent_ones() {
    let t0 = epoch();
    let mut admission = Admission::new(limits(4, 3, 3), t0);
    // Its thread is not scheduled yet: its hello may already wait unread.
    let (_, unseen, _) = connect(&mut admission, t0, 0, v4(1), "unseen");
    let mut looked = Vec::new();
    for at in 1..20 {
        let (_, activity, dropped) = connect(&mut admission, t0, at, v4(1), "silent");
        activity.note_looked();
        looked.push(activity);
        assert_eq!(dropped.map(|d| d.0), Some("silent").filter(|_| at > 2));
    }
    // Once its task has looked and still heard nothing, it is silent too,
    // and the oldest of them.
    unseen.note_looked();
    let (_, _, dropped) = connect(&mut admission, t0, 20, v4(1), "silent");
    assert_eq!(dropped.map(|d| d.0), Some("unseen"));
}

#[test]
fn a_whole_first_record_is_a_client_hello_and_less_is_not() {
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x04];
    assert!(!holds_client_hello(&hello));
    hello.extend([1, 0, 0, 0]);
    assert!(holds_client_hello(&hello));
    assert!(!holds_client_hello(&hello[..8]));
    // Not a handshake record, or not TLS at all.
    assert!(!holds_client_hello(&[0x17, 0x03, 0x03, 0x00, 0x00]));
    assert!(!holds_client_hello(b"GET / HTTP/1.1"));
    assert!(!holds_client_hello(&[]));
}
