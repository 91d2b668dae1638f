//! Fuzz `parse_frame` and every rewrite that runs on what it accepts.
//!
//! Input: one mode byte, then the frame. Mode bit 0 repairs the IPv4 header
//! checksum before parsing, so the fuzzer gets past it to the L4 and ICMP
//! paths (a random 16-bit checksum is otherwise almost never right).
//!
//! Checked on every accepted frame:
//! * offsets reported by `Parsed` lie inside the frame, and it binds to the
//!   frame as the `Ipv4Frame` the rewrites take;
//! * no rewrite panics (each may refuse);
//! * NAT, full-NAT and DR keep a valid TCP/UDP checksum valid, and a valid
//!   IPv4 header checksum valid;
//! * a refused rewrite leaves the frame unchanged.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use engine::forward::{
    decrement_ttl, dr, fnat_rewrite, icmp4_to_icmp6, icmp6_to_icmp4, icmp_error_fnat, icmp_error_nat_inbound,
    icmp_error_nat_outbound, icmp_frag_needed, icmp_time_exceeded, ipv4_frame, nat64_write_v4_frag, nat64_write_v6_frag,
    nat_inbound, nat_outbound, tun_encap_in_place, FragFields, Icmp46, Icmp64, IcmpFnat, To4, To6,
    ICMP4_ERROR_MAX, ICMP_ERROR_MAX_LEN, IPV6_MIN_MTU, NAT64_L4_OFF_V4, NAT64_L4_OFF_V6_FRAG, TUN_OVERHEAD,
};
use engine::packet::parse_fast::parse_fast;
use engine::packet::{
    checksum, parse_frame, parse_frame_full, parse_ipv6, quoted_flow, Icmpv6Packet, IcmpPacket, Ipv4Packet,
    L3Class, MacAddr, Parsed, TcpPacket, UdpPacket,
};
use libfuzzer_sys::fuzz_target;

const A: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// A full-NAT ICMP translation (server side to the client).
const FNAT_ICMP: IcmpFnat = IcmpFnat {
    outer_src: A,
    outer_dst: B,
    quoted_src: (B, 40000),
    quoted_dst: (A, 80),
};
const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
/// NAT64 translations (server side to the client, and back).
const NAT64_ICMP4: Icmp64 = Icmp64 {
    outer_src: V6,
    outer_dst: C6,
    quoted_src: (C6, 40000),
    quoted_dst: (V6, 80),
    hop_limit: 63,
    mtu6: 1500,
};
const NAT64_ICMP6: Icmp46 = Icmp46 {
    outer_src: B,
    outer_dst: A,
    quoted_src: (A, 8080),
    quoted_dst: (B, 1024),
    ttl: 63,
    ident: 7,
    mtu4: 1500,
};

/// NAT64's pure translations on whatever the frame holds: no panic; what
/// they build parses as the packet it claims to be, with valid checksums;
/// a refused fragment write leaves its buffer unchanged.
fn nat64(frame: &[u8]) {
    let fr = FragFields {
        ident: 0x1234_5678,
        offset: u16::from(frame.first().copied().unwrap_or(0) & 0x18),
        more: frame.get(1).is_some_and(|b| b & 1 == 1),
    };
    let payload = frame.get(14..).unwrap_or(&[]);
    // The fragment writers, on the bytes after the Ethernet header as L4.
    let t4 = To4 { src: B, sport: 1024, dst: A, dport: 8080, tos: 0, ttl: 63, ident: 1 };
    let mut b4 = vec![0u8; NAT64_L4_OFF_V4];
    b4.extend_from_slice(payload);
    let before = b4.clone();
    match nat64_write_v4_frag(&mut b4, (C6, V6), frame.get(2).copied().unwrap_or(6), &t4, 1440, fr) {
        Ok(()) => {
            let ip = Ipv4Packet::new_checked(&b4[14..]).expect("a translated IPv4 header");
            assert!(ip.verify_checksum());
            assert_eq!((ip.ident(), ip.frag_offset()), (fr.ident as u16, fr.offset));
        }
        Err(_) => assert_eq!(b4, before),
    }
    let t6 = To6 { src: V6, sport: 80, dst: C6, dport: 40000, tc: 0, hop_limit: 63 };
    let mut b6 = vec![0u8; NAT64_L4_OFF_V6_FRAG];
    b6.extend_from_slice(payload);
    let before = b6.clone();
    match nat64_write_v6_frag(&mut b6, (A, B), frame.get(2).copied().unwrap_or(17), &t6, 1440, fr) {
        Ok(()) => {
            // The Fragment header, as RFC 8200 lays it out.
            let word = u16::from_be_bytes([b6[56], b6[57]]);
            let ident = u32::from_be_bytes([b6[58], b6[59], b6[60], b6[61]]);
            assert_eq!((b6[20], word & 0xFFF8, word & 1 == 1, ident), (44, fr.offset, fr.more, fr.ident));
            if let Ok(Some(q)) = parse_ipv6(&b6) {
                assert_eq!(q.fragment.map(|f| (f.offset, f.more)), Some((fr.offset, fr.more)));
            }
        }
        Err(_) => assert_eq!(b6, before),
    }
    // ICMP errors across families.
    let mut out = [0u8; 14 + IPV6_MIN_MTU];
    if let Ok(p) = parse_frame(frame) {
        if let (L3Class::Ipv4, Some(fr)) = (p.l3, p.ipv4(frame)) {
            if let Ok(n) = icmp4_to_icmp6(&fr, &NAT64_ICMP4, &mut out[14..]) {
                out[12..14].copy_from_slice(&[0x86, 0xDD]);
                let q = parse_ipv6(&out[..14 + n]).expect("our ICMPv6 error parses").expect("IPv6");
                let msg = &out[q.l4_off()..q.l3_end()];
                assert!(Icmpv6Packet::new_unchecked(msg).verify_checksum(q.src, q.dst));
            }
        }
    }
    if let Ok(Some(p)) = parse_ipv6(frame) {
        if let Some(fr) = p.ipv6(frame) {
            let mut out = [0u8; 14 + ICMP4_ERROR_MAX];
            if let Ok(n) = icmp6_to_icmp4(&fr, &NAT64_ICMP6, &mut out[14..]) {
                out[12..14].copy_from_slice(&[0x08, 0x00]);
                let q = parse_frame(&out[..14 + n]).expect("our ICMPv4 error parses");
                assert!(q.is_icmp_error() && ip_valid(&out[..14 + n], &q));
                let msg = &out[usize::from(q.l4_off())..q.l3_end()];
                assert!(IcmpPacket::new_checked(msg).unwrap().verify_checksum());
            }
        }
    }
}

fn fix_ip_checksum(f: &mut [u8]) {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let hl = usize::from(f[14] & 0x0F) * 4;
    if hl < 20 || 14 + hl > f.len() {
        return;
    }
    f[24] = 0;
    f[25] = 0;
    let c = checksum::checksum(&f[14..14 + hl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn check_offsets(frame: &[u8], p: &Parsed) {
    assert!(usize::from(p.l3_off()) <= frame.len());
    if p.l3 == L3Class::Ipv4 {
        assert_eq!(
            usize::from(p.l4_off()),
            usize::from(p.l3_off()) + usize::from(p.ip_header_len())
        );
        assert!(p.ip_header_len() >= 20);
        assert!(usize::from(p.l4_off()) <= p.l3_end() && p.l3_end() <= frame.len());
        if let Some(q) = p.icmp_quoted_off() {
            assert!(usize::from(q) + 28 <= p.l3_end());
            assert!(quoted_flow(frame, p).is_some());
        }
        if !p.has_l4 {
            assert_eq!((p.src_port, p.dst_port), (0, 0));
        }
        // The frame binds to its layout, whose L4 part is what it says.
        let fr = p.ipv4(frame).expect("an IPv4 frame binds to its layout");
        assert_eq!(fr.l4_bytes().len(), p.l4_len());
    }
}

/// L4 checksum validity of an unfragmented TCP/UDP packet, if it has one.
fn l4_valid(frame: &[u8], p: &Parsed) -> Option<bool> {
    if p.l3 != L3Class::Ipv4 || p.fragment || !p.has_l4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[usize::from(p.l3_off())..]).ok()?;
    let l4 = ip.payload();
    match p.protocol {
        6 => Some(
            TcpPacket::new_checked(l4)
                .ok()?
                .verify_checksum(ip.src(), ip.dst()),
        ),
        17 => {
            let u = UdpPacket::new_checked(l4).ok()?;
            (u.checksum() != 0).then(|| u.verify_checksum(ip.src(), ip.dst()))
        }
        _ => None,
    }
}

fn ip_valid(frame: &[u8], p: &Parsed) -> bool {
    Ipv4Packet::new_checked(&frame[usize::from(p.l3_off())..])
        .map(|ip| ip.verify_checksum())
        .unwrap_or(false)
}

/// Runs `f` on a copy; on success the checksums that were valid must still
/// be valid, on failure the copy must be unchanged.
fn rewrite<E>(
    frame: &[u8],
    p: &Parsed,
    keeps_l4: bool,
    f: impl FnOnce(&mut [u8]) -> Result<(), E>,
) {
    let mut copy = frame.to_vec();
    let l4_before = l4_valid(frame, p);
    match f(&mut copy) {
        Ok(()) => {
            let q = parse_frame(&copy).expect("a rewritten frame parses");
            check_offsets(&copy, &q);
            assert!(ip_valid(&copy, &q));
            if keeps_l4 && l4_before == Some(true) {
                assert_eq!(l4_valid(&copy, &q), Some(true));
            }
        }
        Err(_) => assert_eq!(copy, frame),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, frame)) = data.split_first() else {
        return;
    };
    let mut frame = frame.to_vec();
    if mode & 1 == 1 {
        fix_ip_checksum(&mut frame);
    }
    nat64(&frame);
    // The common-case shortcut inside parse_frame gives what the full
    // parser gives (issue 16's fast path may not change a verdict).
    let full = parse_frame_full(&frame);
    if let Some(fast) = parse_fast(&frame) {
        assert_eq!(Ok(fast), full, "parse_fast disagrees with the full parser");
    }
    assert_eq!(parse_frame(&frame), full);
    let Ok(p) = full else {
        return;
    };
    check_offsets(&frame, &p);

    rewrite(&frame, &p, true, |b| ipv4_frame(&p, b).and_then(|mut fr| nat_inbound(&mut fr, A, 8080)));
    rewrite(&frame, &p, true, |b| ipv4_frame(&p, b).and_then(|mut fr| nat_outbound(&mut fr, A, 80)));
    rewrite(&frame, &p, true, |b| ipv4_frame(&p, b).and_then(|mut fr| dr(&mut fr, MAC, MAC)));
    rewrite(&frame, &p, true, |b| ipv4_frame(&p, b).and_then(|mut fr| decrement_ttl(&mut fr)));
    rewrite(&frame, &p, false, |b| ipv4_frame(&p, b).and_then(|mut fr| icmp_error_nat_inbound(&mut fr, A, 1)));
    rewrite(&frame, &p, false, |b| ipv4_frame(&p, b).and_then(|mut fr| icmp_error_nat_outbound(&mut fr, A, 1)));
    rewrite(&frame, &p, true, |b| ipv4_frame(&p, b).and_then(|mut fr| fnat_rewrite(&mut fr, B, 1024, A, 8080)));
    rewrite(&frame, &p, false, |b| ipv4_frame(&p, b).and_then(|mut fr| icmp_error_fnat(&mut fr, &FNAT_ICMP)));

    // ICMP errors the director would originate: must parse as such.
    let mut out = [0u8; ICMP_ERROR_MAX_LEN];
    for n in [
        ipv4_frame(&p, &frame[..]).and_then(|fr| icmp_time_exceeded(&fr, A, &mut out)),
        ipv4_frame(&p, &frame[..]).and_then(|fr| icmp_frag_needed(&fr, A, 1480, &mut out)),
    ]
    .into_iter()
    .flatten()
    {
        let q = parse_frame(&out[..n]).expect("our ICMP error parses");
        assert!(q.is_icmp_error());
        let msg = &out[usize::from(q.l4_off())..q.l3_end()];
        assert!(IcmpPacket::new_checked(msg).unwrap().verify_checksum());
    }

    // TUN on a buffer with headroom (the data plane only encapsulates IPv4).
    if p.l3 != L3Class::Ipv4 {
        return;
    }
    let mut m = vec![0u8; TUN_OVERHEAD];
    m.extend_from_slice(&frame);
    if tun_encap_in_place(&mut m, A, A, 7).is_ok() {
        let q = parse_frame(&m).expect("encapsulated frame parses");
        assert_eq!(q.protocol, 4);
        assert_eq!(&m[usize::from(q.l4_off())..], &frame[14..]);
    }
});
