//! TUN: IP-in-IP (RFC 2003) from the director to the real server, which
//! decapsulates and answers the client directly with the VIP as source.
//!
//! Designed for an mbuf, so the payload is never copied. Data plane recipe:
//!
//! 1. `p = parse_frame(data)`; if [`ttl_expired`](super::ttl_expired) answer
//!    with [`icmp_time_exceeded`](super::icmp_time_exceeded) or drop.
//! 2. If `!tun_fits_mtu(p.ip_total_len, mtu)`: with DF set, answer with
//!    [`icmp_frag_needed`](super::icmp_frag_needed) advertising
//!    `mtu - TUN_OVERHEAD` and drop; without DF, drop and count (rvs does not
//!    fragment).
//! 3. [`decrement_ttl`](super::decrement_ttl)`(data, &p)`: the inner header is
//!    the routed one; do it now, while `p`'s offsets still hold.
//! 4. `rte_pktmbuf_prepend(m, TUN_OVERHEAD)`: the data now starts 20 bytes
//!    earlier and reads `[20 bytes headroom][Ethernet 14][inner IPv4 ...]`.
//! 5. [`tun_encap_in_place`]`(data, director_ip, rs_ip, ident)`: moves the
//!    14-byte Ethernet header to the front (the only bytes that move) and
//!    writes the outer IPv4 header into bytes 14..34, right in front of the
//!    untouched inner packet:
//!
//!    ```text
//!    before: [ headroom 20 ][ eth 14 ][ inner IP ... ]
//!    after:  [ eth 14 ][ outer IP 20 ][ inner IP ... ]
//!    ```
//! 6. [`set_macs`](super::set_macs)`(data, next_hop_mac, port_mac)`.
//!
//! Ethernet padding after the inner packet (minimum-size frames) may stay:
//! the outer total length excludes it, so receivers ignore it (or trim the
//! mbuf to `p.l3_end()` before step 4).
//!
//! `ident` is the outer IP identification: a per-worker counter is enough
//! (RFC 6864; with DF set it is not used for reassembly at all).

use std::net::Ipv4Addr;

use crate::packet::ethernet;
use crate::packet::ipv4::{self, proto};
use crate::packet::Ipv4Packet;

use super::ForwardError;

/// Bytes the outer header adds (and headroom the caller prepends).
pub const TUN_OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

/// True when the encapsulated packet (`inner_total_len + 20`) fits `mtu`.
#[inline]
pub fn tun_fits_mtu(inner_total_len: u16, mtu: u16) -> bool {
    u32::from(inner_total_len) + TUN_OVERHEAD as u32 <= u32::from(mtu)
}

/// Writes a 20-byte outer IPv4 header into `outer[..20]` for `inner_ip`
/// (which starts with the inner, already TTL-decremented, IPv4 header):
/// version 4, IHL 5, TOS, TTL and DF copied from the inner header, MF and
/// offset 0, protocol 4 (IPIP), total length = inner total length + 20,
/// `ident`, `src` -> `dst`, and the header checksum.
pub fn tun_encap_header(
    outer: &mut [u8],
    inner_ip: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
) -> Result<(), ForwardError> {
    let inner = Ipv4Packet::new_checked(inner_ip).map_err(|_| ForwardError::Mismatch)?;
    let total = usize::from(inner.total_len()) + TUN_OVERHEAD;
    let total = u16::try_from(total).map_err(|_| ForwardError::TooBig)?;
    let outer = outer
        .get_mut(..TUN_OVERHEAD)
        .ok_or(ForwardError::BufferTooSmall)?;
    outer.fill(0);
    let mut o = Ipv4Packet::new_unchecked(outer);
    o.set_version(4);
    o.set_header_len(ipv4::MIN_HEADER_LEN);
    o.set_tos(inner.tos());
    o.set_total_len(total);
    o.set_ident(ident);
    o.set_dont_frag(inner.dont_frag());
    o.set_ttl(inner.ttl());
    o.set_protocol(proto::IPIP);
    o.set_src(src);
    o.set_dst(dst);
    o.fill_checksum();
    Ok(())
}

/// Step 5 of the recipe: `buf` is the mbuf data after prepending
/// [`TUN_OVERHEAD`] bytes, i.e. `[20 headroom][Ethernet 14][inner IPv4 ...]`.
/// Moves the Ethernet header to the front and writes the outer header after
/// it. On error nothing has been written.
pub fn tun_encap_in_place(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
) -> Result<(), ForwardError> {
    const ETH: usize = ethernet::HEADER_LEN;
    const INNER: usize = TUN_OVERHEAD + ETH;
    let inner = buf.get(INNER..).ok_or(ForwardError::Mismatch)?;
    let total = Ipv4Packet::new_checked(inner)
        .map_err(|_| ForwardError::Mismatch)?
        .total_len();
    if usize::from(total) + TUN_OVERHEAD > usize::from(u16::MAX) {
        return Err(ForwardError::TooBig);
    }
    buf.copy_within(TUN_OVERHEAD..INNER, 0);
    let (head, inner) = buf.split_at_mut(INNER);
    tun_encap_header(&mut head[ETH..], inner, src, dst, ident)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum;

    fn inner(tos: u8, ttl: u8, df: bool) -> Vec<u8> {
        let mut h = vec![
            0x45,
            tos,
            0,
            28,
            0x12,
            0x34,
            if df { 0x40 } else { 0 },
            0,
            ttl,
            17,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            100,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        h
    }

    const DIR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

    #[test]
    fn outer_header_exact() {
        let mut out = [0xEEu8; 20];
        tun_encap_header(&mut out, &inner(0xB8, 63, true), DIR, RS, 0x0102).unwrap();
        let mut want = [
            0x45, 0xB8, 0, 48, 0x01, 0x02, 0x40, 0, 63, 4, 0, 0, 198, 19, 0, 2, 198, 19, 0, 11,
        ];
        let c = checksum::checksum(&want);
        want[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(out, want);
        // DF clear is copied too.
        tun_encap_header(&mut out, &inner(0, 9, false), DIR, RS, 7).unwrap();
        assert_eq!(&out[6..10], &[0, 0, 9, 4]);
        assert_eq!(checksum::sum(&out), 0xFFFF);
    }

    #[test]
    fn header_errors() {
        let mut out = [0u8; 19];
        assert_eq!(
            tun_encap_header(&mut out, &inner(0, 9, true), DIR, RS, 0),
            Err(ForwardError::BufferTooSmall)
        );
        let mut out = [0u8; 20];
        assert_eq!(
            tun_encap_header(&mut out, &inner(0, 9, true)[..19], DIR, RS, 0),
            Err(ForwardError::Mismatch)
        );
        // 65520-byte inner + 20 overflows the 16-bit total length.
        let mut big = vec![0u8; 65520];
        big[..20].copy_from_slice(&inner(0, 9, true)[..20]);
        big[2..4].copy_from_slice(&65520u16.to_be_bytes());
        assert_eq!(
            tun_encap_header(&mut out, &big, DIR, RS, 0),
            Err(ForwardError::TooBig)
        );
        assert_eq!(out, [0u8; 20]);
    }

    #[test]
    fn in_place_moves_only_ethernet() {
        let eth = [1u8, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00];
        let inn = inner(0x10, 30, true);
        let mut buf = vec![0xCCu8; 20];
        buf.extend_from_slice(&eth);
        buf.extend_from_slice(&inn);
        buf.extend_from_slice(&[0, 0]); // padding
        tun_encap_in_place(&mut buf, DIR, RS, 5).unwrap();
        let mut outer = [0u8; 20];
        tun_encap_header(&mut outer, &inn, DIR, RS, 5).unwrap();
        assert_eq!(&buf[..14], &eth);
        assert_eq!(&buf[14..34], &outer);
        assert_eq!(&buf[34..62], &inn[..]);
        assert_eq!(&buf[62..], &[0, 0]);

        let mut short = vec![0u8; 53];
        let before = short.clone();
        assert_eq!(
            tun_encap_in_place(&mut short, DIR, RS, 5),
            Err(ForwardError::Mismatch)
        );
        assert_eq!(short, before);
        let mut tiny = vec![0u8; 10];
        assert_eq!(
            tun_encap_in_place(&mut tiny, DIR, RS, 5),
            Err(ForwardError::Mismatch)
        );
    }

    #[test]
    fn fits_mtu() {
        assert!(tun_fits_mtu(1480, 1500));
        assert!(!tun_fits_mtu(1481, 1500));
        assert!(!tun_fits_mtu(u16::MAX, u16::MAX));
        assert!(tun_fits_mtu(0, 20));
    }
}
