//! NAT rewrites checked against etherparse: every field read back, every
//! checksum recomputed independently, and the whole output compared with the
//! frame etherparse builds from the expected final fields.

mod rewrite_common;

use engine::forward::{nat_inbound, nat_outbound, ttl_expired, ForwardError};
use etherparse::TransportHeader;
use rewrite_common::*;

fn inbound(f: &Frame, rs: [u8; 4], port: u16) -> Vec<u8> {
    let mut b = f.build();
    let p = parsed(&b);
    nat_inbound(&mut p.ipv4(&mut b).unwrap(), ip4(rs), port).unwrap();
    b
}

fn outbound(f: &Frame, vip: [u8; 4], port: u16) -> Vec<u8> {
    let mut b = f.build();
    let p = parsed(&b);
    nat_outbound(&mut p.ipv4(&mut b).unwrap(), ip4(vip), port).unwrap();
    b
}

fn tcp_of(c: &Checked) -> &etherparse::TcpHeader {
    match &c.transport {
        Some(TransportHeader::Tcp(t)) => t,
        other => panic!("not tcp: {other:?}"),
    }
}

fn udp_of(c: &Checked) -> &etherparse::UdpHeader {
    match &c.transport {
        Some(TransportHeader::Udp(u)) => u,
        other => panic!("not udp: {other:?}"),
    }
}

#[test]
fn tcp_syn_inbound_with_ip_and_tcp_options() {
    let f = Frame {
        // Router alert (4 bytes) + NOP NOP NOP EOL: IHL 7.
        ip_options: vec![0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00],
        dscp: 46,
        ecn: 2,
        ..Frame::tcp_syn()
    };
    let out = inbound(&f, RS, 8080);

    let c = parse_and_verify(&out);
    assert_eq!(c.eth.source, CLIENT_MAC);
    assert_eq!(c.eth.destination, PORT_MAC);
    assert_eq!(c.ip.source, CLIENT);
    assert_eq!(c.ip.destination, RS);
    assert_eq!(c.ip.time_to_live, 63);
    assert_eq!((c.ip.dscp.value(), c.ip.ecn.value()), (46, 2));
    assert_eq!(c.ip.identification, 0x1234);
    assert!(c.ip.dont_fragment);
    assert_eq!(c.ip.options.as_slice(), &f.ip_options[..]);
    let t = tcp_of(&c);
    assert_eq!((t.source_port, t.destination_port), (40000, 8080));
    assert_eq!(t.sequence_number, 0x1000_0001);
    assert!(t.syn && !t.ack && !t.fin && !t.rst);
    assert_eq!(t.window_size, 64240);
    assert_eq!(t.options.as_slice(), &[2, 4, 0x05, 0xB4]);
    assert!(c.payload.is_empty());

    let want = f.clone().with_dst(RS, 8080).with_ttl(63).build();
    assert_eq!(out, want);
}

#[test]
fn tcp_synack_outbound_with_payload() {
    let syn = Frame::tcp_syn().with_dst(RS, 8080);
    let reply = syn.reply(b"HTTP/1.0 200 OK\r\n\r\nhello");
    let out = outbound(&reply, VIP, 80);

    let c = parse_and_verify(&out);
    assert_eq!(c.ip.source, VIP);
    assert_eq!(c.ip.destination, CLIENT);
    assert_eq!(c.ip.time_to_live, 63);
    let t = tcp_of(&c);
    assert_eq!((t.source_port, t.destination_port), (80, 40000));
    assert!(t.syn && t.ack);
    assert_eq!(t.acknowledgment_number, 0x1000_0002);
    assert_eq!(c.payload, b"HTTP/1.0 200 OK\r\n\r\nhello");

    assert_eq!(out, reply.clone().with_src(VIP, 80).with_ttl(63).build());
}

#[test]
fn tcp_with_ethernet_padding_keeps_padding_out_of_checksums() {
    // A bare ACK is 54 bytes; pad to the 60-byte Ethernet minimum with junk
    // (non-zero so a checksum that wrongly covered it would show).
    let f = Frame {
        l4: L4::Tcp {
            sport: 40000,
            dport: 80,
            seq: 5,
            ack: 77,
            flags: 0x10,
            window: 502,
            options: vec![],
        },
        padding: 6,
        ..Frame::tcp_syn()
    };
    let mut b = f.build();
    let n = b.len();
    b[n - 6..].copy_from_slice(&[0xA5; 6]);
    let p = parsed(&b);
    assert_eq!(p.l3_end(), n - 6);
    nat_inbound(&mut p.ipv4(&mut b).unwrap(), ip4(RS), 8080).unwrap();
    assert_eq!(&b[n - 6..], &[0xA5; 6]);
    parse_and_verify(&b);
    let mut want = f.with_dst(RS, 8080).with_ttl(63).build();
    want[n - 6..].copy_from_slice(&[0xA5; 6]);
    assert_eq!(b, want);
}

#[test]
fn udp_inbound_with_checksum() {
    let f = Frame::udp();
    let out = inbound(&f, RS, 5300);
    let c = parse_and_verify(&out);
    assert_eq!((c.ip.source, c.ip.destination), (CLIENT, RS));
    assert_eq!(c.ip.time_to_live, 63);
    assert!(!c.ip.dont_fragment);
    let u = udp_of(&c);
    assert_eq!((u.source_port, u.destination_port), (5353, 5300));
    assert_ne!(u.checksum, 0);
    assert_eq!(c.payload, f.payload);
    assert_eq!(out, f.clone().with_dst(RS, 5300).with_ttl(63).build());
}

#[test]
fn udp_outbound_with_checksum_and_ip_options() {
    let f = Frame {
        ip_options: vec![0x01, 0x01, 0x01, 0x00],
        ttl: 2,
        ..Frame::udp().with_dst(RS, 5300).reply(b"answer!")
    };
    let out = outbound(&f, VIP, 53);
    let c = parse_and_verify(&out);
    assert_eq!((c.ip.source, c.ip.destination), (VIP, CLIENT));
    assert_eq!(c.ip.time_to_live, 1);
    assert_eq!(c.ip.options.as_slice(), &[1, 1, 1, 0]);
    let u = udp_of(&c);
    assert_eq!((u.source_port, u.destination_port), (53, 5353));
    assert_eq!(c.payload, b"answer!");
    assert_eq!(out, f.clone().with_src(VIP, 53).with_ttl(1).build());
}

#[test]
fn udp_zero_checksum_stays_zero_both_directions() {
    let f = Frame {
        l4: L4::Udp {
            sport: 5353,
            dport: 53,
            checksum: false,
        },
        ..Frame::udp()
    };
    let out = inbound(&f, RS, 5300);
    let c = parse_and_verify(&out);
    assert_eq!(udp_of(&c).checksum, 0);
    assert_eq!(udp_of(&c).destination_port, 5300);
    assert_eq!(out, f.clone().with_dst(RS, 5300).with_ttl(63).build());

    let r = f.with_dst(RS, 5300).reply(b"zero");
    let out = outbound(&r, VIP, 53);
    let c = parse_and_verify(&out);
    assert_eq!(udp_of(&c).checksum, 0);
    assert_eq!(udp_of(&c).source_port, 53);
    assert_eq!(out, r.clone().with_src(VIP, 53).with_ttl(63).build());
}

#[test]
fn fragments_first_gets_ports_others_only_ip() {
    // First fragment (MF, offset 0): full rewrite.
    let first = Frame {
        mf: true,
        df: false,
        payload: vec![0x5A; 32],
        ..Frame::udp()
    };
    let out = inbound(&first, RS, 5300);
    parse_and_verify(&out);
    assert_eq!(out, first.clone().with_dst(RS, 5300).with_ttl(63).build());

    // Later fragment: no L4 header, only the IP header changes.
    let later = Frame {
        l4: L4::Raw { protocol: 17 },
        frag: 5,
        mf: false,
        payload: b"rest of the datagram".to_vec(),
        ..first.clone()
    };
    let b = later.build();
    let p = parsed(&b);
    assert!(p.fragment && !p.first_fragment && !p.has_l4);
    assert_eq!((p.src_port, p.dst_port), (0, 0));
    let out = inbound(&later, RS, 5300);
    let c = parse_and_verify(&out);
    assert_eq!(c.ip.destination, RS);
    assert_eq!(c.payload, b"rest of the datagram");
    let mut want = later.clone().with_ttl(63);
    want.dst = RS;
    assert_eq!(out, want.build());
}

#[test]
fn ttl_expired_is_never_forwarded() {
    for ttl in [0u8, 1] {
        let f = Frame::tcp_syn().with_ttl(ttl);
        let mut b = f.build();
        let p = parsed(&b);
        assert!(ttl_expired(&p));
        assert_eq!(
            nat_inbound(&mut p.ipv4(&mut b).unwrap(), ip4(RS), 8080),
            Err(ForwardError::TtlExpired)
        );
        assert_eq!(
            nat_outbound(&mut p.ipv4(&mut b).unwrap(), ip4(VIP), 80),
            Err(ForwardError::TtlExpired)
        );
        assert_eq!(b, f.build(), "frame untouched");
    }
    assert!(!ttl_expired(&parsed(&Frame::tcp_syn().with_ttl(2).build())));
}

#[test]
fn full_round_trip_through_the_director() {
    let syn = Frame::tcp_syn();
    let to_rs = inbound(&syn, RS, 8080);
    let seen_by_rs = parse_and_verify(&to_rs);
    assert_eq!(seen_by_rs.ip.destination, RS);

    // The RS answers what it saw.
    let reply = syn.clone().with_dst(RS, 8080).with_ttl(63).reply(b"");
    let to_client = outbound(&reply, VIP, 80);
    let c = parse_and_verify(&to_client);
    assert_eq!((c.ip.source, c.ip.destination), (VIP, CLIENT));
    let t = tcp_of(&c);
    assert_eq!((t.source_port, t.destination_port), (80, 40000));
}

#[test]
fn edge_addresses_and_ports_exercise_carries() {
    let addrs = [
        [0, 0, 0, 0],
        [255, 255, 255, 255],
        [10, 255, 0, 1],
        [128, 0, 255, 255],
    ];
    let ports = [0u16, 1, 0x7FFF, 0xFFFF, 8080];
    for proto_udp in [false, true] {
        let base = if proto_udp {
            Frame::udp()
        } else {
            Frame::tcp_syn()
        };
        for a in addrs {
            for port in ports {
                let out = inbound(&base, a, port);
                parse_and_verify(&out);
                assert_eq!(
                    out,
                    base.clone().with_dst(a, port).with_ttl(63).build(),
                    "{a:?}:{port}"
                );
                let r = base.reply(b"x");
                let out = outbound(&r, a, port);
                parse_and_verify(&out);
                assert_eq!(
                    out,
                    r.clone().with_src(a, port).with_ttl(63).build(),
                    "{a:?}:{port}"
                );
            }
        }
    }
}
