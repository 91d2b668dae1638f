//! NAT64's ICMP (issue 13), every output byte for byte against frames
//! etherparse builds: an ICMPv6 error from the client side quoting the
//! VIP's packet becomes the RFC 7915 §5.2 ICMPv4 error to the server from
//! the local address, quoting the server's own packet as it sent it
//! (packet too big 1400 -> fragmentation needed 1380, port unreachable,
//! time exceeded, parameter problem with its pointer moved); untranslatable
//! ones and bad checksums are counted with the frame unchanged. A packet
//! too big once translated is answered as a router would: packet-too-big
//! to the client from the VIP (IPv4 MTU + 20), fragmentation needed to the
//! server from the local address (client MTU - 20), rate-limited by the
//! worker's token bucket (100, then one a millisecond); a server packet
//! with DF clear is a counted drop.
#![cfg(feature = "dpdk")]

mod nat64_common;

use std::net::Ipv6Addr;

use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use etherparse::{
    icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Dscp, Ipv4Header, PacketBuilder,
};
use nat64_common::*;

/// A router on the client side.
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);

/// An ICMPv6 error from `src` to the VIP quoting `quote`.
fn icmp6_error(src: Ipv6Addr, ty: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC.0)
        .ipv6(src.octets(), VIP6.octets(), 64)
        .icmpv6(ty)
        .write(&mut e, quote)
        .unwrap();
    e
}

/// The ICMPv4 error rvs should send the server `rs` (index): from the
/// local address, TTL 63, TOS 0, DF clear, identification `ident`.
fn icmp4_to_server(rs: usize, ident: u16, ty: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 63, IpNumber::ICMP, LADDR.octets(), RS[rs].octets()).unwrap();
    ip.dont_fragment = false;
    ip.identification = ident;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[rs])
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .icmpv4(ty)
        .write(&mut v, quote)
        .unwrap();
    v
}

/// The identification of the IPv4 packet in `frame`.
fn ident(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[18], frame[19]])
}

/// Opens a TCP connection to rs1 through NAT64: its local port and the
/// server's SYN-ACK as the client got it.
fn open_tcp(r: &mut Rig, cport: u16, now_ms: u64) -> (u16, Vec<u8>) {
    let (v, out) = r.run(0, &syn(cport), now_ms);
    assert_eq!(v, Verdict::Tx(1), "{:?}", r.all_drops());
    let (_, lport, dst, _) = tuple4(&out);
    assert_eq!(dst, RS[0]);
    let synack = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        64,
        "SA",
        1460,
        &[],
    );
    let (v, back) = r.run(1, &synack, now_ms + 1);
    assert_eq!(v, Verdict::Tx(0));
    (lport, back)
}

#[test]
fn client_side_icmpv6_errors_become_icmpv4_errors_to_the_server() {
    let mut r = Rig::new("");
    let (lport, synack6) = open_tcp(&mut r, 40000, 2_000);
    // The server's SYN-ACK as it sent it, seen one hop on (TTL 63, the
    // hop limit the client side got) with the MSS the client saw.
    let server_sent = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        63,
        "SA",
        1440,
        &[],
    );

    // Packet too big 1400 from a router: fragmentation needed 1380.
    let e = icmp6_error(
        ROUTER6,
        Icmpv6Type::PacketTooBig { mtu: 1400 },
        &synack6[14..],
    );
    let (v, out) = r.run(0, &e, 2_010);
    assert_eq!(v, Verdict::Tx(1), "to the server: {:?}", r.all_drops());
    let frag_needed = icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1380 };
    let want = icmp4_to_server(
        0,
        ident(&out),
        Icmpv4Type::DestinationUnreachable(frag_needed),
        &server_sent[14..],
    );
    assert_eq!(out, want, "fragmentation needed, byte for byte");
    assert_ne!(ident(&out), 0, "DF clear: an identification");
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 1);

    // Time exceeded (code 0), quoting only the first 8 bytes of TCP.
    let e = icmp6_error(
        ROUTER6,
        Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
        &synack6[14..14 + 48],
    );
    let (v, out) = r.run(0, &e, 2_011);
    assert_eq!(v, Verdict::Tx(1));
    let want = icmp4_to_server(
        0,
        ident(&out),
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &server_sent[14..14 + 28],
    );
    assert_eq!(out, want, "time exceeded, byte for byte");

    // Parameter problem, pointer 7 (hop limit) -> pointer 8 (TTL).
    let pp = icmpv6::ParameterProblemHeader {
        code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
        pointer: 7,
    };
    let e = icmp6_error(ROUTER6, Icmpv6Type::ParameterProblem(pp), &synack6[14..]);
    let (v, out) = r.run(0, &e, 2_012);
    assert_eq!(v, Verdict::Tx(1));
    let want = icmp4_to_server(
        0,
        ident(&out),
        Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::PointerIndicatesError(8)),
        &server_sent[14..],
    );
    assert_eq!(out, want, "parameter problem, byte for byte");
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 3);

    // No ICMPv4 meaning: a pointer into the flow label, destination
    // unreachable code 5, a bad checksum. Counted, frame unchanged.
    let pp = icmpv6::ParameterProblemHeader {
        code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
        pointer: 2,
    };
    let mut bad_sum = icmp6_error(
        ROUTER6,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
        &synack6[14..],
    );
    bad_sum[56] ^= 0x40;
    for (i, e) in [
        icmp6_error(ROUTER6, Icmpv6Type::ParameterProblem(pp), &synack6[14..]),
        icmp6_error(
            ROUTER6,
            Icmpv6Type::DestinationUnreachable(
                icmpv6::DestUnreachableCode::SourceAddressFailedPolicy,
            ),
            &synack6[14..],
        ),
        bad_sum,
    ]
    .into_iter()
    .enumerate()
    {
        let (v, out) = r.run(0, &e, 2_013);
        assert_eq!((v, &out), (Verdict::Drop, &e), "refusal {i}");
        assert_eq!(r.drops(Drop::IcmpUnknownFlow), i as u64 + 1);
    }
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 3);
}

#[test]
fn a_udp_port_unreachable_from_the_client_reaches_the_server() {
    let mut r = Rig::new("");
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC.0)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .udp(5000, 53)
        .write(&mut q, b"query")
        .unwrap();
    let (v, sent) = r.run(0, &q, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    let lport = u16::from_be_bytes([sent[34], sent[35]]);
    let answer = |ttl: u8| {
        let mut a = Vec::new();
        PacketBuilder::ethernet2(RS_MAC[0], PORT1_MAC.0)
            .ipv4(RS[0].octets(), LADDR.octets(), ttl)
            .udp(5353, lport)
            .write(&mut a, b"answer")
            .unwrap();
        a
    };
    let (v, answer6) = r.run(1, &answer(64), 2_001);
    assert_eq!(v, Verdict::Tx(0));
    // The client itself: port unreachable.
    let e = icmp6_error(
        CLIENT,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
        &answer6[14..],
    );
    let (v, out) = r.run(0, &e, 2_002);
    assert_eq!(v, Verdict::Tx(1), "{:?}", r.all_drops());
    let want = icmp4_to_server(
        0,
        ident(&out),
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
        &answer(63)[14..],
    );
    assert_eq!(out, want, "port unreachable quoting the server's datagram");
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 1);
}

/// A client's TCP segment of `len` IP bytes (IPv6).
fn client_segment(cport: u16, len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len - 60];
    tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        (CLIENT, cport),
        (VIP6, 80),
        64,
        "A",
        0,
        &payload,
    )
}

#[test]
fn too_big_for_the_ipv4_side_gets_packet_too_big_from_the_vip_rate_limited() {
    // The servers' link carries 1400.
    let mut r = Rig::new("mtu = 1400");
    let (v, _) = r.run(0, &syn(40000), 2_000);
    assert_eq!(v, Verdict::Tx(1));
    // 1420 bytes of IPv6 are 1400 of IPv4: they fit.
    let (v, out) = r.run(0, &client_segment(40000, 1420), 2_001);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(out.len(), 14 + 1400);
    // 1421 do not: packet too big, MTU 1420, from the VIP, quoting the
    // client's packet (up to the 1280 bytes of an ICMPv6 error).
    let big = client_segment(40000, 1500);
    let (v, out) = r.run(0, &big, 2_002);
    assert_eq!(v, Verdict::Tx(0), "back to the client: {:?}", r.all_drops());
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC.0, CLIENT_MAC)
        .ipv6(VIP6.octets(), CLIENT.octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1420 })
        .write(&mut want, &big[14..14 + 1232])
        .unwrap();
    assert_eq!(out, want, "packet too big, byte for byte");
    let stats = r.shared.clone();
    let stats = &stats.worker_stats[0];
    assert_eq!(stats.icmp_sent.get(), 1);
    assert_eq!(r.drops(Drop::TooBig), 0);

    // The worker's bucket: 100 at once, then one a millisecond.
    for i in 0..100 {
        let (v, _) = r.run(0, &big, 5_000);
        assert_eq!(v, Verdict::Tx(0), "error {i}");
    }
    let (v, out) = r.run(0, &big, 5_000);
    assert_eq!((v, &out), (Verdict::Drop, &big), "over the rate");
    assert_eq!(r.drops(Drop::TooBig), 1);
    assert_eq!(r.run(0, &big, 5_001).0, Verdict::Tx(0));
    assert_eq!(stats.icmp_sent.get(), 102);
    assert_eq!(r.counts(RS[0], 8080)[1], 2, "only what fitted went in");
}

#[test]
fn too_big_for_the_ipv6_side_gets_frag_needed_from_the_local_address() {
    let mut r = Rig::new("");
    let (lport, _) = open_tcp(&mut r, 40000, 2_000);
    // 1480 bytes of IPv4 are 1500 of IPv6: they fit; 1500 do not.
    let answer = |len: usize, df: bool| {
        let mut a = tcp4(
            (RS_MAC[0], PORT1_MAC.0),
            (RS[0], 8080),
            (LADDR, lport),
            64,
            "A",
            0,
            &vec![0xa5; len - 40],
        );
        if !df {
            a[20] &= !0x40;
            a[24..26].copy_from_slice(&[0, 0]);
            let ck = engine::packet::checksum::checksum(&a[14..34]);
            a[24..26].copy_from_slice(&ck.to_be_bytes());
        }
        a
    };
    let (v, out) = r.run(1, &answer(1480, true), 2_010);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(out.len(), 14 + 1500);
    let big = answer(1500, true);
    let (v, out) = r.run(1, &big, 2_011);
    assert_eq!(v, Verdict::Tx(1), "back to the server: {:?}", r.all_drops());
    // As a router answers (TOS 0xC0, TTL 64, DF), from the local address
    // the server sent to, MTU 1500 - 20, quoting its header and 8 bytes.
    let mut ip = Ipv4Header::new(0, 64, IpNumber::ICMP, LADDR.octets(), RS[0].octets()).unwrap();
    ip.dscp = Ipv4Dscp::try_new(0xC0 >> 2).unwrap();
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[0])
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 },
        ))
        .write(&mut want, &big[14..14 + 28])
        .unwrap();
    assert_eq!(out, want, "fragmentation needed, byte for byte");
    assert_eq!(r.shared.worker_stats[0].icmp_sent.get(), 1);
    // DF clear: RFC 7915 would fragment; rvs does not: a counted drop.
    let no_df = answer(1500, false);
    let (v, out) = r.run(1, &no_df, 2_012);
    assert_eq!((v, &out), (Verdict::Drop, &no_df));
    assert_eq!(r.drops(Drop::TooBig), 1);
    assert_eq!(r.shared.worker_stats[0].icmp_sent.get(), 1);
    assert_eq!(
        r.counts(RS[0], 8080)[2],
        2,
        "SYN-ACK and the one that fitted"
    );
}

#[test]
fn an_error_about_an_unknown_flow_is_counted() {
    let mut r = Rig::new("");
    let (_, synack6) = open_tcp(&mut r, 40000, 2_000);
    // The same quote with another client port: no connection.
    let mut q = synack6[14..].to_vec();
    q[42..44].copy_from_slice(&40001u16.to_be_bytes());
    let e = icmp6_error(ROUTER6, Icmpv6Type::PacketTooBig { mtu: 1400 }, &q);
    let (v, out) = r.run(0, &e, 2_010);
    assert_eq!((v, &out), (Verdict::Drop, &e));
    assert_eq!(r.drops(Drop::IcmpUnknownFlow), 1);
}

#[test]
fn a_client_side_error_is_handed_to_the_flows_owner() {
    let mut r = Rig::with_workers("", 2);
    // Whichever worker owns the client's flow opens the connection.
    let (v, out) = r.run_on(0, 0, &syn(40000), 2_000, false);
    let (owner, out) = match v {
        Verdict::Handoff(o) => {
            let (v, out) = r.run_on(o, 0, &syn(40000), 2_000, true);
            assert_eq!(v, Verdict::Tx(1));
            (o, out)
        }
        v => {
            assert_eq!(v, Verdict::Tx(1));
            (0, out)
        }
    };
    let (_, lport, _, _) = tuple4(&out);
    let synack = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        64,
        "SA",
        1460,
        &[],
    );
    // The local port was chosen so that the reply lands on the owner.
    let (v, synack6) = r.run_on(owner, 1, &synack, 2_001, false);
    assert_eq!(v, Verdict::Tx(0));
    // The error arrives at the other worker: handed to the owner, which
    // relays it.
    let e = icmp6_error(
        ROUTER6,
        Icmpv6Type::PacketTooBig { mtu: 1400 },
        &synack6[14..],
    );
    let (v, _) = r.run_on(1 - owner, 0, &e, 2_002, false);
    assert_eq!(v, Verdict::Handoff(owner));
    let (v, out) = r.run_on(owner, 0, &e, 2_002, true);
    assert_eq!(v, Verdict::Tx(1));
    let server_sent = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        63,
        "SA",
        1440,
        &[],
    );
    let frag_needed = icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1380 };
    let want = icmp4_to_server(
        0,
        ident(&out),
        Icmpv4Type::DestinationUnreachable(frag_needed),
        &server_sent[14..],
    );
    assert_eq!(out, want);
    assert_eq!(r.shared.worker_stats[owner].icmp_relayed.get(), 1);
}
