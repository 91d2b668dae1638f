//! NAT over IPv6 (`forward::nat6_inbound`/`nat6_outbound`, issue 13 stage
//! 3 in part) checked against etherparse: each rewritten frame must equal,
//! byte for byte, the frame etherparse builds from the expected final
//! fields (its checksums computed from scratch, so the incremental update
//! is checked exactly), behind a VLAN tag and behind an extension header
//! too; refused frames are left unchanged.

use std::net::Ipv6Addr;

use engine::forward::{nat6_inbound, nat6_outbound, ForwardError};
use engine::packet::parse_ipv6::parse_ipv6;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice, VlanId};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11);
const PAYLOAD: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

#[derive(Clone, Copy)]
enum L4 {
    Tcp,
    Udp,
}

/// An Ethernet/IPv6/TCP-or-UDP frame built by etherparse.
fn build(
    l4: L4,
    vlan: Option<u16>,
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    hop: u8,
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let mut out = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {
            match l4 {
                L4::Tcp => $ip
                    .tcp(sport, dport, 0x0102_0304, 8192)
                    .ack(0x0a0b_0c0d)
                    .psh()
                    .write(&mut out, PAYLOAD)
                    .unwrap(),
                L4::Udp => $ip.udp(sport, dport).write(&mut out, PAYLOAD).unwrap(),
            }
        };
    }
    match vlan {
        Some(v) => finish!(eth.single_vlan(VlanId::try_new(v).unwrap()).ipv6(
            src.octets(),
            dst.octets(),
            hop
        )),
        None => finish!(eth.ipv6(src.octets(), dst.octets(), hop)),
    }
    out
}

/// `frame` with an 8-byte destination-options header (PadN) between the
/// IPv6 header and L4 (the L4 checksum does not cover it).
fn with_dest_opts(frame: &[u8], l3: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    let nh = f[l3 + 6];
    f[l3 + 6] = 60;
    let plen = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) + 8;
    f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    let at = l3 + 40;
    f.splice(at..at, [nh, 0, 1, 4, 0, 0, 0, 0]);
    f
}

fn inbound(frame: &[u8], rs: Ipv6Addr, port: u16) -> Result<Vec<u8>, ForwardError> {
    let mut b = frame.to_vec();
    let p = parse_ipv6(&b).unwrap().unwrap();
    nat6_inbound(&mut p.ipv6(&mut b[..]).unwrap(), rs, port).map(|()| b)
}

fn outbound(frame: &[u8], vip: Ipv6Addr, port: u16) -> Result<Vec<u8>, ForwardError> {
    let mut b = frame.to_vec();
    let p = parse_ipv6(&b).unwrap().unwrap();
    nat6_outbound(&mut p.ipv6(&mut b[..]).unwrap(), vip, port).map(|()| b)
}

/// etherparse reads the frame back with valid L4 checksum.
fn assert_checksum_valid(frame: &[u8]) {
    let s = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("{:?}", s.net)
    };
    let (src, dst) = (ip.header().source(), ip.header().destination());
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, t.payload())
                .unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tcp_and_udp_both_ways_match_etherparse() {
    for l4 in [L4::Tcp, L4::Udp] {
        for vlan in [None, Some(42)] {
            let l3 = if vlan.is_some() { 18 } else { 14 };
            let req = build(l4, vlan, CLIENT, 40000, VIP, 80, 64);
            let out = inbound(&req, RS, 8080).unwrap();
            assert_eq!(out, build(l4, vlan, CLIENT, 40000, RS, 8080, 63));
            assert_eq!(out[l3 + 7], 63, "hop limit decremented");
            assert_eq!(&out[l3 + 24..l3 + 40], &RS.octets(), "destination");
            assert_eq!(&out[l3 + 42..l3 + 44], &8080u16.to_be_bytes(), "port");
            assert_checksum_valid(&out);

            let reply = build(l4, vlan, RS, 8080, CLIENT, 40000, 64);
            let out = outbound(&reply, VIP, 80).unwrap();
            assert_eq!(out, build(l4, vlan, VIP, 80, CLIENT, 40000, 63));
            assert_eq!(&out[l3 + 8..l3 + 24], &VIP.octets(), "source");
            assert_checksum_valid(&out);
        }
    }
}

#[test]
fn behind_an_extension_header() {
    for l4 in [L4::Tcp, L4::Udp] {
        let req = with_dest_opts(&build(l4, None, CLIENT, 40000, VIP, 80, 64), 14);
        let out = inbound(&req, RS, 8080).unwrap();
        let want = with_dest_opts(&build(l4, None, CLIENT, 40000, RS, 8080, 63), 14);
        assert_eq!(out, want);
        let nh = match l4 {
            L4::Tcp => 6,
            L4::Udp => 17,
        };
        assert_eq!(&out[54..62], &[nh, 0, 1, 4, 0, 0, 0, 0], "the header kept");
    }
}

/// Exact bytes of one rewrite, independent of any builder: the TCP
/// checksum after moving VIP:80 to RS:8080 (RFC 1624 over 9 words).
#[test]
fn literal_bytes_of_one_inbound_rewrite() {
    let req = build(L4::Tcp, None, CLIENT, 40000, VIP, 80, 64);
    let out = inbound(&req, RS, 8080).unwrap();
    // Only the hop limit, destination, destination port and checksum move.
    let changed: Vec<usize> = (0..req.len()).filter(|&i| req[i] != out[i]).collect();
    let allowed = |i: usize| {
        i == 21 || (38..54).contains(&i) || (56..58).contains(&i) || (70..72).contains(&i)
    };
    assert!(
        changed.iter().all(|&i| allowed(i)),
        "changed bytes {changed:?}"
    );
    // The checksum by hand: one's complement sum of the pseudo header and
    // the segment, from scratch.
    let seg = &out[54..];
    let mut sum: u64 = 0;
    for a in [CLIENT, RS] {
        for w in a.segments() {
            sum += u64::from(w);
        }
    }
    sum += seg.len() as u64 + 6;
    for (i, c) in seg.chunks(2).enumerate() {
        if i == 8 {
            continue; // the checksum field itself
        }
        sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(u16::from_be_bytes([out[70], out[71]]), !(sum as u16));
}

/// A later fragment has no ports: only its address and hop limit change.
#[test]
fn a_later_fragment_gets_its_address_only() {
    let base = build(L4::Tcp, None, CLIENT, 40000, VIP, 80, 64);
    // Fragment header (offset 1 x 8 bytes, ident 7) in front of 16 bytes
    // of a datagram's middle.
    let mut req = base[..54].to_vec();
    req[20] = 44;
    req[18..20].copy_from_slice(&24u16.to_be_bytes());
    req.extend_from_slice(&[6, 0, 0, 8, 0, 0, 0, 7]);
    req.extend_from_slice(&[0xAB; 16]);
    let out = inbound(&req, RS, 8080).unwrap();
    let mut want = req.clone();
    want[21] = 63;
    want[38..54].copy_from_slice(&RS.octets());
    assert_eq!(out, want);
}

#[test]
fn refused_frames_are_unchanged() {
    // Hop limit 1: not forwarded.
    let req = build(L4::Tcp, None, CLIENT, 40000, VIP, 80, 1);
    let mut b = req.clone();
    let p = parse_ipv6(&b).unwrap().unwrap();
    assert_eq!(
        nat6_inbound(&mut p.ipv6(&mut b[..]).unwrap(), RS, 8080),
        Err(ForwardError::TtlExpired)
    );
    assert_eq!(b, req);
    // UDP without a checksum is not valid IPv6.
    let mut req = build(L4::Udp, None, CLIENT, 40000, VIP, 53, 64);
    req[60..62].copy_from_slice(&[0, 0]);
    let mut b = req.clone();
    let p = parse_ipv6(&b).unwrap().unwrap();
    assert_eq!(
        nat6_inbound(&mut p.ipv6(&mut b[..]).unwrap(), RS, 53),
        Err(ForwardError::UnsupportedProtocol)
    );
    assert_eq!(b, req);
}
