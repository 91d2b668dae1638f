//! Property tests: the parser never panics and keeps its offsets inside the
//! frame; the rewrites never panic on anything the parser accepts; NAT and DR
//! keep valid checksums valid (and produce exactly the frame etherparse
//! builds); RFC 1624 updates agree with full recomputation.

mod rewrite_common;

use engine::forward::{
    decrement_ttl, dr, fnat_rewrite, icmp_error_nat_inbound, icmp_error_nat_outbound,
    icmp_frag_needed, icmp_time_exceeded, nat_inbound, nat_outbound, set_macs, tun_encap_in_place,
    ICMP_ERROR_MAX_LEN, TUN_OVERHEAD,
};
use engine::packet::parse_fast::parse_fast;
use engine::packet::{
    checksum, parse_frame, parse_frame_full, quoted_flow, L3Class, L4Kind, MacAddr, Parsed,
};
use proptest::prelude::*;
use rewrite_common::*;

/// Offsets a successful parse reports must lie inside the frame.
fn assert_offsets_inside(frame: &[u8], p: &Parsed) {
    let len = frame.len();
    assert!(usize::from(p.l3_off()) <= len);
    match p.l3 {
        L3Class::Ipv4 => {
            assert!(usize::from(p.l3_off()) + 20 <= usize::from(p.l4_off()));
            assert_eq!(
                usize::from(p.l4_off()) - usize::from(p.l3_off()),
                usize::from(p.ip_header_len())
            );
            assert!(usize::from(p.l4_off()) <= p.l3_end());
            assert!(p.l3_end() <= len);
            assert!(p.ipv4(frame).is_some());
            if p.has_l4 {
                let (need, kind) = match p.protocol {
                    6 => (20, L4Kind::Tcp),
                    17 => (8, L4Kind::Udp),
                    1 => (8, L4Kind::Icmp),
                    other => panic!("has_l4 for protocol {other}"),
                };
                assert_eq!(p.layout().l4(), kind);
                assert!(usize::from(p.l4_off()) + need <= p.l3_end());
            } else {
                assert_eq!((p.src_port, p.dst_port), (0, 0));
                let kind = if p.first_fragment {
                    L4Kind::Other
                } else {
                    L4Kind::Later
                };
                assert_eq!(p.layout().l4(), kind);
            }
            if let Some(q) = p.icmp_quoted_off() {
                assert_eq!(usize::from(q), usize::from(p.l4_off()) + 8);
                assert!(usize::from(q) + 28 <= p.l3_end());
                assert!(quoted_flow(frame, p).is_some());
            }
        }
        L3Class::Arp => assert!(usize::from(p.l3_off()) + 28 <= len),
        _ => {}
    }
}

/// The shortcut and the full parser agree: whenever `parse_fast` accepts a
/// frame, the full parser gives the same summary; and `parse_frame` (which
/// takes the shortcut) always equals the full parser.
fn assert_parsers_agree(frame: &[u8]) {
    let full = parse_frame_full(frame);
    if let Some(p) = parse_fast(frame) {
        assert_eq!(Ok(p), full, "parse_fast disagrees on {frame:02x?}");
    }
    assert_eq!(parse_frame(frame), full);
}

/// Runs every rewrite on a copy; each may refuse, none may panic.
fn run_all_rewrites(frame: &[u8], p: &Parsed) {
    let a = std::net::Ipv4Addr::new(10, 0, 0, 1);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let _ = set_macs(&mut frame.to_vec(), mac, mac);
    if let Some(fr) = p.ipv4(frame) {
        let mut out = [0u8; ICMP_ERROR_MAX_LEN];
        let _ = icmp_time_exceeded(&fr, a, &mut out);
        let _ = icmp_frag_needed(&fr, a, 1480, &mut out);
        let mut g = frame.to_vec();
        let mut fr = p.ipv4(&mut g).expect("binds as before");
        let _ = nat_inbound(&mut fr, a, 8080);
        let _ = nat_outbound(&mut fr, a, 80);
        let _ = dr(&mut fr, mac, mac);
        let _ = decrement_ttl(&mut fr);
        let _ = icmp_error_nat_inbound(&mut fr, a, 1);
        let _ = icmp_error_nat_outbound(&mut fr, a, 1);
        let _ = fnat_rewrite(&mut fr, a, 1024, a, 8080);
    }
    let mut m = vec![0u8; TUN_OVERHEAD];
    m.extend_from_slice(frame);
    let _ = tun_encap_in_place(&mut m, a, a, 1);
}

fn fix_ip_checksum(f: &mut [u8]) {
    if f.len() < 34 {
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

fn opts4() -> impl Strategy<Value = Vec<u8>> {
    (0usize..=10).prop_flat_map(|n| prop::collection::vec(any::<u8>(), n * 4))
}

fn arb_l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            opts4()
        )
            .prop_map(|(sport, dport, seq, ack, flags, window, options)| L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options
            }),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(sport, dport, checksum)| {
            L4::Udp {
                sport,
                dport,
                checksum,
            }
        }),
    ]
}

/// Valid, unfragmented TCP/UDP frames with arbitrary fields.
fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            2u8..=255,
            0u8..64,
            0u8..4,
        ),
        (any::<u16>(), any::<bool>(), opts4(), arb_l4()),
        (prop::collection::vec(any::<u8>(), 0..80), 0usize..8),
    )
        .prop_map(
            |((src, dst, ttl, dscp, ecn), (ident, df, ip_options, l4), (payload, padding))| Frame {
                src,
                dst,
                ttl,
                dscp,
                ecn,
                ident,
                df,
                ip_options,
                l4,
                payload,
                padding,
                ..Frame::tcp_syn()
            },
        )
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        assert_parsers_agree(&bytes);
        if let Ok(p) = parse_frame(&bytes) {
            assert_offsets_inside(&bytes, &p);
            run_all_rewrites(&bytes, &p);
        }
    }

    /// Random bytes behind an IPv4 EtherType and a plausible first header
    /// byte, with the IP checksum fixed, so the deeper paths are reached.
    #[test]
    fn parse_never_panics_on_ipv4_shaped_bytes(
        mut bytes in prop::collection::vec(any::<u8>(), 14..200),
        ihl in 0u8..16,
        proto in prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()],
        frag_word in prop_oneof![Just(0u16), Just(0x4000), any::<u16>()],
        total_from_len in any::<bool>(),
        icmp_err in prop_oneof![Just(3u8), Just(11), any::<u8>()],
    ) {
        bytes[12] = 0x08;
        bytes[13] = 0x00;
        let n = bytes.len();
        if n >= 34 {
            bytes[14] = 0x40 | ihl;
            if total_from_len {
                bytes[16..18].copy_from_slice(&((n - 14) as u16).to_be_bytes());
            }
            bytes[20..22].copy_from_slice(&frag_word.to_be_bytes());
            bytes[23] = proto;
            let l4 = 14 + usize::from(ihl) * 4;
            if proto == 1 && l4 + 8 < n {
                bytes[l4] = icmp_err;
                if l4 + 8 + 20 < n {
                    bytes[l4 + 8] = 0x45;
                }
            }
            fix_ip_checksum(&mut bytes);
        }
        assert_parsers_agree(&bytes);
        if let Ok(p) = parse_frame(&bytes) {
            assert_offsets_inside(&bytes, &p);
            run_all_rewrites(&bytes, &p);
        }
    }

    /// Valid frames with a few bytes flipped (IP checksum optionally fixed).
    #[test]
    fn parse_never_panics_on_mutated_frames(
        f in arb_frame(),
        flips in prop::collection::vec((any::<usize>(), 1u8..=255), 1..5),
        fix in any::<bool>(),
    ) {
        let mut b = f.build();
        let n = b.len();
        for (i, x) in flips {
            b[i % n] ^= x;
        }
        if fix {
            fix_ip_checksum(&mut b);
        }
        assert_parsers_agree(&b);
        if let Ok(p) = parse_frame(&b) {
            assert_offsets_inside(&b, &p);
            run_all_rewrites(&b, &p);
        }
    }

    /// NAT in both directions on arbitrary valid TCP/UDP frames: checksums
    /// (recomputed by etherparse) stay valid and the output is exactly the
    /// frame etherparse builds with the new fields.
    #[test]
    fn nat_keeps_checksums_valid(
        f in arb_frame(),
        addr in any::<[u8; 4]>(),
        port in any::<u16>(),
        outbound in any::<bool>(),
    ) {
        let mut b = f.build();
        assert_parsers_agree(&b);
        let p = parse_frame(&b).unwrap();
        assert_offsets_inside(&b, &p);
        let want = if outbound {
            nat_outbound(&mut p.ipv4(&mut b).unwrap(), ip4(addr), port).unwrap();
            f.clone().with_src(addr, port)
        } else {
            nat_inbound(&mut p.ipv4(&mut b).unwrap(), ip4(addr), port).unwrap();
            f.clone().with_dst(addr, port)
        };
        parse_and_verify(&b);
        prop_assert_eq!(b, want.with_ttl(f.ttl - 1).build());
    }

    #[test]
    fn dr_keeps_checksums_valid(f in arb_frame(), mac in any::<[u8; 6]>()) {
        let mut b = f.build();
        let p = parse_frame(&b).unwrap();
        dr(&mut p.ipv4(&mut b).unwrap(), MacAddr(mac), MacAddr(PORT_MAC)).unwrap();
        parse_and_verify(&b);
        prop_assert_eq!(b, f.clone().with_macs(mac, PORT_MAC).with_ttl(f.ttl - 1).build());
    }

    /// RFC 1624 incremental updates agree with a full recomputation.
    #[test]
    fn incremental_update_matches_full(
        words in prop::collection::vec(any::<u16>(), 4..40),
        at in any::<usize>(),
        new32 in any::<u32>(),
        udp_rules in any::<bool>(),
    ) {
        // Word 0 is the checksum field; a 32-bit field changes at `i`.
        let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        data[0] = 0;
        data[1] = 0;
        let i = 2 + 2 * (at % (words.len() - 2));
        let hc = checksum::checksum(&data);
        let old32 = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        data[i..i + 4].copy_from_slice(&new32.to_be_bytes());
        let full = checksum::checksum(&data);
        let inc = if udp_rules {
            checksum::udp_update32(checksum::udp_final(hc), old32, new32)
        } else {
            checksum::update32(hc, old32, new32)
        };
        // All-zero data is the one case where +0 and -0 differ; skip it.
        if checksum::sum(&data[2..]) != 0 {
            // Bit-identical to the full result (with the UDP 0 rule)...
            let want = if udp_rules { checksum::udp_final(full) } else { full };
            prop_assert_eq!(inc, want);
            // ...and it verifies.
            data[0..2].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(checksum::sum(&data), 0xFFFF);
        }
    }
}
