//! Fuzz `parse_ipv6`, the ICMPv6/NDP views and the IPv6 checksum helpers.
//!
//! Input: one mode byte, then the frame. Mode bit 0 repairs the TCP/UDP/
//! ICMPv6 checksum of an accepted frame before the checksum checks, so the
//! "valid stays valid" path runs (a random checksum is almost never right).
//!
//! Checked on every input:
//! * no panic (parse, views, option walk);
//! * accepted frames' offsets lie inside the frame and agree with the views;
//! * a non-first fragment reports no L4 fields;
//! * the incremental update after rewriting the destination address and port
//!   equals a full recomputation.
#![no_main]

use std::net::Ipv6Addr;

use engine::packet::checksum::{self, Delta};
use engine::packet::icmpv6::{check_options, NeighborAdvert, NeighborSolicit};
use engine::packet::ipv6::{self, Ipv6Packet};
use engine::packet::{parse_ipv6, Icmpv6Packet, Ipv6Parsed};
use libfuzzer_sys::fuzz_target;

const NEW_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 1, 0, 0, 0, 0xbeef);

fn check_offsets(frame: &[u8], p: &Ipv6Parsed) {
    let l3 = p.l3_off();
    assert!(l3 == 14 || l3 == 18);
    assert_eq!(p.vlan.is_some(), l3 == 18);
    assert!(l3 + ipv6::HEADER_LEN <= p.l4_off());
    assert!(p.l4_off() <= p.l3_end() && p.l3_end() <= frame.len());
    assert!(usize::from(p.ext_count) <= ipv6::MAX_EXT_HEADERS);
    // The frame binds to its layout, and its views agree with the summary.
    let fr = p.ipv6(frame).expect("the parsed frame binds");
    assert_eq!((fr.src(), fr.dst(), fr.hop_limit()), (p.src, p.dst, p.hop_limit));
    assert_eq!(fr.layout().protocol(), p.protocol);
    assert_eq!(fr.l4_bytes().len(), p.l4_len());
    if let Some(q) = fr.quote() {
        assert!(q.len() >= 48 && q[0] >> 4 == 6 && p.fragment.is_none());
    }
    let ip = Ipv6Packet::new_checked(&frame[l3..]).expect("accepted header re-checks");
    assert_eq!((ip.src(), ip.dst()), (p.src, p.dst));
    if let Some(f) = p.fragment {
        assert!(l3 + 40 + usize::from(f.header_off) + 8 <= p.l4_off());
        if !f.is_first() {
            assert!(!p.has_l4);
        }
    }
    if !p.has_l4 {
        assert_eq!((p.src_port, p.dst_port, p.icmp_type), (0, 0, 0));
    }
}

/// Offset of the checksum field in the L4 header, if it has one we rewrite.
fn checksum_off(p: &Ipv6Parsed) -> Option<usize> {
    if !p.has_l4 || p.is_fragment() {
        return None;
    }
    match p.protocol {
        6 => Some(16),
        17 => Some(6),
        58 => Some(2),
        _ => None,
    }
}

fn rewrite_check(frame: &mut [u8], p: &Ipv6Parsed, repair: bool) {
    let Some(ck) = checksum_off(p) else {
        return;
    };
    let (l4, end) = (p.l4_off(), p.l3_end());
    let ck = l4 + ck;
    if repair {
        frame[ck] = 0;
        frame[ck + 1] = 0;
        let mut c = checksum::ipv6_l4_checksum(p.src, p.dst, p.protocol, &frame[l4..end]);
        if p.protocol == 17 {
            c = checksum::udp_final(c);
        }
        frame[ck..ck + 2].copy_from_slice(&c.to_be_bytes());
    }
    let valid = checksum::ipv6_l4_verify(p.src, p.dst, p.protocol, &frame[l4..end]);
    let old = u16::from_be_bytes([frame[ck], frame[ck + 1]]);
    // Rewrite the destination address and (TCP/UDP) the destination port.
    let mut d = Delta::new().addr6(p.dst, NEW_DST);
    let mut g = frame.to_vec();
    Ipv6Packet::new_unchecked(&mut g[p.l3_off()..]).set_dst(NEW_DST);
    if p.protocol != 58 {
        g[l4 + 2..l4 + 4].copy_from_slice(&8080u16.to_be_bytes());
        d = d.word(p.dst_port, 8080);
    }
    let inc = if p.protocol == 17 {
        d.apply_udp6(old)
    } else {
        d.apply(old)
    };
    g[ck..ck + 2].copy_from_slice(&inc.to_be_bytes());
    if valid {
        assert!(checksum::ipv6_l4_verify(
            p.src,
            NEW_DST,
            p.protocol,
            &g[l4..end]
        ));
        // A valid checksum is rewritten to the full recomputation (one's
        // complement has two zeros; for a valid sum both sides agree).
        let mut z = g[l4..end].to_vec();
        z[ck - l4] = 0;
        z[ck - l4 + 1] = 0;
        let mut full = checksum::ipv6_l4_checksum(p.src, NEW_DST, p.protocol, &z);
        if p.protocol == 17 {
            full = checksum::udp_final(full);
        }
        assert_eq!(inc, full);
    }
    // The rewritten frame parses to the same structure.
    let q = parse_ipv6(&g)
        .expect("rewritten parses")
        .expect("still IPv6");
    assert_eq!(
        (q.l4_off(), q.protocol, q.dst),
        (p.l4_off(), p.protocol, NEW_DST)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, frame)) = data.split_first() else {
        return;
    };
    let mut frame = frame.to_vec();
    let Ok(Some(p)) = parse_ipv6(&frame) else {
        return;
    };
    check_offsets(&frame, &p);
    if p.has_l4 && p.protocol == 58 {
        let msg = &frame[p.l4_off()..p.l3_end()];
        let m = Icmpv6Packet::new_checked(msg).expect("parsed ICMPv6");
        let _ = m.verify_checksum(p.src, p.dst);
        if let Ok(ns) = NeighborSolicit::new_checked(msg) {
            let _ = (ns.target(), ns.source_ll_addr(), ns.options().count());
            assert!(check_options(&msg[24..]).is_ok());
        }
        if let Ok(na) = NeighborAdvert::new_checked(msg) {
            let _ = (na.target(), na.flags(), na.target_ll_addr());
            let total: usize = na.options().map(|(_, o)| o.len()).sum();
            assert_eq!(total, msg.len() - 24, "options tile the message");
        }
    }
    rewrite_check(&mut frame, &p, mode & 1 == 1);
});
