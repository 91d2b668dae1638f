//! DR: only the Ethernet addresses and the TTL change; checked with etherparse.

mod rewrite_common;

use engine::forward::{dr, ForwardError};
use engine::packet::MacAddr;
use etherparse::TransportHeader;
use rewrite_common::*;

fn run(f: &Frame) -> Vec<u8> {
    let mut b = f.build();
    let p = parsed(&b);
    dr(
        &mut p.ipv4(&mut b).unwrap(),
        MacAddr(RS_MAC),
        MacAddr(PORT_MAC),
    )
    .unwrap();
    b
}

#[test]
fn dr_tcp_changes_only_macs_and_ttl() {
    let f = Frame {
        ip_options: vec![0x01, 0x01, 0x01, 0x00],
        payload: b"GET / HTTP/1.1\r\n".to_vec(),
        ..Frame::tcp_syn()
    };
    let out = run(&f);
    let c = parse_and_verify(&out);
    assert_eq!(c.eth.destination, RS_MAC);
    assert_eq!(c.eth.source, PORT_MAC);
    assert_eq!((c.ip.source, c.ip.destination), (CLIENT, VIP));
    assert_eq!(c.ip.time_to_live, 63);
    match &c.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!((t.source_port, t.destination_port), (40000, 80))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.payload, b"GET / HTTP/1.1\r\n");
    assert_eq!(
        out,
        f.clone().with_macs(RS_MAC, PORT_MAC).with_ttl(63).build()
    );
}

#[test]
fn dr_udp_zero_checksum_untouched() {
    let f = Frame {
        l4: L4::Udp {
            sport: 1,
            dport: 53,
            checksum: false,
        },
        ttl: 255,
        ..Frame::udp()
    };
    let out = run(&f);
    let c = parse_and_verify(&out);
    assert_eq!(c.ip.time_to_live, 254);
    match &c.transport {
        Some(TransportHeader::Udp(u)) => assert_eq!(u.checksum, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out,
        f.clone().with_macs(RS_MAC, PORT_MAC).with_ttl(254).build()
    );
}

#[test]
fn dr_refuses_expired_ttl() {
    let f = Frame::udp().with_ttl(1);
    let mut b = f.build();
    let p = parsed(&b);
    assert_eq!(
        dr(
            &mut p.ipv4(&mut b).unwrap(),
            MacAddr(RS_MAC),
            MacAddr(PORT_MAC)
        ),
        Err(ForwardError::TtlExpired)
    );
    assert_eq!(b, f.build());
}
