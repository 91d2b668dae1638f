//! NAT64 through the worker pipeline (issue 13): an IPv6 client's SYN to
//! `[VIP]:80` leaves as IPv4 from the servers' port address and a local
//! port of the worker's full-NAT pool, the server's SYN-ACK to that local
//! tuple comes back as IPv6 from the VIP; both checked byte for byte
//! against frames etherparse builds from scratch (checksums computed over
//! the whole segment, ours adjusted incrementally across the pseudo-header
//! change), MSS clamped to 1440 both ways. UDP: DF clear and the
//! identification on a small datagram, a server's datagram without a
//! checksum gets one. rr over three IPv4 servers; the local port pool is
//! IPv4 full-NAT's (exhaustion shared and counted, a port back after
//! expiry); an ICMPv4 port unreachable and a fragmentation needed become
//! an ICMPv6 destination unreachable (port) and a packet too big (MTU +
//! 20) quoting the client's own packet.
#![cfg(feature = "dpdk")]

mod nat64_common;

use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use etherparse::{
    icmpv4::DestUnreachableHeader, icmpv6::DestUnreachableCode, IpNumber, Ipv4Header, NetSlice,
    PacketBuilder, SlicedPacket, TransportSlice,
};
use nat64_common::*;

#[test]
fn both_directions_are_translated_byte_for_byte() {
    let mut r = Rig::new("");
    let (v, out) = r.run(0, &syn(40000), 2_000);
    assert_eq!(v, Verdict::Tx(1), "to the servers' port");
    let (_, lport, _, _) = tuple4(&out);
    // The first port of the default range this worker owns.
    assert!((1024..=65535).contains(&lport));
    // TTL from the hop limit less one, TOS from the traffic class, DF, no
    // options; source the servers' port address and a local port; MSS
    // 1460 clamped to the client side's 1500 - 60.
    let want = tcp4(
        (PORT1_MAC.0, RS_MAC[0]),
        (LADDR, lport),
        (RS[0], 8080),
        63,
        "S",
        1440,
        &[],
    );
    assert_eq!(out, want, "inbound SYN as IPv4, byte for byte");

    // The server's SYN-ACK to the local tuple: IPv6 from the VIP.
    let synack = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        64,
        "SA",
        1460,
        &[],
    );
    let (v, out) = r.run(1, &synack, 2_001);
    assert_eq!(v, Verdict::Tx(0), "to the client's port");
    let want = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        (VIP6, 80),
        (CLIENT, 40000),
        63,
        "SA",
        1440,
        &[],
    );
    assert_eq!(out, want, "SYN-ACK as IPv6, byte for byte");
    let s = SlicedPacket::from_ethernet(&out).unwrap();
    let (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Tcp(t))) = (s.net, s.transport) else {
        panic!("IPv6 TCP")
    };
    let h = ip.header();
    assert_eq!(
        t.to_header()
            .calc_checksum_ipv6_raw(h.source(), h.destination(), t.payload())
            .unwrap(),
        t.checksum()
    );

    // Data both ways follows the connection.
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let data = tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        (CLIENT, 40000),
        (VIP6, 80),
        9,
        "A",
        0,
        payload,
    );
    let (v, out) = r.run(0, &data, 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp4(
        (PORT1_MAC.0, RS_MAC[0]),
        (LADDR, lport),
        (RS[0], 8080),
        8,
        "A",
        0,
        payload,
    );
    assert_eq!(out, want, "established inbound, byte for byte");
    let answer = tcp4(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 8080),
        (LADDR, lport),
        64,
        "A",
        0,
        b"HTTP/1.0 200 OK\r\n\r\nhello",
    );
    let (v, out) = r.run(1, &answer, 2_003);
    assert_eq!(v, Verdict::Tx(0));
    let want = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        (VIP6, 80),
        (CLIENT, 40000),
        63,
        "A",
        0,
        b"HTTP/1.0 200 OK\r\n\r\nhello",
    );
    assert_eq!(out, want, "established reply, byte for byte");

    assert_eq!(r.counts(RS[0], 8080), [1, 2, 2]);
    assert_eq!(r.w.conns6_len(), 1, "the connection is an IPv6 one");
    assert_eq!(r.w.conns.len(), 0, "not in the IPv4 table");
    assert_eq!(r.shared.worker_stats[0].conns_created.get(), 1);
}

#[test]
fn rr_over_three_ipv4_servers_each_with_its_own_local_port() {
    let mut r = Rig::new("");
    let mut got = Vec::new();
    let mut lports = Vec::new();
    for i in 0..6u16 {
        let (v, out) = r.run(0, &syn(41000 + i), 2_000);
        assert_eq!(v, Verdict::Tx(1), "SYN {i}: {:?}", r.all_drops());
        let (src, lport, dst, dport) = tuple4(&out);
        assert_eq!((src, dport), (LADDR, 8080));
        got.push(RS.iter().position(|&a| a == dst).expect("a real server"));
        lports.push(lport);
    }
    assert_eq!(got, [0, 1, 2, 0, 1, 2], "rr");
    let mut u = lports.clone();
    u.sort_unstable();
    u.dedup();
    assert_eq!(u.len(), 6, "six local ports: {lports:?}");
    for s in RS {
        assert_eq!(r.counts(s, 8080)[0], 2);
    }
    assert_eq!(r.w.conns6_len(), 6);
}

#[test]
fn the_local_port_pool_is_ipv4_fnats_exhaustion_is_counted_and_expiry_frees() {
    let mut r = Rig::new("snat_ports = \"2000-2003\"");
    // Two IPv4 full-NAT connections and two NAT64 ones take the 4 ports.
    let mut lports = Vec::new();
    for cport in [50000u16, 50001] {
        let f = tcp4(
            (CLIENT_MAC, PORT0_MAC.0),
            (CLIENT4, cport),
            (VIP4, 80),
            64,
            "S",
            0,
            &[],
        );
        let (v, out) = r.run(0, &f, 100);
        assert_eq!(v, Verdict::Tx(1), "{:?}", r.all_drops());
        lports.push(tuple4(&out).1);
    }
    for cport in [40000u16, 40001] {
        let (v, out) = r.run(0, &syn(cport), 100);
        assert_eq!(v, Verdict::Tx(1));
        lports.push(tuple4(&out).1);
    }
    lports.sort_unstable();
    assert_eq!(lports, [2000, 2001, 2002, 2003], "one pool for both");
    // The fifth of either kind is refused and counted.
    assert_eq!(r.run(0, &syn(40002), 200).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::SnatExhausted), 1);
    assert_eq!(r.w.conns6_len(), 2);
    // SYN_RECV lasts 5 s: once reaped, the NAT64 ports are back.
    let snap = r.shared.snapshot.load_full();
    r.w.housekeeping(&snap, 5_200, 1 << 13);
    assert_eq!(r.w.conns6_len(), 0);
    assert_eq!(r.w.conns.len(), 0);
    let (v, out) = r.run(0, &syn(40003), 5_300);
    assert_eq!(v, Verdict::Tx(1));
    assert!((2000..=2003).contains(&tuple4(&out).1));
    assert_eq!(r.drops(Drop::SnatExhausted), 1);
}

#[test]
fn udp_small_datagram_gets_df_clear_and_a_missing_checksum_is_computed() {
    let mut r = Rig::new("");
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC.0)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .udp(5000, 53)
        .write(&mut q, b"query")
        .unwrap();
    let (v, out) = r.run(0, &q, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    let s = SlicedPacket::from_ethernet(&out).unwrap();
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) = (s.net, s.transport) else {
        panic!("IPv4 UDP")
    };
    let h = ip.header().to_header();
    let lport = u.source_port();
    let mut ip4 = Ipv4Header::new(0, 63, IpNumber::UDP, LADDR.octets(), RS[0].octets()).unwrap();
    ip4.dont_fragment = false;
    ip4.identification = 1;
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[0])
        .ip(etherparse::IpHeaders::Ipv4(ip4, Default::default()))
        .udp(lport, 5353)
        .write(&mut want, b"query")
        .unwrap();
    assert_eq!(out, want, "UDP as IPv4, byte for byte ({h:?})");

    // The server answers without a UDP checksum (legal over IPv4).
    let mut a = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[0], PORT1_MAC.0)
        .ipv4(RS[0].octets(), LADDR.octets(), 64)
        .udp(5353, lport)
        .write(&mut a, b"answer")
        .unwrap();
    let ck = 14 + 20 + 6;
    a[ck] = 0;
    a[ck + 1] = 0;
    let (v, out) = r.run(1, &a, 2_001);
    assert_eq!(v, Verdict::Tx(0));
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC.0, CLIENT_MAC)
        .ipv6(VIP6.octets(), CLIENT.octets(), 63)
        .udp(53, 5000)
        .write(&mut want, b"answer")
        .unwrap();
    assert_eq!(out, want, "UDP as IPv6 with its checksum computed");
}

#[test]
fn icmpv4_errors_become_icmpv6_errors_quoting_the_clients_packet() {
    let mut r = Rig::new("");
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC.0)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .udp(5000, 53)
        .write(&mut q, b"query")
        .unwrap();
    let (v, sent) = r.run(0, &q, 2_000);
    assert_eq!(v, Verdict::Tx(1));
    // The server's port unreachable, quoting the whole datagram it got.
    let quoted = &sent[14..];
    let mut e = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[0], PORT1_MAC.0)
        .ipv4(RS[0].octets(), LADDR.octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::Port,
        ))
        .write(&mut e, quoted)
        .unwrap();
    let (v, out) = r.run(1, &e, 2_001);
    assert_eq!(v, Verdict::Tx(0), "to the client");
    // What the client sent, as the server received it (hop limit 63).
    let mut q63 = q[14..].to_vec();
    q63[7] = 63;
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC.0, CLIENT_MAC)
        .ipv6(VIP6.octets(), CLIENT.octets(), 63)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            DestUnreachableCode::Port,
        ))
        .write(&mut want, &q63)
        .unwrap();
    assert_eq!(out, want, "ICMPv6 port unreachable, byte for byte");
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 1);

    // Fragmentation needed (MTU 1400) for a TCP segment: packet too big,
    // MTU 1420, quoting the first bytes of the client's segment.
    let (v, sent) = r.run(0, &syn(40000), 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let mut e = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[1], PORT1_MAC.0)
        .ipv4(RS[1].octets(), LADDR.octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut e, &sent[14..14 + 28])
        .unwrap();
    let (v, out) = r.run(1, &e, 2_003);
    assert_eq!(v, Verdict::Tx(0));
    // The quote: the client's IPv6 header (hop limit 63) and the first 8
    // bytes of its TCP header, as the router quoted them.
    let mut q6 = syn(40000)[14..14 + 48].to_vec();
    q6[7] = 63;
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC.0, CLIENT_MAC)
        .ipv6(VIP6.octets(), CLIENT.octets(), 63)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1420 })
        .write(&mut want, &q6)
        .unwrap();
    assert_eq!(out, want, "ICMPv6 packet too big, byte for byte");
    let s = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = s.transport else {
        panic!("ICMPv6")
    };
    let Some(NetSlice::Ipv6(ip)) = s.net else {
        panic!("IPv6")
    };
    assert_eq!(
        i.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1420 }
    );
    assert_eq!(
        i.header()
            .icmp_type
            .calc_checksum(ip.header().source(), ip.header().destination(), i.payload())
            .unwrap(),
        i.checksum(),
        "ICMPv6 checksum"
    );
    assert_eq!(r.shared.worker_stats[0].icmp_relayed.get(), 2);
    // An error type with no ICMPv6 match: counted, not sent.
    let mut e = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[1], PORT1_MAC.0)
        .ipv4(RS[1].octets(), LADDR.octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::HostPrecedenceViolation,
        ))
        .write(&mut e, &sent[14..14 + 28])
        .unwrap();
    assert_eq!(r.run(1, &e, 2_004).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::IcmpUnknownFlow), 1);
}

/// Persistence (`persistence_prefix = 64`, 2 s) on the rr service over
/// three IPv4 servers: two clients of one /64 land on one server (the
/// translated SYNs checked byte for byte), a client of another /64 gets
/// rr's next pick; the template is held by its connections and goes once
/// they have ended and its timeout has passed, when rr goes on.
#[test]
fn persistence_sends_one_prefix_to_one_ipv4_server_until_the_template_goes() {
    use engine::dataplane::snapshot::fold6;
    use engine::packet::ethernet::MacAddr;
    use std::net::Ipv6Addr;
    let text = cfg("").replacen(
        "scheduler = \"rr\"\n",
        "scheduler = \"rr\"\npersistence_timeout = 2\npersistence_prefix = 64\n",
        1,
    );
    let mut r = Rig::with_config(&text, 1);
    let snap = r.shared.snapshot.load_full();
    let svc = &snap.services64[0];
    assert_eq!(
        (svc.port, svc.persistence_ms, svc.persistence_prefix),
        (80, 2_000, 64)
    );
    let sid = u32::from(svc.id);
    drop(snap);
    let a2 = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xaaaa, 0, 0, 0x20);
    let b = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x10);
    let syn_from = |client: Ipv6Addr, cport: u16| {
        tcp6(
            (CLIENT_MAC, PORT0_MAC.0),
            (client, cport),
            (VIP6, 80),
            64,
            "S",
            1460,
            &[],
        )
    };
    // The translated SYN to server `rs`, byte for byte.
    let expect = |r: &mut Rig, frame: &[u8], rs: usize, now: u64| {
        let (v, out) = r.run(0, frame, now);
        assert_eq!(v, Verdict::Tx(1), "{:?}", r.all_drops());
        let (_, lport, _, _) = tuple4(&out);
        let want = tcp4(
            (PORT1_MAC.0, RS_MAC[rs]),
            (LADDR, lport),
            (RS[rs], 8080),
            63,
            "S",
            1440,
            &[],
        );
        assert_eq!(out, want, "SYN to server {rs}, byte for byte");
    };
    expect(&mut r, &syn(40000), 0, 2_000);
    expect(&mut r, &syn_from(a2, 40001), 0, 2_001);
    expect(&mut r, &syn_from(b, 40002), 1, 2_002);
    expect(&mut r, &syn_from(a2, 40003), 0, 2_003);
    let net_a = fold6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0));
    let net_b = fold6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0));
    assert_eq!(r.shared.persist.holds(sid, net_a, 2_004), 3);
    assert_eq!(r.shared.persist.holds(sid, net_b, 2_004), 1);
    assert_eq!(r.shared.persist.templates(2_004).len(), 2);
    assert_eq!(r.counts(RS[0], 8080)[0], 3);
    assert_eq!(r.counts(RS[1], 8080)[0], 1);
    assert_eq!(r.counts(RS[2], 8080)[0], 0);
    // Held, the templates outlive their 2 s while the connections live
    // (5 s SYN_RECV).
    expect(&mut r, &syn_from(a2, 40004), 0, 4_500);
    // Every connection gone (SYN_RECV reaped), every hold is given back.
    let snap = r.shared.snapshot.load_full();
    for _ in 0..64 {
        r.w.housekeeping(&snap, 100_000, 1 << 12);
    }
    assert_eq!(r.w.conns6_len(), 0);
    assert_eq!(r.shared.persist.held_entries(), 0, "holds given back");
    // ...and the templates run out: rr goes on to the third server.
    assert!(r.shared.persist.templates(300_000).is_empty());
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        // the servers' ARP entries, as the rig made them, renewed
        let _ = r.shared.neigh.resolve(*ip, 299_000);
        r.shared.neigh.learn_reply(*ip, MacAddr(mac), 299_000);
    }
    expect(&mut r, &syn(40005), 2, 300_000);
    expect(&mut r, &syn_from(a2, 40006), 2, 300_001);
    expect(&mut r, &syn_from(b, 40007), 0, 300_002);
}
