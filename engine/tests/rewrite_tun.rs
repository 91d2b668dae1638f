//! TUN (IPIP) encapsulation following the data-plane recipe in
//! `forward::tun`, checked with etherparse.

mod rewrite_common;

use engine::forward::{
    decrement_ttl, icmp_frag_needed, set_macs, tun_encap_in_place, tun_fits_mtu, ForwardError,
    ICMP_ERROR_MAX_LEN, TUN_OVERHEAD,
};
use engine::packet::MacAddr;
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, PacketHeaders,
    TransportHeader,
};
use rewrite_common::*;

const IDENT: u16 = 0xBEEF;

/// Steps 1-6 of the recipe on a Vec standing in for the mbuf.
fn encapsulate(f: &Frame) -> Vec<u8> {
    let mut b = f.build();
    let p = parsed(&b);
    decrement_ttl(&mut p.ipv4(&mut b).unwrap()).unwrap();
    // rte_pktmbuf_prepend(m, 20)
    let mut m = vec![0xEE; TUN_OVERHEAD];
    m.extend_from_slice(&b);
    tun_encap_in_place(&mut m, ip4(DIR), ip4(RS), IDENT).unwrap();
    set_macs(&mut m, MacAddr(RS_MAC), MacAddr(PORT_MAC)).unwrap();
    m
}

/// What the encapsulated frame must be, built by etherparse.
fn expected(f: &Frame) -> Vec<u8> {
    let inner = f.clone().with_ttl(f.ttl - 1);
    let inner_ip = inner.ip_bytes();
    let mut outer = Ipv4Header {
        dscp: Ipv4Dscp::try_new(f.dscp).unwrap(),
        ecn: Ipv4Ecn::try_new(f.ecn).unwrap(),
        identification: IDENT,
        dont_fragment: f.df,
        time_to_live: f.ttl - 1,
        protocol: IpNumber::IPV4, // 4 = IP in IP
        source: DIR,
        destination: RS,
        ..Default::default()
    };
    outer.set_payload_len(inner_ip.len()).unwrap();
    outer.header_checksum = outer.calc_header_checksum();
    let mut out = Vec::new();
    Ethernet2Header {
        source: PORT_MAC,
        destination: RS_MAC,
        ether_type: EtherType::IPV4,
    }
    .write(&mut out)
    .unwrap();
    outer.write(&mut out).unwrap();
    out.extend_from_slice(&inner_ip);
    out.resize(out.len() + f.padding, 0);
    out
}

#[test]
fn tun_tcp_with_ip_options() {
    let f = Frame {
        ip_options: vec![0x94, 0x04, 0, 0],
        dscp: 10,
        ecn: 1,
        payload: b"data".to_vec(),
        ..Frame::tcp_syn()
    };
    let out = encapsulate(&f);

    // Outer header, read back by etherparse.
    let c = parse_and_verify(&out);
    assert_eq!(c.eth.destination, RS_MAC);
    assert_eq!(c.eth.source, PORT_MAC);
    assert_eq!(c.ip.protocol, IpNumber(4));
    assert_eq!((c.ip.source, c.ip.destination), (DIR, RS));
    assert_eq!(
        c.ip.time_to_live, 63,
        "outer TTL copied after the inner decrement"
    );
    assert_eq!((c.ip.dscp.value(), c.ip.ecn.value()), (10, 1));
    assert!(c.ip.dont_fragment);
    assert_eq!(c.ip.identification, IDENT);
    assert_eq!(c.ip.header_len(), 20);
    assert_eq!(usize::from(c.ip.total_len), out.len() - 14);

    // Inner packet: addresses and ports untouched, TTL - 1, checksums valid.
    let mut inner_frame = out[..14].to_vec();
    inner_frame.extend_from_slice(&c.payload);
    let inner = parse_and_verify(&inner_frame);
    assert_eq!((inner.ip.source, inner.ip.destination), (CLIENT, VIP));
    assert_eq!(inner.ip.time_to_live, 63);
    assert_eq!(inner.ip.options.as_slice(), &[0x94, 4, 0, 0]);
    match &inner.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!((t.source_port, t.destination_port), (40000, 80))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(inner.payload, b"data");

    assert_eq!(out, expected(&f));
}

#[test]
fn tun_udp_df_clear_with_padding() {
    let f = Frame {
        df: false,
        payload: b"x".to_vec(),
        padding: 5,
        ..Frame::udp()
    };
    let out = encapsulate(&f);
    let c = parse_and_verify(&out);
    assert!(!c.ip.dont_fragment);
    assert_eq!(out, expected(&f));
    // The inner packet parses straight from the outer payload.
    let h = PacketHeaders::from_ip_slice(&c.payload).unwrap();
    assert!(matches!(h.transport, Some(TransportHeader::Udp(_))));
}

#[test]
fn tun_mtu_check_and_frag_needed() {
    let big = Frame {
        payload: vec![0x42; 1480 - 20 - 8],
        df: true,
        ..Frame::udp()
    };
    let b = big.build();
    let p = parsed(&b);
    assert_eq!(p.ip_total_len(), 1480);
    assert!(tun_fits_mtu(p.ip_total_len(), 1500));
    let bigger = Frame {
        payload: vec![0x42; 1481 - 20 - 8],
        ..big
    };
    let b = bigger.build();
    let p = parsed(&b);
    assert!(!tun_fits_mtu(p.ip_total_len(), 1500));
    assert!(p.ipv4(&b[..]).unwrap().dont_frag());
    // Answer with frag-needed advertising the MTU minus the tunnel overhead.
    let mut out = [0u8; ICMP_ERROR_MAX_LEN];
    let n = icmp_frag_needed(
        &p.ipv4(&b[..]).unwrap(),
        ip4(VIP),
        1500 - TUN_OVERHEAD as u16,
        &mut out,
    )
    .unwrap();
    let c = parse_and_verify(&out[..n]);
    assert_eq!(c.ip.destination, CLIENT);
    match &c.transport {
        Some(TransportHeader::Icmpv4(i)) => assert_eq!(
            i.icmp_type,
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1480
                }
            )
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tun_refuses_bad_input_without_writing() {
    let f = Frame::tcp_syn().with_ttl(1);
    let mut b = f.build();
    let p = parsed(&b);
    assert_eq!(
        decrement_ttl(&mut p.ipv4(&mut b).unwrap()),
        Err(ForwardError::TtlExpired)
    );
    // No headroom: the "inner" header would start inside the Ethernet one.
    let before = b.clone();
    assert_eq!(
        tun_encap_in_place(&mut b[..40], ip4(DIR), ip4(RS), 1),
        Err(ForwardError::Mismatch)
    );
    assert_eq!(b, before);
}
