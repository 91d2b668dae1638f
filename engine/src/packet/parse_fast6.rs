//! The common IPv6 frame in a few fixed-offset compares: the IPv6 twin of
//! [`is_fast_shape`](super::parse_fast::is_fast_shape), for the first pass
//! over a burst and the IPv6 established fast path.
//!
//! Almost every IPv6 frame a director forwards is untagged Ethernet II +
//! IPv6 whose first next header is TCP or UDP (no extension header, so no
//! fragment): IP at 14, L4 at 54, every offset a constant. Anything else
//! (a VLAN tag, an extension header, ICMPv6, a length that does not add
//! up) returns false and [`parse_ipv6`](super::parse_ipv6::parse_ipv6)
//! decides, as before.
//!
//! Contract, checked by the tests below: whenever [`is_fast_shape6`] is
//! true, `parse_ipv6` returns `Ok(Some(p))` with `p.l3_off() == 14`,
//! `p.l4_off() == 54`, no extension header, `has_l4` and TCP/UDP, so the
//! fast path's fixed-offset reads are the full parser's fields.

/// Ethernet (14) + the IPv6 fixed header (40).
pub const L4_OFF6: usize = 54;

/// An untagged IPv6 frame whose next header is TCP or UDP, with a payload
/// length the frame holds and an L4 header that fits it (TCP: a data
/// offset from 20 bytes to the payload; UDP: a length from 8 to the
/// payload). Never panics.
#[inline(always)]
pub fn is_fast_shape6(frame: &[u8]) -> bool {
    // Ethernet + IPv6 + the 8 bytes every TCP/UDP header starts with.
    let Some(h) = frame.first_chunk::<{ L4_OFF6 + 8 }>() else {
        return false;
    };
    // EtherType 0x86DD, version 6.
    if h[12] != 0x86 || h[13] != 0xdd || h[14] >> 4 != 6 {
        return false;
    }
    let payload = usize::from(u16::from_be_bytes([h[18], h[19]]));
    // The IPv6 packet fits the frame (what follows is Ethernet padding).
    if payload > frame.len() - L4_OFF6 {
        return false;
    }
    match h[20] {
        6 => {
            // TcpPacket::new_checked on the payload.
            if payload < 20 {
                return false;
            }
            let Some(&t) = frame.get(L4_OFF6 + 12) else {
                return false;
            };
            let doff = usize::from(t >> 4) * 4;
            doff >= 20 && doff <= payload
        }
        17 => {
            // UdpPacket::new_checked on the payload.
            let len = usize::from(u16::from_be_bytes([h[L4_OFF6 + 4], h[L4_OFF6 + 5]]));
            payload >= 8 && len >= 8 && len <= payload
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ipv6::next_header;
    use crate::packet::parse_ipv6::{parse_fast_ipv6, parse_ipv6};

    /// Ethernet + IPv6 + TCP (20-byte header) or UDP, `data` payload bytes.
    fn frame(protocol: u8, data: usize) -> Vec<u8> {
        let l4 = if protocol == 6 { 20 } else { 8 } + data;
        let mut f = vec![0u8; L4_OFF6 + l4];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(l4 as u16).to_be_bytes());
        f[20] = protocol;
        f[21] = 64;
        f[22] = 0x20;
        f[38] = 0x20;
        if protocol == 6 {
            f[L4_OFF6 + 12] = 0x50;
        } else {
            f[L4_OFF6 + 4..L4_OFF6 + 6].copy_from_slice(&(l4 as u16).to_be_bytes());
        }
        f
    }

    /// The contract, on `f`: fast implies the full parser's fixed shape,
    /// and `parse_fast_ipv6` is the full parser's summary exactly when fast.
    fn check(f: &[u8]) -> bool {
        let fast = is_fast_shape6(f);
        let summary = parse_fast_ipv6(f);
        assert_eq!(summary.is_some(), fast, "{f:02x?}");
        if fast {
            let p = parse_ipv6(f).expect("parses").expect("IPv6");
            assert_eq!(summary, Some(p), "{f:02x?}");
            assert_eq!(
                (p.l3_off(), p.l4_off(), p.ext_count),
                (14, 54, 0),
                "{f:02x?}"
            );
            assert!(p.has_l4 && p.fragment.is_none() && p.vlan.is_none());
            assert!(p.protocol == next_header::TCP || p.protocol == next_header::UDP);
        }
        fast
    }

    #[test]
    fn common_frames_are_fast() {
        for (protocol, data) in [(6, 0), (6, 5), (17, 0), (17, 5)] {
            let f = frame(protocol, data);
            assert!(check(&f));
            // Ethernet padding after the packet.
            let mut padded = f.clone();
            padded.resize(f.len() + 10, 0);
            assert!(check(&padded));
        }
    }

    #[test]
    fn every_one_byte_change_and_cut_keeps_the_contract() {
        let mut fast = 0;
        for (protocol, data) in [(6, 3), (17, 3)] {
            let f = frame(protocol, data);
            for n in 0..=f.len() {
                check(&f[..n]);
            }
            for i in 0..f.len().min(L4_OFF6 + 20) {
                for v in [
                    0u8, 1, 4, 5, 6, 0x11, 0x2c, 0x3a, 0x40, 0x60, 0x81, 0xf0, 0xff,
                ] {
                    let mut g = f.clone();
                    g[i] = v;
                    fast += usize::from(check(&g));
                }
            }
        }
        assert!(fast > 100, "the mutations keep many frames fast: {fast}");
    }

    #[test]
    fn other_shapes_are_not_fast() {
        let f = frame(6, 0);
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        tagged.extend_from_slice(&f[12..]);
        assert!(!is_fast_shape6(&tagged), "VLAN");
        let mut ext = f.clone();
        ext[20] = next_header::FRAGMENT;
        assert!(!is_fast_shape6(&ext), "extension header");
        let mut icmp = f.clone();
        icmp[20] = next_header::ICMPV6;
        assert!(!is_fast_shape6(&icmp), "ICMPv6");
        let mut long = f.clone();
        long[19] += 1;
        assert!(!is_fast_shape6(&long), "payload longer than the frame");
        let mut doff = f.clone();
        doff[L4_OFF6 + 12] = 0x40;
        assert!(!is_fast_shape6(&doff), "data offset 16");
    }
}
