//! ICMP errors built by the director and ICMP errors translated through NAT,
//! compared with frames etherparse builds and checked with its checksums.

mod rewrite_common;

use engine::forward::{
    icmp_error_nat_inbound, icmp_error_nat_outbound, icmp_frag_needed, icmp_time_exceeded,
    nat_inbound, nat_outbound, ForwardError, ICMP_ERROR_MAX_LEN,
};
use engine::packet::{quoted_flow, QuotedFlow};
use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, IpHeaders, IpNumber, Ipv4Dscp, Ipv4Header, PacketBuilder};
use rewrite_common::*;

/// The director's own address on the client-side port.
const DIR_C: [u8; 4] = [198, 18, 0, 2];

/// An ICMP frame built by etherparse.
fn icmp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: Ipv4Header,
    t: Icmpv4Type,
    data: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .icmpv4(t)
        .write(&mut v, data)
        .unwrap();
    v
}

/// The IPv4 header the director puts on its own ICMP errors.
fn director_ip(dst: [u8; 4]) -> Ipv4Header {
    Ipv4Header {
        dscp: Ipv4Dscp::try_new(0xC0 >> 2).unwrap(),
        identification: 0,
        dont_fragment: true,
        time_to_live: 64,
        protocol: IpNumber::ICMP,
        source: DIR_C,
        destination: dst,
        ..Default::default()
    }
}

fn relayed_ip(src: [u8; 4], dst: [u8; 4], ttl: u8) -> Ipv4Header {
    Ipv4Header {
        identification: 77,
        dont_fragment: false,
        time_to_live: ttl,
        protocol: IpNumber::ICMP,
        source: src,
        destination: dst,
        ..Default::default()
    }
}

#[test]
fn time_exceeded_for_tcp_with_ttl_1() {
    let f = Frame {
        payload: b"0123456789".to_vec(),
        ..Frame::tcp_syn().with_ttl(1)
    };
    let b = f.build();
    let p = parsed(&b);
    let mut out = [0u8; ICMP_ERROR_MAX_LEN];
    let n = icmp_time_exceeded(&p.ipv4(&b[..]).unwrap(), ip4(DIR_C), &mut out).unwrap();
    let out = &out[..n];

    let c = parse_and_verify(out);
    assert_eq!(c.eth.destination, CLIENT_MAC);
    assert_eq!(c.eth.source, PORT_MAC);
    assert_eq!((c.ip.source, c.ip.destination), (DIR_C, CLIENT));
    // Quote: the IP header and the first 8 bytes of TCP.
    assert_eq!(c.payload, &b[14..14 + 20 + 8]);

    let want = icmp_frame(
        PORT_MAC,
        CLIENT_MAC,
        director_ip(CLIENT),
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        &b[14..42],
    );
    assert_eq!(out, &want[..]);
}

#[test]
fn frag_needed_quotes_ip_options() {
    let f = Frame {
        ip_options: vec![0x94, 0x04, 0, 0, 1, 1, 1, 0],
        payload: vec![7; 1400],
        ..Frame::udp()
    };
    let b = f.build();
    let p = parsed(&b);
    let mut out = [0u8; ICMP_ERROR_MAX_LEN];
    let n = icmp_frag_needed(&p.ipv4(&b[..]).unwrap(), ip4(DIR_C), 1280, &mut out).unwrap();
    let c = parse_and_verify(&out[..n]);
    assert_eq!(c.payload.len(), 28 + 8);
    let want = icmp_frame(
        PORT_MAC,
        CLIENT_MAC,
        director_ip(CLIENT),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1280,
        }),
        &b[14..14 + 36],
    );
    assert_eq!(&out[..n], &want[..]);
}

#[test]
fn no_error_about_an_error() {
    let quoted = Frame::udp().ip_bytes();
    let err = icmp_frame(
        GW_MAC,
        PORT_MAC,
        relayed_ip(ROUTER, VIP, 1),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &quoted[..28],
    );
    let p = parsed(&err);
    let mut out = [0u8; ICMP_ERROR_MAX_LEN];
    assert_eq!(
        icmp_time_exceeded(&p.ipv4(&err[..]).unwrap(), ip4(DIR_C), &mut out),
        Err(ForwardError::IcmpSuppressed)
    );
}

/// A router on the client's path reports "fragmentation needed" about the
/// reply we NATed (VIP:80 -> client); the real server must get an error
/// about the packet *it* sent (RS:8080 -> client).
#[test]
fn inbound_frag_needed_about_tcp_reply() {
    let rs_reply = Frame::tcp_syn()
        .with_dst(RS, 8080)
        .reply(b"a large response")
        .with_ttl(64);
    // What left the director towards the client.
    let mut sent = rs_reply.build();
    let p = parsed(&sent);
    nat_outbound(&mut p.ipv4(&mut sent).unwrap(), ip4(VIP), 80).unwrap();
    let quote = &sent[14..14 + 28];
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    let mut err = icmp_frame(
        GW_MAC,
        PORT_MAC,
        relayed_ip(ROUTER, VIP, 60),
        frag.clone(),
        quote,
    );

    let p = parsed(&err);
    assert_eq!(
        quoted_flow(&err, &p),
        Some(QuotedFlow {
            protocol: 6,
            src: ip4(VIP),
            dst: ip4(CLIENT),
            src_port: 80,
            dst_port: 40000
        })
    );
    icmp_error_nat_inbound(&mut p.ipv4(&mut err).unwrap(), ip4(RS), 8080).unwrap();

    let c = parse_and_verify(&err);
    assert_eq!((c.ip.source, c.ip.destination), (ROUTER, RS));
    assert_eq!(c.ip.time_to_live, 59);
    let inner = Ipv4Header::from_slice(&c.payload).unwrap().0;
    assert_eq!(
        inner.header_checksum,
        inner.calc_header_checksum(),
        "quoted IP checksum"
    );
    assert_eq!((inner.source, inner.destination), (RS, CLIENT));
    assert_eq!(
        &c.payload[20..24],
        &[0x1F, 0x90, 0x9C, 0x40],
        "ports 8080 -> 40000"
    );

    // Expected: the error quoting what the RS sent (as it left the director:
    // TTL 63).
    let want_quote = rs_reply.clone().with_ttl(63).ip_bytes();
    let want = icmp_frame(
        GW_MAC,
        PORT_MAC,
        relayed_ip(ROUTER, RS, 59),
        frag,
        &want_quote[..28],
    );
    assert_eq!(err, want);
}

/// The real server answers "port unreachable" about a UDP datagram we NATed
/// to it; the client must get an error from the VIP about the datagram it
/// sent. The whole datagram is quoted, so the quoted UDP checksum must be
/// valid too.
#[test]
fn outbound_port_unreachable_about_udp_full_quote() {
    let client_dgram = Frame::udp();
    let mut to_rs = client_dgram.build();
    let p = parsed(&to_rs);
    nat_inbound(&mut p.ipv4(&mut to_rs).unwrap(), ip4(RS), 5300).unwrap();
    let quote = to_rs[14..].to_vec();
    let unreach = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut err = icmp_frame(
        RS_MAC,
        PORT_MAC,
        relayed_ip(RS, CLIENT, 64),
        unreach.clone(),
        &quote,
    );

    let p = parsed(&err);
    icmp_error_nat_outbound(&mut p.ipv4(&mut err).unwrap(), ip4(VIP), 53).unwrap();

    let c = parse_and_verify(&err);
    assert_eq!((c.ip.source, c.ip.destination), (VIP, CLIENT));
    assert_eq!(c.ip.time_to_live, 63);
    // The quote is a complete datagram: verify it like a frame.
    let mut inner_frame = err[..14].to_vec();
    inner_frame.extend_from_slice(&c.payload);
    let inner = parse_and_verify(&inner_frame);
    assert_eq!((inner.ip.source, inner.ip.destination), (CLIENT, VIP));
    assert_eq!(inner.payload, client_dgram.payload);

    let want_quote = client_dgram.clone().with_ttl(63).ip_bytes();
    let want = icmp_frame(
        RS_MAC,
        PORT_MAC,
        relayed_ip(VIP, CLIENT, 63),
        unreach,
        &want_quote,
    );
    assert_eq!(err, want);
}

/// Same, TCP, with the full TCP header quoted (its checksum changes too).
#[test]
fn outbound_unreachable_about_tcp_syn_full_header() {
    let syn = Frame::tcp_syn();
    let mut to_rs = syn.build();
    let p = parsed(&to_rs);
    nat_inbound(&mut p.ipv4(&mut to_rs).unwrap(), ip4(RS), 8080).unwrap();
    let quote = to_rs[14..].to_vec(); // 20 + 24 bytes
    let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host);
    let mut err = icmp_frame(
        RS_MAC,
        PORT_MAC,
        relayed_ip(RS, CLIENT, 30),
        t.clone(),
        &quote,
    );
    let p = parsed(&err);
    icmp_error_nat_outbound(&mut p.ipv4(&mut err).unwrap(), ip4(VIP), 80).unwrap();

    let c = parse_and_verify(&err);
    let mut inner_frame = err[..14].to_vec();
    inner_frame.extend_from_slice(&c.payload);
    parse_and_verify(&inner_frame);

    let want_quote = syn.clone().with_ttl(63).ip_bytes();
    let want = icmp_frame(
        RS_MAC,
        PORT_MAC,
        relayed_ip(VIP, CLIENT, 29),
        t,
        &want_quote,
    );
    assert_eq!(err, want);
}

#[test]
fn translation_refuses_non_errors_and_expired_ttl() {
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    let p = parsed(&echo);
    assert_eq!(
        icmp_error_nat_inbound(&mut p.ipv4(&mut echo.clone()).unwrap(), ip4(RS), 1),
        Err(ForwardError::NoQuote)
    );
    let quoted = Frame::udp().ip_bytes();
    let err = icmp_frame(
        GW_MAC,
        PORT_MAC,
        relayed_ip(ROUTER, VIP, 1),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &quoted[..28],
    );
    let p = parsed(&err);
    let mut copy = err.clone();
    assert_eq!(
        icmp_error_nat_inbound(&mut p.ipv4(&mut copy).unwrap(), ip4(RS), 1),
        Err(ForwardError::TtlExpired)
    );
    assert_eq!(copy, err);
}
