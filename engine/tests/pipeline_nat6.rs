//! NAT over IPv6 through the worker pipeline (issue 13, stage 3): a
//! client's SYN to `[VIP]:80` leaves for the real server with only the
//! destination address/port, the hop limit, the MACs and the checksum
//! changed, and the server's reply goes back from the VIP: both checked
//! byte for byte against frames etherparse builds from scratch (its
//! checksum computed over the whole segment, ours incrementally). wrr
//! 3,2,1 over six new flows gives IPVS's sequence; per-server counters
//! count the packets and IP bytes; a server's packet of no connection, a
//! non-SYN opening are counted drops, a hop limit of 1 gets time-exceeded; the connection
//! expires as an IPv4 one does and gives back its address ids.
#![cfg(feature = "dpdk")]

mod v6_common;

use std::net::Ipv6Addr;

use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use v6_common::{Rig, CLIENT, CLIENT_MAC, PORT0_MAC, PORT1_ADDR, PORT1_MAC};

const RS_MAC: [[u8; 6]; 3] = [
    [2, 0x5e, 0, 0, 0, 0x11],
    [2, 0x5e, 0, 0, 0, 0x12],
    [2, 0x5e, 0, 0, 0, 0x13],
];
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x12),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x13),
];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = ["198.18.0.2/24", "2001:db8:0:1::2/64"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]
exception_path = false

[timeouts]
udp = 5

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "wrr"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080
  weight = 2
  [[service.server]]
  address = "2001:db8:0:2::13"
  port = 8080
  weight = 1

[[service]]
vip = "2001:db8:0:1::100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 5353
"#;

impl Rig {
    fn new() -> Rig {
        let neighbours: Vec<_> = RS.into_iter().zip(RS_MAC).collect();
        let r = Rig::with(CFG, &neighbours);
        assert_eq!(r.snap().services6.len(), 2);
        r
    }

    /// (conns, in packets, out packets, in bytes, out bytes) of a server.
    fn counts(&self, rs: Ipv6Addr, port: u16) -> [u64; 5] {
        let d = self
            .shared
            .registry
            .entries()
            .into_iter()
            .find(|e| e.1 == rs && e.2 == port)
            .expect("server registered")
            .3;
        [
            d.total(|c| &c.conns),
            d.total(|c| &c.in_packets),
            d.total(|c| &c.out_packets),
            d.total(|c| &c.in_bytes),
            d.total(|c| &c.out_bytes),
        ]
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp6(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    hop: u8,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv6(src.octets(), dst.octets(), hop)
        .tcp(sport, dport, 0x1234_5678, 64240);
    let b = if syn { b.syn() } else { b.ack(0x0bad_cafe) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn syn(cport: u16, hop: u8) -> Vec<u8> {
    tcp6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        cport,
        VIP6,
        80,
        hop,
        true,
        &[],
    )
}

/// Parses `out` with etherparse: (src, sport, dst, dport, hop limit), and
/// asserts its TCP checksum is right.
fn parsed(out: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, u8) {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses the output");
    let Some(NetSlice::Ipv6(ip)) = s.net else {
        panic!("not IPv6")
    };
    let h = ip.header();
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    let src = Ipv6Addr::from(h.source());
    let dst = Ipv6Addr::from(h.destination());
    assert_eq!(
        t.to_header()
            .calc_checksum_ipv6_raw(h.source(), h.destination(), t.payload())
            .unwrap(),
        t.checksum(),
        "TCP checksum"
    );
    (
        src,
        t.source_port(),
        dst,
        t.destination_port(),
        h.hop_limit(),
    )
}

#[test]
fn both_directions_are_rewritten_byte_for_byte() {
    let mut r = Rig::new();
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let (v, out) = r.run(0, &syn(40000, 64), 2_000);
    assert_eq!(v, Verdict::Tx(1), "to the servers' port");
    // wrr's first pick is the heaviest server; hop limit 63, the
    // destination and port rewritten, the MACs the next hop's and ours.
    let want = tcp6(
        PORT1_MAC.0,
        RS_MAC[0],
        CLIENT,
        40000,
        RS[0],
        8080,
        63,
        true,
        &[],
    );
    assert_eq!(out, want, "inbound SYN, byte for byte");
    assert_eq!(parsed(&out), (CLIENT, 40000, RS[0], 8080, 63));

    // The server's reply: from the VIP again, to the client (learned from
    // its SYN, so no solicitation is needed).
    let reply = tcp6(
        RS_MAC[0],
        PORT1_MAC.0,
        RS[0],
        8080,
        CLIENT,
        40000,
        64,
        false,
        payload,
    );
    let (v, out) = r.run(1, &reply, 2_001);
    assert_eq!(v, Verdict::Tx(0), "to the client's port");
    let want = tcp6(
        PORT0_MAC.0,
        CLIENT_MAC,
        VIP6,
        80,
        CLIENT,
        40000,
        63,
        false,
        payload,
    );
    assert_eq!(out, want, "reply, byte for byte");
    assert_eq!(parsed(&out), (VIP6, 80, CLIENT, 40000, 63));

    // The client's next segment follows the connection.
    let data = tcp6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        40000,
        VIP6,
        80,
        9,
        false,
        payload,
    );
    let (v, out) = r.run(0, &data, 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp6(
        PORT1_MAC.0,
        RS_MAC[0],
        CLIENT,
        40000,
        RS[0],
        8080,
        8,
        false,
        payload,
    );
    assert_eq!(out, want, "established inbound, byte for byte");

    // IP bytes as IPVS counts: 40 + 20 (+ payload).
    let plen = payload.len() as u64;
    assert_eq!(r.counts(RS[0], 8080), [1, 2, 1, 60 + 60 + plen, 60 + plen]);
    assert_eq!(r.w.conns6_len(), 1);
    assert_eq!(r.w.conns.len(), 0, "the IPv4 table is not used");
    assert_eq!(r.shared.worker_stats[0].conns_created.get(), 1);
}

#[test]
fn wrr_3_2_1_gives_the_ipvs_sequence() {
    let mut r = Rig::new();
    let mut got = Vec::new();
    for i in 0..6u16 {
        let (v, out) = r.run(0, &syn(41000 + i, 64), 2_000);
        assert_eq!(v, Verdict::Tx(1));
        let (_, _, dst, dport, _) = parsed(&out);
        assert_eq!(dport, 8080);
        got.push(RS.iter().position(|&a| a == dst).expect("a real server"));
    }
    assert_eq!(got, [0, 0, 1, 0, 1, 2], "IPVS wrr over weights 3,2,1");
    assert_eq!(r.counts(RS[0], 8080)[0], 3);
    assert_eq!(r.counts(RS[1], 8080)[0], 2);
    assert_eq!(r.counts(RS[2], 8080)[0], 1);
    assert_eq!(r.w.conns6_len(), 6);
}

#[test]
fn strays_are_counted_drops() {
    let mut r = Rig::new();
    // A server's segment of no connection.
    let stray = tcp6(
        RS_MAC[1],
        PORT1_MAC.0,
        RS[1],
        8080,
        CLIENT,
        40001,
        64,
        false,
        b"x",
    );
    assert_eq!(r.run(1, &stray, 2_000).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), 1);
    // A client's ACK that opens nothing.
    let ack = tcp6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        40002,
        VIP6,
        80,
        64,
        false,
        b"",
    );
    assert_eq!(r.run(0, &ack, 2_000).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoConnection), 1);
    // Hop limit 1: not forwarded, answered with ICMPv6 time exceeded
    // (pipeline_v6routed.rs checks its bytes).
    assert_eq!(r.run(0, &syn(40003, 1), 2_000).0, Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].icmp_sent.get(), 1);
    // A port no service has.
    let other = tcp6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        40004,
        VIP6,
        81,
        64,
        true,
        b"",
    );
    assert_eq!(r.run(0, &other, 2_000).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), 2);
    // A server's answer to the director's own address (a health check) is
    // not a stray: it goes where it went before (no exception path here).
    let hc = tcp6(
        RS_MAC[1],
        PORT1_MAC.0,
        RS[1],
        8080,
        PORT1_ADDR,
        40005,
        64,
        false,
        b"",
    );
    assert_eq!(r.run(1, &hc, 2_000).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NotIpv4), 1);
    assert_eq!(r.drops(Drop::NoService), 2);
    assert_eq!(r.w.conns6_len(), 0);
    assert_eq!(r.counts(RS[1], 8080), [0; 5]);
}

#[test]
fn udp_flows_expire_and_a_new_one_is_scheduled_afresh() {
    let mut r = Rig::new();
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC.0)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .udp(5000, 53)
        .write(&mut q, b"query")
        .unwrap();
    let (v, out) = r.run(0, &q, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[0])
        .ipv6(CLIENT.octets(), RS[0].octets(), 63)
        .udp(5000, 5353)
        .write(&mut want, b"query")
        .unwrap();
    assert_eq!(out, want, "UDP inbound, byte for byte");
    assert_eq!(r.w.conns6_len(), 1);
    // [timeouts] udp = 5 s: swept at its expiry (2 s + 5 s), as an IPv4 record.
    let snap = r.shared.snapshot.load_full();
    r.w.housekeeping(&snap, 7_000, 1 << 12);
    assert_eq!(r.w.conns6_len(), 0);
    assert_eq!(r.counts(RS[0], 5353)[0], 1);
    // The reply of the gone flow is a stray now.
    let mut a = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[0], PORT1_MAC.0)
        .ipv6(RS[0].octets(), CLIENT.octets(), 64)
        .udp(5353, 5000)
        .write(&mut a, b"answer")
        .unwrap();
    assert_eq!(r.run(1, &a, 7_001).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), 1);
    // And the client's next query opens a new connection.
    assert_eq!(r.run(0, &q, 7_002).0, Verdict::Tx(1));
    assert_eq!(r.counts(RS[0], 5353)[0], 2);
}

/// An IPv6 fragment of a UDP datagram: Ethernet, IPv6 (next header 44),
/// a Fragment header (next header 17, `offset` bytes, M flag, `ident`),
/// then `data` (the datagram's bytes from `offset`).
#[allow(clippy::too_many_arguments)]
fn frag6(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    offset: u16,
    more: bool,
    ident: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&dmac);
    v.extend_from_slice(&smac);
    v.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[44, 64]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(&[17, 0]);
    v.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    v.extend_from_slice(&ident.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A UDP datagram (header + payload) with its checksum, computed by
/// etherparse over the whole datagram.
fn udp_datagram(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let h = etherparse::UdpHeader {
        source_port: sport,
        destination_port: dport,
        length: (8 + payload.len()) as u16,
        checksum: 0,
    };
    let c = h
        .calc_checksum_ipv6_raw(src.octets(), dst.octets(), payload)
        .unwrap();
    let mut v = h.to_bytes().to_vec();
    v[6..8].copy_from_slice(&c.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// What the director must make of a fragment: new MACs, hop limit - 1, the
/// rewritten address at `addr_off` (22 source, 38 destination), and the
/// fragment's data replaced by `data` (the rewritten datagram's bytes).
fn expect_frag(
    input: &[u8],
    dmac: [u8; 6],
    smac: [u8; 6],
    addr_off: usize,
    addr: Ipv6Addr,
    data: &[u8],
) -> Vec<u8> {
    let mut e = input.to_vec();
    e[0..6].copy_from_slice(&dmac);
    e[6..12].copy_from_slice(&smac);
    e[21] -= 1;
    e[addr_off..addr_off + 16].copy_from_slice(&addr.octets());
    e.truncate(62);
    e.extend_from_slice(data);
    e
}

/// IPv6 fragments of a UDP flow (issue 13): the first fragment (UDP
/// header) is NAT-ed as its flow, the checksum updated for the whole
/// datagram; the later fragment (no ports) follows it by (source,
/// destination, identification) with only its address, hop limit and MACs
/// changed; the server's fragmented answer goes back from the VIP the same
/// way. Each output is checked byte for byte against a frame built from
/// the datagram etherparse checksums after the rewrite. A later fragment
/// of a datagram whose first was never seen is held (the worker's hold
/// waits for its first); another identification is another datagram.
#[test]
fn ipv6_fragments_follow_their_first_fragment_both_ways() {
    let mut r = Rig::new();
    let payload: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
    let ident = 0x1234_5678;
    // Client -> [VIP]:53, 48 bytes of datagram in fragments of 24 + 24.
    let dg = udp_datagram(CLIENT, 40000, VIP6, 53, &payload);
    let want = udp_datagram(CLIENT, 40000, RS[0], 5353, &payload);
    let first = frag6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        VIP6,
        0,
        true,
        ident,
        &dg[..24],
    );
    let second = frag6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        VIP6,
        24,
        false,
        ident,
        &dg[24..],
    );

    // The second before the first: nothing known yet, held.
    let (v, _) = r.run(0, &second, 2_000);
    assert_eq!(v, Verdict::Hold);
    // Another datagram's later fragment (same addresses) is not this one.
    let other = frag6(
        CLIENT_MAC,
        PORT0_MAC.0,
        CLIENT,
        VIP6,
        24,
        false,
        ident + 1,
        &dg[24..],
    );

    let (v, out) = r.run(0, &first, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(
        out,
        expect_frag(&first, RS_MAC[0], PORT1_MAC.0, 38, RS[0], &want[..24])
    );
    let (v, out) = r.run(0, &second, 2_001);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(
        out,
        expect_frag(&second, RS_MAC[0], PORT1_MAC.0, 38, RS[0], &want[24..])
    );
    assert_eq!(r.run(0, &other, 2_001).0, Verdict::Hold);
    // Both fragments counted on the server: one connection, 2 packets.
    let c = r.counts(RS[0], 5353);
    assert_eq!((c[0], c[1]), (1, 2));

    // The server's answer, fragmented (its own identification).
    let answer = udp_datagram(RS[0], 5353, CLIENT, 40000, &payload);
    let back = udp_datagram(VIP6, 53, CLIENT, 40000, &payload);
    let rs_mac = RS_MAC[0];
    let a1 = frag6(
        rs_mac,
        PORT1_MAC.0,
        RS[0],
        CLIENT,
        0,
        true,
        7,
        &answer[..16],
    );
    let a2 = frag6(
        rs_mac,
        PORT1_MAC.0,
        RS[0],
        CLIENT,
        16,
        false,
        7,
        &answer[16..],
    );
    let (v, out) = r.run(1, &a1, 2_002);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(
        out,
        expect_frag(&a1, CLIENT_MAC, PORT0_MAC.0, 22, VIP6, &back[..16])
    );
    let (v, out) = r.run(1, &a2, 2_002);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(
        out,
        expect_frag(&a2, CLIENT_MAC, PORT0_MAC.0, 22, VIP6, &back[16..])
    );
    assert_eq!(r.counts(RS[0], 5353)[2], 2);

    // Past the fragment lifetime the datagram is forgotten: held again.
    assert_eq!(r.run(0, &second, 2_000 + 2_001).0, Verdict::Hold);
    assert_eq!(r.drops(Drop::Fragment), 0);
}
