//! The established fast path's rewrites, for the one frame shape it takes: untagged Ethernet, IPv4 without options (IP at 14, L4 at 34), TCP or UDP, not a fragment.
//!
//! Byte for byte what the general rewrites ([`nat_inbound`](super::nat_inbound),
//! [`nat_outbound`](super::nat_outbound), [`dr`](super::dr),
//! [`tun_encap_in_place`](super::tun_encap_in_place), each followed by
//! [`set_macs`](super::set_macs)) produce for such a frame, with the same
//! RFC 1624 deltas, but at fixed offsets checked by one length compare,
//! with MACs written in the same pass. Like them, they check before they
//! write: on `Err` the frame is unchanged, and no input makes them panic
//! (a frame of another shape gets `Mismatch`, `UnsupportedProtocol` or
//! `TtlExpired`).

use std::net::Ipv4Addr;

use crate::packet::checksum::{self, Delta};
use crate::packet::ethernet::MacAddr;
use crate::packet::ipv4::proto;

use super::routed::ttl_delta;
use super::{ForwardError, TUN_OVERHEAD};

/// Offsets in the frame.
const IP: usize = 14;
const TTL: usize = IP + 8;
const PROTO: usize = IP + 9;
const IP_CK: usize = IP + 10;
const SRC: usize = IP + 12;
const DST: usize = IP + 16;
const L4: usize = IP + 20;
/// TCP checksum; UDP checksum.
const TCP_CK: usize = L4 + 16;
const UDP_CK: usize = L4 + 6;

/// Which end of the packet NAT rewrites.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatSide {
    /// Client -> server: the destination becomes the server's.
    Dst,
    /// Server -> client: the source becomes the VIP's.
    Src,
}

/// NAT of one direction: the address and port of `side` become `addr` and
/// `port`, TTL - 1, both checksums updated; then the MACs (`dst`, `src`).
#[inline(always)]
pub fn nat_fixed(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), ForwardError> {
    if frame.len() < UDP_CK + 2 {
        return Err(ForwardError::Mismatch);
    }
    match frame[PROTO] {
        proto::TCP => nat_at::<{ TCP_CK + 2 }, TCP_CK>(frame, side, addr, port, dst, src),
        proto::UDP => nat_at::<{ UDP_CK + 2 }, UDP_CK>(frame, side, addr, port, dst, src),
        _ => Err(ForwardError::UnsupportedProtocol),
    }
}

/// [`nat_fixed`] with the L4 checksum at `CK` in a frame of at least
/// `N = CK + 2` bytes: every offset a constant into one checked array, so
/// no access needs a bounds check of its own.
#[inline(always)]
fn nat_at<const N: usize, const CK: usize>(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), ForwardError> {
    let Some(h) = frame.first_chunk_mut::<N>() else {
        return Err(ForwardError::Mismatch);
    };
    let ttl = ttl_delta(h[TTL])?;
    let (a, p) = match side {
        NatSide::Dst => (DST, L4 + 2),
        NatSide::Src => (SRC, L4),
    };
    let old_addr = u32::from_be_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
    let old_port = u16::from_be_bytes([h[p], h[p + 1]]);
    let addr_delta = Delta::new().dword(old_addr, u32::from(addr));
    let l4 = addr_delta.word(old_port, port);
    let old_ck = u16::from_be_bytes([h[CK], h[CK + 1]]);
    let new_ck = if CK == UDP_CK {
        l4.apply_udp(old_ck)
    } else {
        l4.apply(old_ck)
    };
    h[CK..CK + 2].copy_from_slice(&new_ck.to_be_bytes());
    h[p..p + 2].copy_from_slice(&port.to_be_bytes());
    h[a..a + 4].copy_from_slice(&addr.octets());
    h[TTL] -= 1;
    let ip_ck = u16::from_be_bytes([h[IP_CK], h[IP_CK + 1]]);
    let ip_ck = addr_delta.plus(ttl).apply(ip_ck);
    h[IP_CK..IP_CK + 2].copy_from_slice(&ip_ck.to_be_bytes());
    write_macs(h, dst, src);
    Ok(())
}

/// DR: TTL - 1 and the MACs.
#[inline(always)]
pub fn dr_fixed(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), ForwardError> {
    if frame.len() < L4 {
        return Err(ForwardError::Mismatch);
    }
    decrement_ttl_fixed(frame)?;
    write_macs(frame, dst, src);
    Ok(())
}

/// TUN, before the encapsulation: TTL - 1 of the (inner) packet. Then the
/// caller trims the Ethernet padding, prepends [`TUN_OVERHEAD`] bytes and
/// calls [`tun_fixed`].
#[inline(always)]
pub fn decrement_ttl_fixed(frame: &mut [u8]) -> Result<(), ForwardError> {
    if frame.len() < L4 {
        return Err(ForwardError::Mismatch);
    }
    let d = ttl_delta(frame[TTL])?;
    frame[TTL] -= 1;
    let ip_ck = u16::from_be_bytes([frame[IP_CK], frame[IP_CK + 1]]);
    frame[IP_CK..IP_CK + 2].copy_from_slice(&d.apply(ip_ck).to_be_bytes());
    Ok(())
}

/// TUN: `buf` is `[20 bytes headroom][Ethernet][inner IPv4 without
/// options ...]`. Moves the Ethernet header to the front, writes the outer
/// header (`src` -> `dst`, IPIP, `ident`; TOS, DF and TTL of the inner
/// header; total length inner + 20) and the MACs.
#[inline(always)]
pub fn tun_fixed(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    dst_mac: MacAddr,
    src_mac: MacAddr,
) -> Result<(), ForwardError> {
    const INNER: usize = TUN_OVERHEAD + IP;
    if buf.len() < INNER + TUN_OVERHEAD || buf[INNER] != 0x45 {
        return Err(ForwardError::Mismatch);
    }
    let inner_total = u16::from_be_bytes([buf[INNER + 2], buf[INNER + 3]]);
    let total = inner_total
        .checked_add(TUN_OVERHEAD as u16)
        .ok_or(ForwardError::TooBig)?;
    let (tos, df, ttl) = (buf[INNER + 1], buf[INNER + 6] & 0x40, buf[INNER + 8]);
    let mut o = [0u8; TUN_OVERHEAD];
    o[0] = 0x45;
    o[1] = tos;
    o[2..4].copy_from_slice(&total.to_be_bytes());
    o[4..6].copy_from_slice(&ident.to_be_bytes());
    o[6] = df;
    o[8] = ttl;
    o[9] = proto::IPIP;
    o[12..16].copy_from_slice(&src.octets());
    o[16..20].copy_from_slice(&dst.octets());
    let ck = !checksum::sum20(&o);
    o[10..12].copy_from_slice(&ck.to_be_bytes());
    // The Ethernet header moves to the front: its MACs are written below,
    // so only the EtherType is carried (two byte moves, where a 14-byte
    // `copy_within` may become a libc memmove call whenever the inliner
    // declines it).
    let ethertype = [buf[INNER - 2], buf[INNER - 1]];
    buf[IP - 2..IP].copy_from_slice(&ethertype);
    buf[IP..IP + TUN_OVERHEAD].copy_from_slice(&o);
    write_macs(buf, dst_mac, src_mac);
    Ok(())
}

/// The next hop's and our port's MAC (the caller checked the length).
#[inline(always)]
fn write_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    frame[..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
}

#[cfg(test)]
mod tests {
    //! Each fixed-offset rewrite against the general one it stands for, on
    //! the same frames: the bytes must be identical.
    use super::*;
    use crate::forward::{dr, nat_inbound, nat_outbound, set_macs, tun_encap_in_place};
    use crate::packet::parse_frame;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    /// An Ethernet + IPv4 + TCP or UDP frame with valid checksums, padded
    /// to 60 bytes.
    fn frame(protocol: u8, ttl: u8, tos: u8, df: bool, l4_ck: u16) -> Vec<u8> {
        let l4_len = if protocol == proto::TCP { 20 } else { 8 } + 5;
        let mut f = vec![0u8; 14 + 20 + l4_len];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2]);
        f[12] = 0x08;
        f[14] = 0x45;
        f[15] = tos;
        f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        f[20] = if df { 0x40 } else { 0 };
        f[22] = ttl;
        f[23] = protocol;
        f[26..30].copy_from_slice(&[198, 18, 0, 10]);
        f[30..34].copy_from_slice(&[198, 18, 0, 100]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        if protocol == proto::TCP {
            f[46] = 0x50;
            f[47] = 0x10;
            f[50..52].copy_from_slice(&l4_ck.to_be_bytes());
        } else {
            f[38..40].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[40..42].copy_from_slice(&l4_ck.to_be_bytes());
        }
        let ck = !checksum::sum20(f[14..34].try_into().unwrap());
        f[24..26].copy_from_slice(&ck.to_be_bytes());
        f.resize(f.len().max(60), 0);
        f
    }

    fn frames() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for protocol in [proto::TCP, proto::UDP] {
            for ttl in [2, 64, 255] {
                for l4_ck in [0, 1, 0x1234, 0xfffe, 0xffff] {
                    v.push(frame(protocol, ttl, 0xb8, ttl == 64, l4_ck));
                }
            }
        }
        v
    }

    #[test]
    fn nat_fixed_is_nat_and_set_macs() {
        let rs = Ipv4Addr::new(198, 19, 0, 11);
        for f in frames() {
            let p = parse_frame(&f).unwrap();
            for side in [NatSide::Dst, NatSide::Src] {
                let (mut fast, mut full) = (f.clone(), f.clone());
                nat_fixed(&mut fast, side, rs, 8080, A, B).unwrap();
                match side {
                    NatSide::Dst => nat_inbound(&mut full, &p, rs, 8080).unwrap(),
                    NatSide::Src => nat_outbound(&mut full, &p, rs, 8080).unwrap(),
                }
                set_macs(&mut full, A, B).unwrap();
                assert_eq!(fast, full, "{side:?} {f:02x?}");
            }
        }
    }

    #[test]
    fn dr_fixed_is_dr() {
        for f in frames() {
            let p = parse_frame(&f).unwrap();
            let (mut fast, mut full) = (f.clone(), f.clone());
            dr_fixed(&mut fast, A, B).unwrap();
            dr(&mut full, &p, A, B).unwrap();
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn tun_fixed_is_tun_encap() {
        let (src, dst) = (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 11));
        for f in frames() {
            let p = parse_frame(&f).unwrap();
            let mut full = f.clone();
            crate::forward::decrement_ttl(&mut full, &p).unwrap();
            full.truncate(p.l3_end());
            let mut full = [vec![0u8; TUN_OVERHEAD], full].concat();
            let mut fast = f.clone();
            decrement_ttl_fixed(&mut fast).unwrap();
            fast.truncate(p.l3_end());
            let mut fast = [vec![0u8; TUN_OVERHEAD], fast].concat();
            tun_encap_in_place(&mut full, src, dst, 0x4242).unwrap();
            set_macs(&mut full, A, B).unwrap();
            tun_fixed(&mut fast, src, dst, 0x4242, A, B).unwrap();
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn refused_frames_are_unchanged() {
        let f = frame(proto::TCP, 1, 0, false, 7);
        for n in [0, 13, 33, 41, 51, f.len()] {
            let mut g = f[..n].to_vec();
            assert!(nat_fixed(&mut g, NatSide::Dst, Ipv4Addr::LOCALHOST, 1, A, B).is_err());
            assert!(dr_fixed(&mut g, A, B).is_err());
            assert!(tun_fixed(&mut g, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, A, B).is_err());
            assert_eq!(g, f[..n]);
        }
    }
}
