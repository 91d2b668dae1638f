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

use crate::packet::checksum;
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
    nat_fixed_pair(frame, side, addr, port, &mac_pair(dst, src))
}

/// [`nat_fixed`] with the MACs as the 12 bytes the frame starts with
/// (destination, source): the next hop keeps them so, written in two
/// stores.
#[inline(always)]
pub fn nat_fixed_pair(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
    macs: &[u8; 12],
) -> Result<(), ForwardError> {
    nat_by_protocol(frame, side, addr, port, Some(macs))
}

/// [`nat_fixed_pair`] for a caller that wrote the MACs already (straight
/// from its next hop, with no copy of them held across its other work):
/// the addresses, port, TTL and checksums alone. On an error the frame is
/// the caller's to drop, as with the others.
#[inline(always)]
pub fn nat_fixed_l3(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(), ForwardError> {
    nat_by_protocol(frame, side, addr, port, None)
}

/// [`nat_at`] with the L4 checksum's offset of the frame's protocol (TCP
/// or UDP); `macs` written too when given.
#[inline(always)]
fn nat_by_protocol(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
    macs: Option<&[u8; 12]>,
) -> Result<(), ForwardError> {
    if frame.len() < UDP_CK + 2 {
        return Err(ForwardError::Mismatch);
    }
    match frame[PROTO] {
        proto::TCP => nat_at::<{ TCP_CK + 2 }, TCP_CK>(frame, side, addr, port, macs),
        proto::UDP => nat_at::<{ UDP_CK + 2 }, UDP_CK>(frame, side, addr, port, macs),
        _ => Err(ForwardError::UnsupportedProtocol),
    }
}

/// The 12 bytes of a frame's destination and source MACs.
#[inline(always)]
pub fn mac_pair(dst: MacAddr, src: MacAddr) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[..6].copy_from_slice(&dst.0);
    m[6..].copy_from_slice(&src.0);
    m
}

/// [`nat_fixed`] with the L4 checksum at `CK` in a frame of at least
/// `N = CK + 2` bytes: every offset a constant into one checked array, so
/// no access needs a bounds check of its own.
///
/// The checksums are updated in the frame's byte order (RFC 1071 §2(B)):
/// the old address, port and checksums are loaded as native integers and
/// the new values byte-swapped once, so nothing read is swapped and
/// nothing written swapped back; the address is one 32-bit addend
/// ([`checksum::add32`]) and the TTL decrement the constant `0xFFFE` (the
/// TTL/protocol word read little-endian loses one).
#[inline(always)]
fn nat_at<const N: usize, const CK: usize>(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv4Addr,
    port: u16,
    macs: Option<&[u8; 12]>,
) -> Result<(), ForwardError> {
    let Some(h) = frame.first_chunk_mut::<N>() else {
        return Err(ForwardError::Mismatch);
    };
    ttl_delta(h[TTL])?;
    let (a, p) = match side {
        NatSide::Dst => (DST, L4 + 2),
        NatSide::Src => (SRC, L4),
    };
    let new_addr = u32::from_ne_bytes(addr.octets());
    let new_port = u16::from_ne_bytes(port.to_be_bytes());
    let old_addr = u32::from_ne_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
    let old_port = u16::from_ne_bytes([h[p], h[p + 1]]);
    let addr_delta = checksum::add32(!old_addr, new_addr);
    let l4 = checksum::add32(addr_delta, u32::from(!old_port) + u32::from(new_port));
    let old_ck = u16::from_ne_bytes([h[CK], h[CK + 1]]);
    let new_ck = if CK == UDP_CK && old_ck == 0 {
        // UDP without a checksum stays without.
        0
    } else {
        let ck = checksum::apply32(old_ck, l4);
        if CK == UDP_CK {
            checksum::udp_final(ck)
        } else {
            ck
        }
    };
    h[CK..CK + 2].copy_from_slice(&new_ck.to_ne_bytes());
    h[p..p + 2].copy_from_slice(&new_port.to_ne_bytes());
    h[a..a + 4].copy_from_slice(&new_addr.to_ne_bytes());
    h[TTL] -= 1;
    let ip_ck = u16::from_ne_bytes([h[IP_CK], h[IP_CK + 1]]);
    let ip_ck = checksum::apply32(ip_ck, checksum::add32(addr_delta, TTL_DELTA_NE));
    h[IP_CK..IP_CK + 2].copy_from_slice(&ip_ck.to_ne_bytes());
    if let Some(macs) = macs {
        h[..12].copy_from_slice(macs);
    }
    Ok(())
}

/// The TTL decrement's delta in the frame's byte order read natively:
/// the TTL/protocol word, loaded little-endian, loses one (`~m + m - 1`).
const TTL_DELTA_NE: u32 = if cfg!(target_endian = "little") {
    0xFFFE
} else {
    0xFEFF
};

/// DR: TTL - 1 and the MACs.
#[inline(always)]
pub fn dr_fixed(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), ForwardError> {
    dr_fixed_pair(frame, &mac_pair(dst, src))
}

/// [`dr_fixed`] with the MACs as the frame's first 12 bytes.
#[inline(always)]
pub fn dr_fixed_pair(frame: &mut [u8], macs: &[u8; 12]) -> Result<(), ForwardError> {
    let Some(h) = frame.first_chunk_mut::<L4>() else {
        return Err(ForwardError::Mismatch);
    };
    decrement_ttl_fixed(h)?;
    h[..12].copy_from_slice(macs);
    Ok(())
}

/// TTL - 1 and the header checksum of the frame's IPv4 packet (DR; TUN
/// does the same to the inner packet in [`tun_fixed`]).
#[inline(always)]
pub fn decrement_ttl_fixed(frame: &mut [u8]) -> Result<(), ForwardError> {
    if frame.len() < L4 {
        return Err(ForwardError::Mismatch);
    }
    ttl_delta(frame[TTL])?;
    frame[TTL] -= 1;
    let ip_ck = u16::from_ne_bytes([frame[IP_CK], frame[IP_CK + 1]]);
    let ip_ck = checksum::apply32(ip_ck, TTL_DELTA_NE);
    frame[IP_CK..IP_CK + 2].copy_from_slice(&ip_ck.to_ne_bytes());
    Ok(())
}

/// The outer IPv4 header of IPIP from `src` to `dst` as far as it is the
/// same for every packet (version and length, protocol, addresses; the
/// rest zero), and the one's-complement sum of those words in the frame's
/// byte order read natively: per server, made once with its next hop
/// (`pipeline/dest_fast.rs`), so that [`tun_fixed`] copies it and writes
/// the packet's fields.
#[derive(Clone, Copy, Debug)]
pub struct TunTemplate {
    hdr: [u8; TUN_OVERHEAD],
    sum: u32,
}

impl TunTemplate {
    pub const EMPTY: TunTemplate = TunTemplate {
        hdr: [0; TUN_OVERHEAD],
        sum: 0,
    };

    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> TunTemplate {
        let mut hdr = [0u8; TUN_OVERHEAD];
        hdr[0] = 0x45;
        hdr[9] = proto::IPIP;
        hdr[12..16].copy_from_slice(&src.octets());
        hdr[16..20].copy_from_slice(&dst.octets());
        let w = |i: usize| u32::from_ne_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
        // Words 8..20: the protocol and the addresses (word 0 comes from
        // the inner header whole, its version byte included).
        let sum = checksum::add32(checksum::add32(w(8), w(12)), w(16));
        TunTemplate { hdr, sum }
    }
}

/// TUN: `buf` is `[20 bytes headroom][Ethernet][inner IPv4 without
/// options ...]`. Decrements the inner TTL (its checksum updated), moves
/// the Ethernet header to the front, writes the outer header (`tpl`'s
/// addresses, IPIP, `ident`; TOS, DF and the decremented TTL of the inner
/// header; total length inner + 20) and the MACs. The header is the
/// template with its first 8 bytes and the TTL written, its checksum the
/// template's sum plus those words. Checks before it writes: on `Err`
/// (`Mismatch`, `TooBig`, `TtlExpired`) `buf` is unchanged.
#[inline(always)]
pub fn tun_fixed(
    buf: &mut [u8],
    tpl: &TunTemplate,
    ident: u16,
    macs: &[u8; 12],
) -> Result<(), ForwardError> {
    const INNER: usize = TUN_OVERHEAD + IP;
    let Some(b) = buf.first_chunk_mut::<{ INNER + TUN_OVERHEAD }>() else {
        return Err(ForwardError::Mismatch);
    };
    if b[INNER] != 0x45 {
        return Err(ForwardError::Mismatch);
    }
    let inner_total = u16::from_be_bytes([b[INNER + 2], b[INNER + 3]]);
    let total = inner_total
        .checked_add(TUN_OVERHEAD as u16)
        .ok_or(ForwardError::TooBig)?;
    ttl_delta(b[INNER + 8])?;
    let ttl = b[INNER + 8] - 1;
    let inner_ck = u16::from_ne_bytes([b[INNER + 10], b[INNER + 11]]);
    let inner_ck = checksum::apply32(inner_ck, TTL_DELTA_NE);
    let [t0, t1] = total.to_be_bytes();
    let [i0, i1] = ident.to_be_bytes();
    // Version/IHL and TOS as the inner's, the total length; the
    // identification, DF alone of the inner's flags; the inner's TTL.
    let w0 = [0x45, b[INNER + 1], t0, t1];
    let w1 = [i0, i1, b[INNER + 6] & 0x40, 0];
    let sum = checksum::add32(
        checksum::add32(tpl.sum, u32::from_ne_bytes(w0)),
        checksum::add32(u32::from_ne_bytes(w1), u32::from_ne_bytes([ttl, 0, 0, 0])),
    );
    let ck = !checksum::fold32(sum);
    b[INNER + 8] = ttl;
    b[INNER + 10..INNER + 12].copy_from_slice(&inner_ck.to_ne_bytes());
    // The Ethernet header moves to the front: its MACs are written below,
    // so only the EtherType is carried (two byte moves, where a 14-byte
    // `copy_within` may become a libc memmove call whenever the inliner
    // declines it).
    let ethertype = [b[INNER - 2], b[INNER - 1]];
    b[IP - 2..IP].copy_from_slice(&ethertype);
    b[IP..IP + TUN_OVERHEAD].copy_from_slice(&tpl.hdr);
    b[IP..IP + 4].copy_from_slice(&w0);
    b[IP + 4..IP + 8].copy_from_slice(&w1);
    b[IP + 8] = ttl;
    b[IP + 10..IP + 12].copy_from_slice(&ck.to_ne_bytes());
    b[..12].copy_from_slice(macs);
    Ok(())
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
                    NatSide::Dst => nat_inbound(&mut p.ipv4(&mut full).unwrap(), rs, 8080),
                    NatSide::Src => nat_outbound(&mut p.ipv4(&mut full).unwrap(), rs, 8080),
                }
                .unwrap();
                set_macs(&mut full, A, B).unwrap();
                assert_eq!(fast, full, "{side:?} {f:02x?}");
            }
        }
    }

    /// The rewrite without the MACs: the general NAT's bytes, the frame's
    /// own MACs left as they were (the caller wrote its hop's).
    #[test]
    fn nat_fixed_l3_is_nat_with_the_macs_untouched() {
        let rs = Ipv4Addr::new(198, 19, 0, 11);
        for f in frames() {
            let p = parse_frame(&f).unwrap();
            for side in [NatSide::Dst, NatSide::Src] {
                let (mut fast, mut full) = (f.clone(), f.clone());
                nat_fixed_l3(&mut fast, side, rs, 8080).unwrap();
                match side {
                    NatSide::Dst => nat_inbound(&mut p.ipv4(&mut full).unwrap(), rs, 8080),
                    NatSide::Src => nat_outbound(&mut p.ipv4(&mut full).unwrap(), rs, 8080),
                }
                .unwrap();
                assert_eq!(fast, full, "{side:?} {f:02x?}");
                assert_eq!(fast[..12], f[..12], "MACs untouched");
            }
        }
    }

    #[test]
    fn dr_fixed_is_dr() {
        for f in frames() {
            let p = parse_frame(&f).unwrap();
            let (mut fast, mut full) = (f.clone(), f.clone());
            dr_fixed(&mut fast, A, B).unwrap();
            dr(&mut p.ipv4(&mut full).unwrap(), A, B).unwrap();
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn tun_fixed_is_tun_encap() {
        // Addresses whose sums carry, and none at all; idents likewise.
        let pairs = [
            (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 11)),
            (Ipv4Addr::BROADCAST, Ipv4Addr::BROADCAST),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            (Ipv4Addr::new(255, 254, 0, 1), Ipv4Addr::new(0, 1, 255, 255)),
        ];
        for (src, dst) in pairs {
            let tpl = TunTemplate::new(src, dst);
            for ident in [0, 1, 0x4242, 0xffff] {
                for f in frames() {
                    let p = parse_frame(&f).unwrap();
                    let mut full = f.clone();
                    crate::forward::decrement_ttl(&mut p.ipv4(&mut full).unwrap()).unwrap();
                    full.truncate(p.l3_end());
                    let mut full = [vec![0u8; TUN_OVERHEAD], full].concat();
                    let mut fast = f.clone();
                    fast.truncate(p.l3_end());
                    let mut fast = [vec![0u8; TUN_OVERHEAD], fast].concat();
                    tun_encap_in_place(&mut full, src, dst, ident).unwrap();
                    set_macs(&mut full, A, B).unwrap();
                    tun_fixed(&mut fast, &tpl, ident, &mac_pair(A, B)).unwrap();
                    assert_eq!(fast, full, "{src} -> {dst} ident {ident:#x}");
                }
            }
        }
    }

    #[test]
    fn refused_frames_are_unchanged() {
        let f = frame(proto::TCP, 1, 0, false, 7);
        for n in [0, 13, 33, 41, 51, f.len()] {
            let mut g = f[..n].to_vec();
            assert!(nat_fixed(&mut g, NatSide::Dst, Ipv4Addr::LOCALHOST, 1, A, B).is_err());
            assert!(dr_fixed(&mut g, A, B).is_err());
            let tpl = TunTemplate::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
            assert!(tun_fixed(&mut g, &tpl, 1, &mac_pair(A, B)).is_err());
            assert_eq!(g, f[..n]);
        }
    }
}
