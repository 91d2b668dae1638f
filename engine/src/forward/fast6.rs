//! The IPv6 established fast path's rewrites, for the one frame shape it takes: untagged Ethernet, IPv6 with TCP or UDP as its first next header (IP at 14, L4 at 54, no extension header).
//!
//! Byte for byte what the general rewrites ([`nat6_inbound`](super::nat6_inbound),
//! [`nat6_outbound`](super::nat6_outbound), [`dr6`](super::dr6), each
//! followed by [`set_macs`](super::set_macs)) produce for such a frame, with
//! the same RFC 1624 delta ([`Delta::addr6`]), but at fixed offsets checked
//! by one length compare, with the MACs written in the same pass. Like
//! them, they check before they write: on `Err` the frame is unchanged, and
//! no input makes them panic (a frame of another shape gets `Mismatch`,
//! `UnsupportedProtocol` or `TtlExpired`).

use std::net::Ipv6Addr;

use crate::packet::checksum::{self, Delta};
use crate::packet::ethernet::MacAddr;
use crate::packet::ipv6::next_header;

use super::{ForwardError, NatSide};

/// Offsets in the frame.
const IP: usize = 14;
const NEXT: usize = IP + 6;
const HOP: usize = IP + 7;
const SRC: usize = IP + 8;
const DST: usize = IP + 24;
const L4: usize = IP + 40;
/// TCP checksum; UDP checksum.
const TCP_CK: usize = L4 + 16;
const UDP_CK: usize = L4 + 6;

/// NAT of one direction over IPv6: the address and port of `side` become
/// `addr` and `port`, hop limit - 1, the L4 checksum updated (IPv6 has no
/// header checksum); then the MACs (`dst`, `src`). A UDP checksum of 0 is
/// refused, as [`nat6_inbound`](super::nat6_inbound) refuses it. For a
/// frame of the fast shape (`packet::parse_fast6`), whose payload length
/// the caller checked.
#[inline(always)]
pub fn nat6_fixed(
    frame: &mut [u8],
    side: NatSide,
    addr: Ipv6Addr,
    port: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), ForwardError> {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&dst.0);
    macs[6..].copy_from_slice(&src.0);
    let new = u128::from_ne_bytes(addr.octets());
    nat6_shape(frame, side, new, None, port, &macs)
}

/// [`nat6_fixed`] with the address part of the checksum update given
/// (`sum`: [`addr6_sum`] of the frame's address at `side` and `addr`,
/// both in the frame's byte order, as `conn::addr6::raw`) and the MACs as
/// the frame's first 12 bytes: what the established path passes from the
/// server's entry (`dest_fast6.rs`), where an address's sum is computed
/// once per snapshot, not twice per packet. Byte for byte `nat6_fixed`
/// when the frame's address at `side` is the one `sum` was made from (the
/// caller compared it).
#[inline(always)]
pub fn nat6_sum(
    frame: &mut [u8],
    side: NatSide,
    addr: u128,
    sum: u64,
    port: u16,
    macs: &[u8; 12],
) -> Result<(), ForwardError> {
    nat6_shape(frame, side, addr, Some(sum), port, macs)
}

/// The length and protocol checks of [`nat6_fixed`] and [`nat6_sum`].
#[inline(always)]
fn nat6_shape(
    frame: &mut [u8],
    side: NatSide,
    addr: u128,
    sum: Option<u64>,
    port: u16,
    macs: &[u8; 12],
) -> Result<(), ForwardError> {
    if frame.len() < UDP_CK + 2 {
        return Err(ForwardError::Mismatch);
    }
    match frame[NEXT] {
        next_header::TCP => nat6_at::<{ L4 + 20 }, TCP_CK>(frame, side, addr, sum, port, macs),
        next_header::UDP => nat6_at::<{ UDP_CK + 2 }, UDP_CK>(frame, side, addr, sum, port, macs),
        _ => Err(ForwardError::UnsupportedProtocol),
    }
}

/// [`nat6_shape`] with the L4 checksum at `CK` in a frame of at least `N`
/// bytes (the L4 header's end): every offset a constant into one checked
/// array. The IPv6 payload length is the caller's to have checked
/// (`is_fast_shape6`). `sum` `None`: computed from the frame's address.
#[inline(always)]
fn nat6_at<const N: usize, const CK: usize>(
    frame: &mut [u8],
    side: NatSide,
    addr: u128,
    sum: Option<u64>,
    port: u16,
    macs: &[u8; 12],
) -> Result<(), ForwardError> {
    let Some(h) = frame.first_chunk_mut::<N>() else {
        return Err(ForwardError::Mismatch);
    };
    if h[HOP] <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    let old_ck = u16::from_ne_bytes([h[CK], h[CK + 1]]);
    if CK == UDP_CK && old_ck == 0 {
        // RFC 8200 8.1: no checksum is an invalid IPv6 UDP datagram.
        return Err(ForwardError::UnsupportedProtocol);
    }
    let (a, p) = match side {
        NatSide::Dst => (DST, L4 + 2),
        NatSide::Src => (SRC, L4),
    };
    // The checksum arithmetic in native byte order (`l4_checksum`).
    let old_port = u16::from_ne_bytes([h[p], h[p + 1]]);
    let new_port = u16::from_ne_bytes(port.to_be_bytes());
    let new_ck = match sum {
        Some(sum) => l4_checksum_sum(old_ck, sum, old_port, new_port),
        None => {
            let mut old = [0u8; 16];
            old.copy_from_slice(&h[a..a + 16]);
            l4_checksum(old_ck, u128::from_ne_bytes(old), addr, old_port, new_port)
        }
    };
    let new_ck = if CK == UDP_CK {
        checksum::udp_final(new_ck)
    } else {
        new_ck
    };
    h[CK..CK + 2].copy_from_slice(&new_ck.to_ne_bytes());
    h[p..p + 2].copy_from_slice(&port.to_be_bytes());
    h[a..a + 16].copy_from_slice(&addr.to_ne_bytes());
    h[HOP] -= 1;
    write_macs(h, macs);
    Ok(())
}

/// `Delta::new().addr6(old, new).word(old_port, port).apply(hc)`, the
/// general rewrite's checksum update, in a third of the instructions: the
/// one's-complement sum of a value's 16-bit words is congruent to the
/// value modulo `0xFFFF` (2^16 = 1), so each address is summed as four
/// 32-bit halves, and `~old` as `BIAS - old` with `BIAS` a multiple of
/// `0xFFFF` above any such sum. `fold` of a non-zero accumulator is the
/// one value in `1..=0xFFFF` of its class, so the result is the same
/// whenever both accumulators are non-zero: always here (`BIAS` exceeds
/// the sum subtracted), and in `Delta` whenever `new` is not `::` (that
/// one case takes `Delta` itself).
///
/// Any byte order, as long as every value is in the same one (RFC 1071
/// 2(B): swapping the bytes of every word swaps those of the sum, and
/// `swap(v)` is `256 v` modulo `0xFFFF`, so the non-zero accumulators
/// stay non-zero and the folds are each other's swap): `nat6_at` passes
/// the frame's bytes as native integers and writes the result back the
/// same way, with no byte swaps.
#[inline(always)]
fn l4_checksum(hc: u16, old: u128, new: u128, old_port: u16, port: u16) -> u16 {
    if new == 0 {
        let delta = Delta::new().addr6(Ipv6Addr::from(old), Ipv6Addr::UNSPECIFIED);
        return delta.word(old_port, port).apply(hc);
    }
    l4_checksum_sum(hc, addr6_sum(old, new), old_port, port)
}

/// [`l4_checksum`] with its address part, [`addr6_sum`], given.
#[inline(always)]
fn l4_checksum_sum(hc: u16, sum: u64, old_port: u16, port: u16) -> u16 {
    let acc = u64::from(!hc) + sum + u64::from(!old_port) + u64::from(port);
    !checksum::fold(acc)
}

/// The address part of [`l4_checksum`]'s accumulator for an address `old`
/// replaced by `new` (any byte order, the same for both and the frame):
/// `BIAS - sum(old) + sum(new)`, below 2^36. Exact for a `new` that is
/// not `::` (the general rewrite's `Delta` differs there: the caller
/// keeps that one case off [`nat6_sum`]).
#[inline(always)]
pub fn addr6_sum(old: u128, new: u128) -> u64 {
    const HALF: u64 = 0xFFFF_FFFF;
    /// `0x40005 * 0xFFFF`, above `4 * HALF`.
    const BIAS: u64 = 0x4_0000_FFFB;
    let sum = |x: u128| {
        let (hi, lo) = ((x >> 64) as u64, x as u64);
        (hi >> 32) + (hi & HALF) + (lo >> 32) + (lo & HALF)
    };
    BIAS - sum(old) + sum(new)
}

/// DR over IPv6: hop limit - 1 and the MACs.
#[inline(always)]
pub fn dr6_fixed(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), ForwardError> {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&dst.0);
    macs[6..].copy_from_slice(&src.0);
    dr6_pair(frame, &macs)
}

/// [`dr6_fixed`] with the MACs as the frame's first 12 bytes.
#[inline(always)]
pub fn dr6_pair(frame: &mut [u8], macs: &[u8; 12]) -> Result<(), ForwardError> {
    let Some(h) = frame.first_chunk_mut::<L4>() else {
        return Err(ForwardError::Mismatch);
    };
    if h[HOP] <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    h[HOP] -= 1;
    write_macs(h, macs);
    Ok(())
}

/// The next hop's and our port's MAC, in one copy (the caller checked the
/// length).
#[inline(always)]
fn write_macs(frame: &mut [u8], macs: &[u8; 12]) {
    frame[..12].copy_from_slice(macs);
}

#[cfg(test)]
mod tests {
    //! Each fixed-offset rewrite against the general one it stands for, on
    //! the same frames: the bytes must be identical.
    use super::*;
    use crate::forward::{dr6, nat6_inbound, nat6_outbound, set_macs};
    use crate::packet::parse_ipv6::parse_ipv6;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    /// An Ethernet + IPv6 + TCP or UDP frame (checksum field `l4_ck`,
    /// five payload bytes), with `pad` bytes of Ethernet padding.
    fn frame(protocol: u8, hop: u8, l4_ck: u16, pad: usize) -> Vec<u8> {
        let l4_len = if protocol == next_header::TCP { 20 } else { 8 } + 5;
        let mut f = vec![0u8; L4 + l4_len];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2]);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[IP] = 0x60;
        f[IP + 1] = 0xb8;
        f[IP + 4..IP + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        f[NEXT] = protocol;
        f[HOP] = hop;
        f[SRC..SRC + 16].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 10).octets());
        f[DST..DST + 16]
            .copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 100).octets());
        f[L4..L4 + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[L4 + 2..L4 + 4].copy_from_slice(&80u16.to_be_bytes());
        if protocol == next_header::TCP {
            f[L4 + 12] = 0x50;
            f[L4 + 13] = 0x10;
            f[TCP_CK..TCP_CK + 2].copy_from_slice(&l4_ck.to_be_bytes());
        } else {
            f[L4 + 4..L4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[UDP_CK..UDP_CK + 2].copy_from_slice(&l4_ck.to_be_bytes());
        }
        f.resize(f.len() + pad, 0);
        f
    }

    fn frames() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for protocol in [next_header::TCP, next_header::UDP] {
            for hop in [1, 2, 64, 255] {
                for l4_ck in [0, 1, 0x1234, 0xfffe, 0xffff] {
                    for pad in [0, 6] {
                        v.push(frame(protocol, hop, l4_ck, pad));
                    }
                }
            }
        }
        v
    }

    #[test]
    fn nat6_fixed_is_nat6_and_set_macs() {
        let rs = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0xffff, 0x11);
        for f in frames() {
            let p = parse_ipv6(&f).unwrap().unwrap();
            for side in [NatSide::Dst, NatSide::Src] {
                let (mut fast, mut full) = (f.clone(), f.clone());
                let got = nat6_fixed(&mut fast, side, rs, 8080, A, B);
                let mut fr = p.ipv6(&mut full[..]).unwrap();
                let want = match side {
                    NatSide::Dst => nat6_inbound(&mut fr, rs, 8080),
                    NatSide::Src => nat6_outbound(&mut fr, rs, 8080),
                }
                .and_then(|()| set_macs(fr.bytes_mut(), A, B));
                assert_eq!(got, want, "{side:?} {f:02x?}");
                assert_eq!(fast, full, "{side:?} {f:02x?}");
            }
        }
    }

    #[test]
    fn nat6_sum_is_nat6_fixed() {
        let rs = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0xffff, 0x11);
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&A.0);
        macs[6..].copy_from_slice(&B.0);
        let new = u128::from_ne_bytes(rs.octets());
        for f in frames() {
            for (side, at) in [(NatSide::Dst, DST), (NatSide::Src, SRC)] {
                // The sum from the address the frame has at `side`, as the
                // server's entry makes it from the VIP or server address.
                let mut old = [0u8; 16];
                old.copy_from_slice(&f[at..at + 16]);
                let sum = addr6_sum(u128::from_ne_bytes(old), new);
                let (mut fast, mut full) = (f.clone(), f.clone());
                let got = nat6_sum(&mut fast, side, new, sum, 8080, &macs);
                let want = nat6_fixed(&mut full, side, rs, 8080, A, B);
                assert_eq!(got, want, "{side:?} {f:02x?}");
                assert_eq!(fast, full, "{side:?} {f:02x?}");
            }
            let (mut fast, mut full) = (f.clone(), f.clone());
            assert_eq!(dr6_pair(&mut fast, &macs), dr6_fixed(&mut full, A, B));
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn l4_checksum_is_delta() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edge = [0u128, 1, u128::MAX, u128::MAX - 1, 0xffff, 0xffff << 112];
        for k in 0..200_000 {
            let r = |v: u64, w: u64| (u128::from(v) << 64) | u128::from(w);
            let old = if k % 7 == 0 {
                edge[k % edge.len()]
            } else {
                r(next(), next())
            };
            let new = if k % 11 == 0 {
                edge[k % edge.len()]
            } else {
                r(next(), next())
            };
            let w = next();
            let hc = [0, 0xffff, w as u16][k % 3];
            let (op, np) = ([0, 0xffff, (w >> 16) as u16][k % 3], (w >> 32) as u16);
            let want = Delta::new()
                .addr6(Ipv6Addr::from(old), Ipv6Addr::from(new))
                .word(op, np)
                .apply(hc);
            assert_eq!(
                l4_checksum(hc, old, new, op, np),
                want,
                "{hc:x} {old:x} {new:x}"
            );
            // The same in the other byte order: the swapped result.
            let swapped = l4_checksum(
                hc.swap_bytes(),
                old.swap_bytes(),
                new.swap_bytes(),
                op.swap_bytes(),
                np.swap_bytes(),
            );
            assert_eq!(swapped, want.swap_bytes(), "{hc:x} {old:x} {new:x}");
        }
    }

    #[test]
    fn dr6_fixed_is_dr6() {
        for f in frames() {
            let p = parse_ipv6(&f).unwrap().unwrap();
            let (mut fast, mut full) = (f.clone(), f.clone());
            let want = dr6(&mut p.ipv6(&mut full[..]).unwrap(), A, B);
            assert_eq!(dr6_fixed(&mut fast, A, B), want);
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn refused_frames_are_unchanged() {
        let f = frame(next_header::TCP, 64, 7, 0);
        for n in [0, 13, 53, 61, 71, 73] {
            let mut g = f[..n].to_vec();
            assert!(nat6_fixed(&mut g, NatSide::Dst, Ipv6Addr::LOCALHOST, 1, A, B).is_err());
            if n < L4 {
                assert!(dr6_fixed(&mut g, A, B).is_err());
            }
            assert_eq!(g, f[..n]);
        }
        let mut g = frame(next_header::UDP, 64, 0, 0);
        let before = g.clone();
        assert_eq!(
            nat6_fixed(&mut g, NatSide::Src, Ipv6Addr::LOCALHOST, 1, A, B),
            Err(ForwardError::UnsupportedProtocol)
        );
        assert_eq!(g, before);
    }
}
