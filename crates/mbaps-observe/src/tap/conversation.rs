//! One session as the IDS would have seen it in plain Modbus/TCP: a
//! synthesized TCP connection between the client's real address and port
//! and the server's address on the tap's port (502 by default), with a
//! handshake, sequence and acknowledgement numbers that follow the bytes,
//! each ADU in a segment of its own, and a FIN or an RST at the end.
//!
//! The numbers are given as packets are built, in the order the writer
//! builds them: a record lost before the writer saw it (a full queue)
//! leaves no hole in the numbers, so a dissector follows the stream, and
//! the gap is named in a comment instead.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use etherparse::PacketBuilder;

/// The window every synthesized segment advertises.
const WINDOW: u16 = 65_535;
/// The hop limit of every synthesized packet.
const TTL: u8 = 64;

/// A packet built for the capture: when, the frame (Ethernet and up), and
/// what it says of itself.
#[derive(Clone, Debug)]
pub(crate) struct Packet {
    /// When the server read or wrote what it stands for.
    pub(crate) at: SystemTime,
    /// Ethernet II, IPv4 or IPv6, TCP, and the ADU if any.
    pub(crate) frame: Vec<u8>,
    /// Its annotation (pcapng `opt_comment`).
    pub(crate) comment: String,
}

/// Which side sent a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// One end of the synthesized connection.
#[derive(Clone, Copy, Debug)]
struct End {
    ip: IpAddr,
    port: u16,
    mac: [u8; 6],
    /// The sequence number of its next byte.
    next: u32,
}

/// A session's synthesized TCP connection.
#[derive(Debug)]
pub(crate) struct Conversation {
    client: End,
    server: End,
    /// When its last packet was stamped: a packet is never earlier.
    pub(crate) last: SystemTime,
    /// Who the client is, for every packet's comment (`role=…;
    /// certificate=…`).
    pub(crate) identity: String,
}

impl Conversation {
    /// The connection from `peer` to `local`, shown on port `port`;
    /// `number` (the tap's count of sessions) varies the initial sequence
    /// numbers.
    pub(crate) fn new(
        peer: SocketAddr,
        local: SocketAddr,
        port: u16,
        number: u64,
        identity: String,
    ) -> Conversation {
        let (client_ip, server_ip) = same_family(peer.ip(), local.ip());
        // Initial sequence numbers that differ between sessions, as a
        // real stack's do (a dissector keys nothing on them).
        let spread = (number as u32).wrapping_mul(0x9E37_79B9);
        Conversation {
            client: End {
                ip: client_ip,
                port: peer.port(),
                mac: mac(0x02, client_ip),
                next: spread,
            },
            server: End {
                ip: server_ip,
                port,
                mac: mac(0x06, server_ip),
                next: spread.rotate_left(16) ^ 0x5A5A_5A5A,
            },
            last: SystemTime::UNIX_EPOCH,
            identity,
        }
    }

    /// `at`, or the last packet's time if that is later: a session's
    /// packets are in order in time as in sequence.
    fn stamp(&mut self, at: SystemTime) -> SystemTime {
        if at > self.last {
            self.last = at;
        }
        self.last
    }

    /// The three-way handshake, at `at`; `comment` on the SYN.
    pub(crate) fn open(&mut self, at: SystemTime, comment: String) -> [Packet; 3] {
        let at = self.stamp(at);
        let syn = self.segment(Side::Client, Flags::SYN, &[], at, comment);
        let identity = self.identity.clone();
        let syn_ack = self.segment(Side::Server, Flags::SYN_ACK, &[], at, identity.clone());
        let ack = self.segment(Side::Client, Flags::ACK, &[], at, identity);
        [syn, syn_ack, ack]
    }

    /// A segment from `side` carrying `adu`, at `at`.
    pub(crate) fn data(
        &mut self,
        side: Side,
        adu: &[u8],
        at: SystemTime,
        comment: String,
    ) -> Packet {
        let at = self.stamp(at);
        self.segment(side, Flags::PSH_ACK, adu, at, comment)
    }

    /// The orderly end: `closer` sends FIN, the other side answers with
    /// its FIN, `closer` acknowledges it.
    pub(crate) fn finish(&mut self, closer: Side, at: SystemTime, comment: String) -> [Packet; 3] {
        let at = self.stamp(at);
        let identity = self.identity.clone();
        let first = self.segment(closer, Flags::FIN_ACK, &[], at, comment);
        let second = self.segment(closer.other(), Flags::FIN_ACK, &[], at, identity.clone());
        let last = self.segment(closer, Flags::ACK, &[], at, identity);
        [first, second, last]
    }

    /// The abrupt end: `side` resets the connection.
    pub(crate) fn reset(&mut self, side: Side, at: SystemTime, comment: String) -> Packet {
        let at = self.stamp(at);
        self.segment(side, Flags::RST_ACK, &[], at, comment)
    }

    fn segment(
        &mut self,
        side: Side,
        flags: Flags,
        payload: &[u8],
        at: SystemTime,
        comment: String,
    ) -> Packet {
        let (from, to) = match side {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        };
        let builder = PacketBuilder::ethernet2(from.mac, to.mac);
        let builder = match (from.ip, to.ip) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                builder.ipv4(source.octets(), destination.octets(), TTL)
            }
            (source, destination) => {
                builder.ipv6(v6(source).octets(), v6(destination).octets(), TTL)
            }
        };
        let mut builder = builder.tcp(from.port, to.port, from.next, WINDOW);
        if flags.syn {
            builder = builder.syn();
        }
        if flags.fin {
            builder = builder.fin();
        }
        if flags.rst {
            builder = builder.rst();
        }
        if flags.psh {
            builder = builder.psh();
        }
        // A SYN acknowledges nothing; every later segment acknowledges
        // all the other side has sent.
        if flags.ack {
            builder = builder.ack(to.next);
        }
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        // Writing to a Vec cannot fail, and an ADU is far below any
        // length the headers limit.
        let _ = builder.write(&mut frame, payload);
        // SYN and FIN take a sequence number each, data its length; a
        // reset takes none.
        let taken = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        let sender = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        sender.next = sender.next.wrapping_add(taken);
        Packet { at, frame, comment }
    }
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// The TCP flags of a synthesized segment.
#[derive(Clone, Copy, Debug)]
struct Flags {
    syn: bool,
    ack: bool,
    psh: bool,
    fin: bool,
    rst: bool,
}

impl Flags {
    const NONE: Flags = Flags {
        syn: false,
        ack: false,
        psh: false,
        fin: false,
        rst: false,
    };
    const SYN: Flags = Flags {
        syn: true,
        ..Flags::NONE
    };
    const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        ..Flags::NONE
    };
    const ACK: Flags = Flags {
        ack: true,
        ..Flags::NONE
    };
    const PSH_ACK: Flags = Flags {
        psh: true,
        ack: true,
        ..Flags::NONE
    };
    const FIN_ACK: Flags = Flags {
        fin: true,
        ack: true,
        ..Flags::NONE
    };
    const RST_ACK: Flags = Flags {
        rst: true,
        ack: true,
        ..Flags::NONE
    };
}

/// The two addresses in one family: an IPv4-mapped IPv6 address (a
/// dual-stack listener's view of an IPv4 client) as IPv4, and IPv4 as
/// IPv4-mapped beside an IPv6 address.
fn same_family(client: IpAddr, server: IpAddr) -> (IpAddr, IpAddr) {
    match (client.to_canonical(), server.to_canonical()) {
        (client @ IpAddr::V4(_), server @ IpAddr::V4(_))
        | (client @ IpAddr::V6(_), server @ IpAddr::V6(_)) => (client, server),
        (client, server) => (IpAddr::V6(v6(client)), IpAddr::V6(v6(server))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A locally administered MAC address made of `first` and the address's
/// last four bytes: each host keeps one MAC, as on a real segment.
fn mac(first: u8, ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let octets = v6.octets();
            [octets[12], octets[13], octets[14], octets[15]]
        }
    };
    [first, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn tcp(packet: &Packet) -> (u32, u32, bool, bool, bool, bool, Vec<u8>) {
        let sliced = SlicedPacket::from_ethernet(&packet.frame).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("not TCP");
        };
        (
            tcp.sequence_number(),
            tcp.acknowledgment_number(),
            tcp.syn(),
            tcp.fin(),
            tcp.rst(),
            tcp.ack(),
            tcp.payload().to_vec(),
        )
    }

    fn conversation() -> Conversation {
        Conversation::new(
            "192.0.2.7:50123".parse().unwrap(),
            "192.0.2.1:802".parse().unwrap(),
            502,
            3,
            "role=operator".into(),
        )
    }

    #[test]
    fn numbers_follow_the_bytes_each_way() {
        let mut c = conversation();
        let at = SystemTime::UNIX_EPOCH;
        let [syn, syn_ack, ack] = c.open(at, "start".into());
        let (isn_c, _, s, ..) = tcp(&syn);
        assert!(s);
        let (isn_s, acked, s, _, _, a, _) = tcp(&syn_ack);
        assert!(s && a);
        assert_eq!(acked, isn_c.wrapping_add(1));
        let (seq, acked, ..) = tcp(&ack);
        assert_eq!((seq, acked), (isn_c.wrapping_add(1), isn_s.wrapping_add(1)));

        let request = c.data(
            Side::Client,
            &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2],
            at,
            String::new(),
        );
        let (seq, acked, .., payload) = tcp(&request);
        assert_eq!((seq, acked), (isn_c.wrapping_add(1), isn_s.wrapping_add(1)));
        assert_eq!(payload.len(), 12);
        let response = c.data(
            Side::Server,
            &[0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 0, 0, 0],
            at,
            String::new(),
        );
        let (seq, acked, ..) = tcp(&response);
        assert_eq!(
            (seq, acked),
            (isn_s.wrapping_add(1), isn_c.wrapping_add(13))
        );

        let [fin, fin_ack, last] = c.finish(Side::Client, at, "end".into());
        let (seq, _, _, f, ..) = tcp(&fin);
        assert!(f);
        assert_eq!(seq, isn_c.wrapping_add(13));
        let (seq, acked, _, f, ..) = tcp(&fin_ack);
        assert!(f);
        assert_eq!(
            (seq, acked),
            (isn_s.wrapping_add(14), isn_c.wrapping_add(14))
        );
        let (seq, acked, _, f, ..) = tcp(&last);
        assert!(!f);
        assert_eq!(
            (seq, acked),
            (isn_c.wrapping_add(14), isn_s.wrapping_add(15))
        );
    }

    #[test]
    fn a_reset_takes_no_number_and_packets_never_go_back_in_time() {
        let mut c = conversation();
        let later = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10);
        c.open(later, String::new());
        let earlier = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        let reset = c.reset(Side::Server, earlier, "dropped".into());
        assert_eq!(reset.at, later);
        let (_, _, _, _, r, ..) = tcp(&reset);
        assert!(r);
    }

    #[test]
    fn a_dual_stack_view_of_an_ipv4_client_is_ipv4() {
        let mut c = Conversation::new(
            "[::ffff:192.0.2.7]:40000".parse().unwrap(),
            "[::ffff:192.0.2.1]:802".parse().unwrap(),
            502,
            0,
            String::new(),
        );
        let [syn, ..] = c.open(SystemTime::UNIX_EPOCH, String::new());
        let sliced = SlicedPacket::from_ethernet(&syn.frame).unwrap();
        assert!(matches!(sliced.net, Some(NetSlice::Ipv4(_))));
        let mut c = Conversation::new(
            "[2001:db8::7]:40000".parse().unwrap(),
            "192.0.2.1:802".parse().unwrap(),
            502,
            0,
            String::new(),
        );
        let [syn, ..] = c.open(SystemTime::UNIX_EPOCH, String::new());
        let sliced = SlicedPacket::from_ethernet(&syn.frame).unwrap();
        assert!(matches!(sliced.net, Some(NetSlice::Ipv6(_))));
    }
}
