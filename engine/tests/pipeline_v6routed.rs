//! DR and TUN over IPv6 and ICMPv6 errors through the worker pipeline
//! (issue 13): every frame the pipeline writes is compared byte for byte
//! with one etherparse builds from scratch (its own checksums):
//!
//! * DR: only the MACs (next hop = the server, found by ND) and the hop
//!   limit change; the flow is tracked and its next packet follows it;
//! * TUN: an outer IPv6 header (next header 41) from the servers' port's
//!   IPv6 address to the server in front of the hop-decremented packet;
//! * a hop limit of 1 gets ICMPv6 time-exceeded from the arrival port's
//!   address quoting the packet; a packet too big for the egress MTU
//!   (the tunnel's 40 bytes included) gets packet-too-big saying what
//!   fits, quoting at most 1232 bytes (1280 in all); both rate-limited;
//! * an ICMPv6 error of a tracked flow: a NAT server's packet-too-big
//!   about what it received goes to the client from the VIP, quoting the
//!   client's own packet; a client-side error about DR traffic is relayed
//!   to the flow's server unchanged but for the MACs and hop limit.
#![cfg(feature = "dpdk")]

mod v6_common;

use std::net::Ipv6Addr;

use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use etherparse::{IpNumber, Ipv6HeaderSlice, PacketBuilder, SlicedPacket, TransportSlice};
use v6_common::{Rig, CLIENT, CLIENT_MAC, PORT0_ADDR, PORT0_MAC, PORT1_ADDR, PORT1_MAC};

const RS_MAC: [[u8; 6]; 2] = [[2, 0x5e, 0, 0, 0, 0x11], [2, 0x5e, 0, 0, 0, 0x12]];
const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x12),
];
/// The servers' port MTU: DR/NAT packets up to 1400 bytes fit, TUN ones
/// up to 1360.
const MTU: u16 = 1400;

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
mtu = 1400

[[service]]
vip = "2001:db8:0:1::100"
port = 80
forward = "dr"
  [[service.server]]
  address = "2001:db8:0:2::11"

[[service]]
vip = "2001:db8:0:1::100"
port = 443
forward = "tun"
  [[service.server]]
  address = "2001:db8:0:2::11"

[[service]]
vip = "2001:db8:0:1::100"
port = 8000
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080
"#;

impl Rig {
    fn new() -> Rig {
        let neighbours: Vec<_> = RS.into_iter().zip(RS_MAC).collect();
        let r = Rig::with(CFG, &neighbours);
        assert_eq!(r.snap().services6.len(), 3);
        r
    }

    fn icmp_sent(&self) -> u64 {
        self.shared.worker_stats[0].icmp_sent.get()
    }
}

/// A TCP segment over IPv6 built by etherparse (SYN or ACK).
#[allow(clippy::too_many_arguments)]
fn tcp6(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    hop: u8,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.octets(), dst.octets(), hop)
        .tcp(sport, dport, 0x1234_5678, 64240);
    let b = if syn { b.syn() } else { b.ack(0x0bad_cafe) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// The client's segment to `[VIP]:port`.
fn from_client(cport: u16, vport: u16, hop: u8, syn: bool, payload: &[u8]) -> Vec<u8> {
    tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        CLIENT,
        cport,
        VIP6,
        vport,
        hop,
        syn,
        payload,
    )
}

/// An ICMPv6 error frame built by etherparse.
fn icmp6_err(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop: u8,
    t: etherparse::Icmpv6Type,
    quote: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.octets(), dst.octets(), hop)
        .icmpv6(t)
        .write(&mut v, quote)
        .unwrap();
    v
}

/// Asserts etherparse reads `out` as ICMPv6 with a valid checksum.
fn icmp6_checksum_ok(out: &[u8]) {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses it");
    let Some(etherparse::NetSlice::Ipv6(ip)) = s.net else {
        panic!("not IPv6")
    };
    let Some(TransportSlice::Icmpv6(m)) = s.transport else {
        panic!("not ICMPv6")
    };
    let h = ip.header();
    assert_eq!(
        m.header()
            .icmp_type
            .calc_checksum(h.source(), h.destination(), m.payload())
            .unwrap(),
        m.checksum(),
        "ICMPv6 checksum"
    );
}

#[test]
fn dr_rewrites_macs_and_hop_limit_only() {
    let mut r = Rig::new();
    let (v, out) = r.run(0, &from_client(40000, 80, 64, true, &[]), 2_000);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp6(
        (PORT1_MAC.0, RS_MAC[0]),
        CLIENT,
        40000,
        VIP6,
        80,
        63,
        true,
        &[],
    );
    assert_eq!(out, want, "DR SYN, byte for byte");
    assert_eq!(r.w.conns6_len(), 1, "tracked in the IPv6 table");
    let data = from_client(40000, 80, 9, false, b"GET / HTTP/1.0\r\n\r\n");
    let (v, out) = r.run(0, &data, 2_001);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp6(
        (PORT1_MAC.0, RS_MAC[0]),
        CLIENT,
        40000,
        VIP6,
        80,
        8,
        false,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(out, want, "DR established, byte for byte");
    assert_eq!(r.w.conns6_len(), 1);
}

#[test]
fn tun_wraps_in_an_outer_ipv6_header() {
    let mut r = Rig::new();
    let payload = [0x5a; 100];
    let (v, out) = r.run(0, &from_client(40001, 443, 64, true, &payload), 2_000);
    assert_eq!(v, Verdict::Tx(1));
    let inner = tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        CLIENT,
        40001,
        VIP6,
        443,
        63,
        true,
        &payload,
    );
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[0])
        .ipv6(PORT1_ADDR.octets(), RS[0].octets(), 63)
        .write(&mut want, IpNumber::IPV6, &inner[14..])
        .unwrap();
    assert_eq!(out, want, "TUN frame, byte for byte");
    let outer = Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(outer.next_header(), IpNumber::IPV6);
    assert_eq!(usize::from(outer.payload_length()), inner.len() - 14);
    assert_eq!(r.w.conns6_len(), 1);
}

#[test]
fn hop_limit_1_gets_time_exceeded_rate_limited() {
    let mut r = Rig::new();
    let syn = from_client(40002, 80, 1, true, &[]);
    let (v, out) = r.run(0, &syn, 2_000);
    assert_eq!(v, Verdict::Tx(0), "back out of the arrival port");
    let want = icmp6_err(
        (PORT0_MAC.0, CLIENT_MAC),
        PORT0_ADDR,
        CLIENT,
        64,
        etherparse::Icmpv6Type::TimeExceeded(
            etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
        ),
        &syn[14..],
    );
    assert_eq!(out, want, "time exceeded, byte for byte");
    icmp6_checksum_ok(&out);
    assert_eq!(r.icmp_sent(), 1);
    assert_eq!(r.w.conns6_len(), 0, "no connection for it");
    // The token bucket (100 at once, 1 a millisecond) holds: 99 more now,
    // then counted drops.
    for _ in 0..150 {
        r.run(0, &syn, 2_000);
    }
    assert_eq!(r.icmp_sent(), 100);
    assert_eq!(r.drops(Drop::TtlExceeded), 51);
    // An established DR flow whose packet arrives with hop limit 1 too.
    r.run(0, &from_client(40003, 80, 64, true, &[]), 2_100);
    let (v, _) = r.run(0, &from_client(40003, 80, 1, false, b"x"), 2_100);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(r.icmp_sent(), 101);
}

#[test]
fn too_big_gets_packet_too_big_with_the_mtu_that_fits() {
    let mut r = Rig::new();
    // TUN: 1400 bytes fit the port but not with the 40-byte outer header.
    let big = from_client(40004, 443, 64, true, &[0x33; 1400 - 60]);
    let (v, out) = r.run(0, &big, 2_000);
    assert_eq!(v, Verdict::Tx(0));
    let want = icmp6_err(
        (PORT0_MAC.0, CLIENT_MAC),
        PORT0_ADDR,
        CLIENT,
        64,
        etherparse::Icmpv6Type::PacketTooBig {
            mtu: u32::from(MTU) - 40,
        },
        &big[14..14 + 1232],
    );
    assert_eq!(
        out.len(),
        14 + 1280,
        "the whole ICMPv6 packet is 1280 bytes"
    );
    assert_eq!(out, want, "packet too big (TUN), byte for byte");
    icmp6_checksum_ok(&out);
    // One that fits goes through.
    let fits = from_client(40005, 443, 64, true, &[0x33; 1360 - 60]);
    assert_eq!(r.run(0, &fits, 2_000).0, Verdict::Tx(1));
    // DR and NAT: the port's MTU itself; a small packet quoted whole.
    for vport in [80u16, 8000] {
        let big = from_client(40006, vport, 64, true, &[0x44; 1401 - 60]);
        let (v, out) = r.run(0, &big, 2_000);
        assert_eq!(v, Verdict::Tx(0));
        let want = icmp6_err(
            (PORT0_MAC.0, CLIENT_MAC),
            PORT0_ADDR,
            CLIENT,
            64,
            etherparse::Icmpv6Type::PacketTooBig {
                mtu: u32::from(MTU),
            },
            &big[14..14 + 1232],
        );
        assert_eq!(out, want, "packet too big to port {vport}");
    }
    assert_eq!(r.icmp_sent(), 3);
}

#[test]
fn nat_server_error_goes_to_the_client_from_the_vip() {
    let mut r = Rig::new();
    let syn = from_client(40010, 8000, 64, true, &[0x11; 64]);
    let (v, fwd) = r.run(0, &syn, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    // The server (its path to the client narrower) says packet too big
    // about the packet it received: client -> RS:8080.
    let err = icmp6_err(
        (RS_MAC[1], PORT1_MAC.0),
        RS[1],
        CLIENT,
        64,
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 },
        &fwd[14..],
    );
    let (v, out) = r.run(1, &err, 2_001);
    assert_eq!(v, Verdict::Tx(0), "to the client's port");
    // What the client sees: from the VIP, about its own packet (as it
    // left the director: hop limit 63) to [VIP]:8000.
    let mut quote = syn[14..].to_vec();
    quote[7] = 63;
    let want = icmp6_err(
        (PORT0_MAC.0, CLIENT_MAC),
        VIP6,
        CLIENT,
        63,
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 },
        &quote,
    );
    assert_eq!(out, want, "translated error, byte for byte");
    icmp6_checksum_ok(&out);

    // The other way: a router on the client's side about the VIP's reply
    // [VIP]:8000 -> client: to the server, about RS:8080 -> client.
    let reply = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        VIP6,
        8000,
        CLIENT,
        40010,
        63,
        false,
        &[0x22; 32],
    );
    let err = icmp6_err(
        (CLIENT_MAC, PORT0_MAC.0),
        ROUTER,
        VIP6,
        64,
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 },
        &reply[14..],
    );
    let (v, out) = r.run(0, &err, 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let sent = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        RS[1],
        8080,
        CLIENT,
        40010,
        63,
        false,
        &[0x22; 32],
    );
    let want = icmp6_err(
        (PORT1_MAC.0, RS_MAC[1]),
        ROUTER,
        RS[1],
        63,
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 },
        &sent[14..],
    );
    assert_eq!(out, want, "inbound translated error, byte for byte");
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 2);
}

#[test]
fn dr_client_side_error_is_relayed_to_the_server() {
    let mut r = Rig::new();
    assert_eq!(
        r.run(0, &from_client(40020, 80, 64, true, &[]), 2_000).0,
        Verdict::Tx(1)
    );
    let reply = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        VIP6,
        80,
        CLIENT,
        40020,
        64,
        false,
        &[0x22; 32],
    );
    let t = etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 };
    let err = icmp6_err((CLIENT_MAC, PORT0_MAC.0), ROUTER, VIP6, 64, t, &reply[14..]);
    let (v, out) = r.run(0, &err, 2_001);
    assert_eq!(v, Verdict::Tx(1), "to the servers' port");
    let want = icmp6_err((PORT1_MAC.0, RS_MAC[0]), ROUTER, VIP6, 63, t, &reply[14..]);
    assert_eq!(out, want, "relayed unchanged but for MACs and hop limit");
    // An error about a flow nobody has: counted, not forwarded.
    let stray = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        VIP6,
        80,
        CLIENT,
        1,
        64,
        false,
        &[],
    );
    let err = icmp6_err((CLIENT_MAC, PORT0_MAC.0), ROUTER, VIP6, 64, t, &stray[14..]);
    assert_eq!(r.run(0, &err, 2_002).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::IcmpUnknownFlow), 1);
}
