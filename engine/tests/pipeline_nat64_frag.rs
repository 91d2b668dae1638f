//! NAT64 of fragments (issue 13, RFC 7915 §5.1.1 and §4.1), byte for byte
//! against frames etherparse builds: a client's UDP datagram in two IPv6
//! fragments leaves as two IPv4 fragments (identification = the low 16
//! bits of the Fragment header's, offsets and MF copied, DF clear, the
//! first one's ports and checksum rewritten as the whole datagram's), the
//! later fragment held while it comes first; the server's answer in two
//! IPv4 fragments comes back as two IPv6 fragments with a Fragment header
//! (identification = the IPv4 one). A fragmented server datagram without
//! UDP checksum is a counted `fragment` drop; `frags_forwarded` counts
//! every fragment sent.
#![cfg(feature = "dpdk")]

mod nat64_common;

use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder,
};
use nat64_common::*;

const IDENT6: u32 = 0x1234_5678;
const IDENT4: u16 = 0xBEEF;

fn eth(src: [u8; 6], dst: [u8; 6], ty: EtherType) -> Vec<u8> {
    Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: ty,
    }
    .to_bytes()
    .to_vec()
}

/// One IPv6 fragment `data` at byte `offset` of a UDP datagram, with a
/// Fragment header of identification `ident`.
#[allow(clippy::too_many_arguments)]
fn frag6(
    macs: ([u8; 6], [u8; 6]),
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    hop: u8,
    ident: u32,
    offset: usize,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut v = eth(macs.0, macs.1, EtherType::IPV6);
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (8 + data.len()) as u16,
        next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
        hop_limit: hop,
        source: src.octets(),
        destination: dst.octets(),
    };
    ip.write(&mut v).unwrap();
    // RFC 8200 §4.5 by hand: etherparse before 0.20 writes the offset and
    // M bits of a Fragment header in the wrong places (its issue #150).
    v.extend_from_slice(&[17, 0]);
    v.extend_from_slice(&(offset as u16 | u16::from(more)).to_be_bytes());
    v.extend_from_slice(&ident.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// One IPv4 fragment `data` at byte `offset` of a UDP datagram.
#[allow(clippy::too_many_arguments)]
fn frag4(
    macs: ([u8; 6], [u8; 6]),
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    ttl: u8,
    ident: u16,
    offset: usize,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut v = eth(macs.0, macs.1, EtherType::IPV4);
    let mut ip = Ipv4Header::new(
        data.len() as u16,
        ttl,
        IpNumber::UDP,
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    ip.identification = ident;
    ip.dont_fragment = false;
    ip.more_fragments = more;
    ip.fragment_offset = IpFragOffset::try_new((offset / 8) as u16).unwrap();
    ip.write(&mut v).unwrap();
    v.extend_from_slice(data);
    v
}

/// The UDP bytes (header and payload) of a datagram etherparse builds.
fn udp6_bytes(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv6(src.octets(), dst.octets(), 64)
        .udp(ports.0, ports.1)
        .write(&mut v, payload)
        .unwrap();
    v.split_off(54)
}

fn udp4_bytes(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(ports.0, ports.1)
        .write(&mut v, payload)
        .unwrap();
    v.split_off(34)
}

#[test]
fn udp_fragments_are_translated_both_ways() {
    let mut r = Rig::new("");
    let query: Vec<u8> = (0..1600u32).map(|i| (i * 7) as u8).collect();
    let udp6 = udp6_bytes(CLIENT, VIP6, (5000, 53), &query);
    assert_eq!(udp6.len(), 1608);
    let c = (CLIENT_MAC, PORT0_MAC.0);
    let first = frag6(c, CLIENT, VIP6, 64, IDENT6, 0, true, &udp6[..1232]);
    let second = frag6(c, CLIENT, VIP6, 64, IDENT6, 1232, false, &udp6[1232..]);

    // The later fragment first: held until its first fragment comes.
    let (v, out) = r.run(0, &second, 2_000);
    assert_eq!((v, &out), (Verdict::Hold, &second));

    let (v, out1) = r.run(0, &first, 2_001);
    assert_eq!(v, Verdict::Tx(1), "{:?}", r.all_drops());
    let lport = u16::from_be_bytes([out1[34], out1[35]]);
    // What the server must reassemble: the datagram from the local tuple.
    let udp4 = udp4_bytes(LADDR, RS[0], (lport, 5353), &query);
    let s = (PORT1_MAC.0, RS_MAC[0]);
    let want1 = frag4(s, LADDR, RS[0], 63, 0x5678, 0, true, &udp4[..1232]);
    assert_eq!(out1, want1, "first IPv4 fragment, byte for byte");

    // The held fragment, retried now, follows its first.
    let (v, out2) = r.run(0, &second, 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let want2 = frag4(s, LADDR, RS[0], 63, 0x5678, 1232, false, &udp4[1232..]);
    assert_eq!(out2, want2, "second IPv4 fragment, byte for byte");
    let stats = r.shared.clone();
    let stats = &stats.worker_stats[0];
    assert_eq!(stats.frags_forwarded.get(), 2);
    assert_eq!(r.counts(RS[0], 5353), [1, 2, 0]);

    // The server's answer, 1608 UDP bytes in two IPv4 fragments.
    let answer: Vec<u8> = (0..1600u32).map(|i| (i * 13) as u8).collect();
    let udp4b = udp4_bytes(RS[0], LADDR, (5353, lport), &answer);
    let s = (RS_MAC[0], PORT1_MAC.0);
    let first = frag4(s, RS[0], LADDR, 64, IDENT4, 0, true, &udp4b[..1400]);
    let second = frag4(s, RS[0], LADDR, 64, IDENT4, 1400, false, &udp4b[1400..]);
    let (v, out1) = r.run(1, &first, 2_003);
    assert_eq!(v, Verdict::Tx(0), "{:?}", r.all_drops());
    let udp6b = udp6_bytes(VIP6, CLIENT, (53, 5000), &answer);
    let c = (PORT0_MAC.0, CLIENT_MAC);
    let want1 = frag6(
        c,
        VIP6,
        CLIENT,
        63,
        u32::from(IDENT4),
        0,
        true,
        &udp6b[..1400],
    );
    assert_eq!(out1, want1, "first IPv6 fragment, byte for byte");
    let (v, out2) = r.run(1, &second, 2_004);
    assert_eq!(v, Verdict::Tx(0), "{:?}", r.all_drops());
    let want2 = frag6(
        c,
        VIP6,
        CLIENT,
        63,
        u32::from(IDENT4),
        1400,
        false,
        &udp6b[1400..],
    );
    assert_eq!(out2, want2, "second IPv6 fragment, byte for byte");
    assert_eq!(stats.frags_forwarded.get(), 4);
    assert_eq!(r.counts(RS[0], 5353), [1, 2, 2]);
    assert!(r.all_drops().is_empty(), "{:?}", r.all_drops());

    // Without a UDP checksum none can be computed over one fragment.
    let mut no_sum = frag4(s, RS[0], LADDR, 64, IDENT4 + 1, 0, true, &udp4b[..1400]);
    no_sum[40..42].copy_from_slice(&[0, 0]);
    let (v, out) = r.run(1, &no_sum, 2_005);
    assert_eq!((v, &out), (Verdict::Drop, &no_sum));
    assert_eq!(r.drops(Drop::Fragment), 1);
    assert_eq!(stats.frags_forwarded.get(), 4);
}

#[test]
fn a_fragment_too_big_once_translated_is_dropped_counted() {
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
    // 1480 bytes of IPv4 fragment: 1528 of IPv6 with its Fragment header.
    let answer = vec![1u8; 2000];
    let udp4b = udp4_bytes(RS[0], LADDR, (5353, lport), &answer);
    let s = (RS_MAC[0], PORT1_MAC.0);
    let first = frag4(s, RS[0], LADDR, 64, IDENT4, 0, true, &udp4b[..1480]);
    let (v, out) = r.run(1, &first, 2_001);
    assert_eq!((v, &out), (Verdict::Drop, &first));
    assert_eq!(r.drops(Drop::TooBig), 1);
    assert_eq!(
        r.shared.worker_stats[0].icmp_sent.get(),
        0,
        "no DF: no ICMP"
    );
}

/// The e2e's 3000-byte echo (`test_ipv6.py` `nat64_forwarding`): rs1
/// answers "rs1:" + 3000 bytes, a UDP datagram of 3012 bytes whose first
/// fragment's UDP length (3012) is far beyond the fragment. With a route
/// MTU of 1472 to the director its fragments (1468/1468/136 bytes of IP)
/// leave as IPv6 fragments of 1496/1496/164 bytes, byte for byte; with
/// 1500 (1500/1500/72) the first is 1528 once translated, a counted
/// `too_big` drop, never a parse drop.
#[test]
fn the_e2e_3000_byte_answer_in_three_fragments() {
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
    let mut answer = b"rs1:".to_vec();
    answer.extend((0..3000u32).map(|i| ((i * 7 + 3) % 251) as u8));
    let udp4b = udp4_bytes(RS[0], LADDR, (5353, lport), &answer);
    assert_eq!(udp4b.len(), 3012);
    assert_eq!(u16::from_be_bytes([udp4b[4], udp4b[5]]), 3012);
    let udp6b = udp6_bytes(VIP6, CLIENT, (53, 5000), &answer);
    let s = (RS_MAC[0], PORT1_MAC.0);
    let c = (PORT0_MAC.0, CLIENT_MAC);
    let stats = r.shared.clone();
    let stats = &stats.worker_stats[0];

    // Route MTU 1472: 1448 bytes of data per fragment.
    let cuts = [(0, 1448, true), (1448, 2896, true), (2896, 3012, false)];
    for (i, &(from, to, more)) in cuts.iter().enumerate() {
        let f4 = frag4(s, RS[0], LADDR, 64, IDENT4, from, more, &udp4b[from..to]);
        let (v, out) = r.run(1, &f4, 2_001 + i as u64);
        assert_eq!(v, Verdict::Tx(0), "fragment {i}: {:?}", r.all_drops());
        let want = frag6(
            c,
            VIP6,
            CLIENT,
            63,
            u32::from(IDENT4),
            from,
            more,
            &udp6b[from..to],
        );
        assert_eq!(out, want, "IPv6 fragment {i}, byte for byte");
    }
    assert_eq!(stats.frags_forwarded.get(), 3);
    assert!(r.all_drops().is_empty(), "{:?}", r.all_drops());

    // MTU 1500: the first fragment is too big once translated.
    let first = frag4(s, RS[0], LADDR, 64, IDENT4 + 1, 0, true, &udp4b[..1480]);
    let (v, out) = r.run(1, &first, 2_010);
    assert_eq!((v, &out), (Verdict::Drop, &first));
    assert_eq!(r.drops(Drop::TooBig), 1);
    let parse: u64 = stats.parse_drops.iter().map(|c| c.get()).sum();
    assert_eq!(parse, 0, "no parse drop");
}
