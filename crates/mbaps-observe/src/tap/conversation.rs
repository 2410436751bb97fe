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

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, TcpHeader};

/// The window every synthesized segment advertises.
const WINDOW: u16 = 65_535;
/// The hop limit of every synthesized packet.
const TTL: u8 = 64;

/// Where a conversation's packets go: when, the frame (Ethernet and up),
/// and its annotation (pcapng `opt_comment`).
pub(crate) trait Emit {
    /// One packet.
    fn packet(&mut self, at: SystemTime, frame: &[u8], comment: &str);
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
    pub(crate) fn open(
        &mut self,
        at: SystemTime,
        comment: &str,
        frame: &mut Vec<u8>,
        out: &mut impl Emit,
    ) {
        let at = self.stamp(at);
        self.segment(Side::Client, Flags::SYN, &[], frame);
        out.packet(at, frame, comment);
        self.segment(Side::Server, Flags::SYN_ACK, &[], frame);
        out.packet(at, frame, &self.identity);
        self.segment(Side::Client, Flags::ACK, &[], frame);
        out.packet(at, frame, &self.identity);
    }

    /// A segment from `side` carrying `adu`, at `at`.
    pub(crate) fn data(
        &mut self,
        side: Side,
        adu: &[u8],
        at: SystemTime,
        comment: &str,
        frame: &mut Vec<u8>,
        out: &mut impl Emit,
    ) {
        let at = self.stamp(at);
        self.segment(side, Flags::PSH_ACK, adu, frame);
        out.packet(at, frame, comment);
    }

    /// The orderly end: `closer` sends FIN, the other side answers with
    /// its FIN, `closer` acknowledges it.
    pub(crate) fn finish(
        &mut self,
        closer: Side,
        at: SystemTime,
        comment: &str,
        frame: &mut Vec<u8>,
        out: &mut impl Emit,
    ) {
        let at = self.stamp(at);
        self.segment(closer, Flags::FIN_ACK, &[], frame);
        out.packet(at, frame, comment);
        self.segment(closer.other(), Flags::FIN_ACK, &[], frame);
        out.packet(at, frame, &self.identity);
        self.segment(closer, Flags::ACK, &[], frame);
        out.packet(at, frame, &self.identity);
    }

    /// The abrupt end: `side` resets the connection.
    pub(crate) fn reset(
        &mut self,
        side: Side,
        at: SystemTime,
        comment: &str,
        frame: &mut Vec<u8>,
        out: &mut impl Emit,
    ) {
        let at = self.stamp(at);
        self.segment(side, Flags::RST_ACK, &[], frame);
        out.packet(at, frame, comment);
    }

    /// Builds a segment from `side` into `frame`: Ethernet II, IPv4 or
    /// IPv6, TCP with its checksum, `payload`. (etherparse's headers,
    /// written one after the other: its packet builder moves a state of
    /// several kilobytes at each step, which cost the tap more than the
    /// rest of a packet together.)
    fn segment(&mut self, side: Side, flags: Flags, payload: &[u8], frame: &mut Vec<u8>) {
        let (from, to) = match side {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        };
        let mut tcp = TcpHeader::new(from.port, to.port, from.next, WINDOW);
        tcp.syn = flags.syn;
        tcp.fin = flags.fin;
        tcp.rst = flags.rst;
        tcp.psh = flags.psh;
        // A SYN acknowledges nothing; every later segment acknowledges
        // all the other side has sent.
        if flags.ack {
            tcp.ack = true;
            tcp.acknowledgment_number = to.next;
        }
        // An ADU is at most 260 bytes: no length below overflows.
        let tcp_len = (tcp.header_len() + payload.len()) as u16;
        frame.clear();
        // Writing to a Vec cannot fail.
        match (from.ip, to.ip) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                let _ = Ethernet2Header {
                    source: from.mac,
                    destination: to.mac,
                    ether_type: EtherType::IPV4,
                }
                .write(frame);
                let Ok(mut ip) = Ipv4Header::new(
                    tcp_len,
                    TTL,
                    IpNumber::TCP,
                    source.octets(),
                    destination.octets(),
                ) else {
                    return;
                };
                ip.dont_fragment = true;
                tcp.checksum = tcp.calc_checksum_ipv4(&ip, payload).unwrap_or(0);
                let _ = ip.write(frame);
            }
            (source, destination) => {
                let _ = Ethernet2Header {
                    source: from.mac,
                    destination: to.mac,
                    ether_type: EtherType::IPV6,
                }
                .write(frame);
                let ip = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: tcp_len,
                    next_header: IpNumber::TCP,
                    hop_limit: TTL,
                    source: v6(source).octets(),
                    destination: v6(destination).octets(),
                };
                tcp.checksum = tcp.calc_checksum_ipv6(&ip, payload).unwrap_or(0);
                let _ = ip.write(frame);
            }
        }
        let _ = tcp.write(frame);
        frame.extend_from_slice(payload);
        // SYN and FIN take a sequence number each, data its length; a
        // reset takes none.
        let taken = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        let sender = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        sender.next = sender.next.wrapping_add(taken);
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

    /// The packets a conversation emitted.
    #[derive(Default)]
    struct Packets(Vec<(SystemTime, Vec<u8>, String)>);

    impl Emit for Packets {
        fn packet(&mut self, at: SystemTime, frame: &[u8], comment: &str) {
            self.0.push((at, frame.to_vec(), comment.to_owned()));
        }
    }

    fn tcp(frame: &[u8]) -> (u32, u32, bool, bool, bool, bool, Vec<u8>) {
        let sliced = SlicedPacket::from_ethernet(frame).unwrap();
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
        let (mut frame, mut out) = (Vec::new(), Packets::default());
        c.open(at, "start", &mut frame, &mut out);
        c.data(
            Side::Client,
            &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2],
            at,
            "",
            &mut frame,
            &mut out,
        );
        c.data(
            Side::Server,
            &[0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 0, 0, 0],
            at,
            "",
            &mut frame,
            &mut out,
        );
        c.finish(Side::Client, at, "end", &mut frame, &mut out);
        let frames: Vec<&[u8]> = out.0.iter().map(|(_, f, _)| f.as_slice()).collect();
        let [syn, syn_ack, ack, request, response, fin, fin_ack, last] = frames[..] else {
            panic!("eight packets");
        };
        let (isn_c, _, s, ..) = tcp(syn);
        assert!(s);
        let (isn_s, acked, s, _, _, a, _) = tcp(syn_ack);
        assert!(s && a);
        assert_eq!(acked, isn_c.wrapping_add(1));
        let (seq, acked, ..) = tcp(ack);
        assert_eq!((seq, acked), (isn_c.wrapping_add(1), isn_s.wrapping_add(1)));

        let (seq, acked, .., payload) = tcp(request);
        assert_eq!((seq, acked), (isn_c.wrapping_add(1), isn_s.wrapping_add(1)));
        assert_eq!(payload.len(), 12);
        let (seq, acked, ..) = tcp(response);
        assert_eq!(
            (seq, acked),
            (isn_s.wrapping_add(1), isn_c.wrapping_add(13))
        );

        let (seq, _, _, f, ..) = tcp(fin);
        assert!(f);
        assert_eq!(seq, isn_c.wrapping_add(13));
        let (seq, acked, _, f, ..) = tcp(fin_ack);
        assert!(f);
        assert_eq!(
            (seq, acked),
            (isn_s.wrapping_add(14), isn_c.wrapping_add(14))
        );
        let (seq, acked, _, f, ..) = tcp(last);
        assert!(!f);
        assert_eq!(
            (seq, acked),
            (isn_c.wrapping_add(14), isn_s.wrapping_add(15))
        );
    }

    #[test]
    fn a_reset_takes_no_number_and_packets_never_go_back_in_time() {
        let mut c = conversation();
        let (mut frame, mut out) = (Vec::new(), Packets::default());
        let later = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10);
        c.open(later, "", &mut frame, &mut out);
        let earlier = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        c.reset(Side::Server, earlier, "dropped", &mut frame, &mut out);
        let (at, reset, _) = out.0.last().unwrap();
        assert_eq!(*at, later);
        let (_, _, _, _, r, ..) = tcp(reset);
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
        let (mut frame, mut out) = (Vec::new(), Packets::default());
        c.open(SystemTime::UNIX_EPOCH, "", &mut frame, &mut out);
        let sliced = SlicedPacket::from_ethernet(&out.0[0].1).unwrap();
        let Some(NetSlice::Ipv4(ip)) = sliced.net else {
            panic!("IPv4");
        };
        let header = ip.header().to_header();
        assert_eq!(header.header_checksum, header.calc_header_checksum());
        let mut c = Conversation::new(
            "[2001:db8::7]:40000".parse().unwrap(),
            "192.0.2.1:802".parse().unwrap(),
            502,
            0,
            String::new(),
        );
        let (mut frame, mut out) = (Vec::new(), Packets::default());
        c.open(SystemTime::UNIX_EPOCH, "", &mut frame, &mut out);
        c.data(
            Side::Client,
            &[0, 1, 0, 0, 0, 2, 1, 7],
            SystemTime::UNIX_EPOCH,
            "",
            &mut frame,
            &mut out,
        );
        let sliced = SlicedPacket::from_ethernet(&out.0[0].1).unwrap();
        assert!(matches!(sliced.net, Some(NetSlice::Ipv6(_))));
        // The checksums hold: computed again over what was written.
        for (_, frame, _) in &out.0 {
            let sliced = SlicedPacket::from_ethernet(frame).unwrap();
            let (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Tcp(tcp))) =
                (sliced.net, sliced.transport)
            else {
                panic!("IPv6 and TCP");
            };
            let header = tcp.to_header();
            let again = header
                .calc_checksum_ipv6(&ip.header().to_header(), tcp.payload())
                .unwrap();
            assert_eq!(header.checksum, again);
        }
    }
}
