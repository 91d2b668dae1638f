//! NAT64 of fragments (RFC 7915 §5.1.1 and §4.1): forwarded one by one,
//! never reassembled, as rvs forwards every fragment.
//!
//! * IPv6 -> IPv4 ([`write_v4_frag`]): the Fragment header goes, its
//!   fields become the IPv4 ones: identification = the low 16 bits of the
//!   32-bit one, offset and MF copied, DF clear. Frame layout as
//!   [`write_v4`](super::nat64_write_v4)'s: `[Ethernet][20][payload]`.
//! * IPv4 -> IPv6 ([`write_v6_frag`]): a Fragment header follows the IPv6
//!   header (next header 44): identification = the IPv4 one, offset and
//!   M copied. Frame layout `[Ethernet][40][8][payload]`.
//!
//! The first fragment (offset 0) holds the TCP/UDP header: its ports and
//! checksum are rewritten as a whole packet's (the checksum covers the
//! whole datagram; only header words change, so the incremental update
//! stays right). A later fragment's payload is not touched. An IPv4 UDP
//! datagram without checksum cannot be given one when fragmented (the sum
//! spans fragments rvs never holds together): refused, as RFC 7915 §4.5
//! allows a translator that does not reassemble.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::ipv6::{self, next_header};
use crate::packet::{get_u16, ipv4::proto, set_u16, udp};

use super::nat64::{
    delta_4to6, delta_6to4, header_v4, header_v6, patch_l4, To4, To6, ETH_LEN, L4_OFF_V4, L4_OFF_V6,
};
use super::ForwardError;

/// Where the L4 bytes start in a frame translated to an IPv6 fragment.
pub const L4_OFF_V6_FRAG: usize = L4_OFF_V6 + ipv6::FRAGMENT_HEADER_LEN;

/// A fragment's place in its datagram, as the translated header says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragFields {
    /// The identification (IPv4: 16 bits, IPv6: 32).
    pub ident: u32,
    /// The offset of the fragment's data, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// Client (IPv6) fragment -> server (IPv4). `frame` is `[Ethernet][20
/// bytes][the fragment's data]`; `old` the IPv6 addresses; `t` the new
/// header (its ports used only for a first fragment). A first fragment's
/// SYN MSS is clamped to `mss_max`. The frame is unchanged on error.
pub fn write_v4_frag(
    frame: &mut [u8],
    old: (Ipv6Addr, Ipv6Addr),
    protocol: u8,
    t: &To4,
    mss_max: u16,
    fr: FragFields,
) -> Result<(), ForwardError> {
    let first = fr.offset == 0;
    let min = if first { udp::HEADER_LEN } else { 1 };
    if frame.len() < L4_OFF_V4 + min {
        return Err(ForwardError::Mismatch);
    }
    let total = u16::try_from(frame.len() - ETH_LEN).map_err(|_| ForwardError::TooBig)?;
    let (head, seg) = frame.split_at_mut(L4_OFF_V4);
    if first {
        if protocol == proto::UDP && get_u16(seg, udp::CHECKSUM_OFFSET) == 0 {
            // Invalid over IPv6 (RFC 8200 §8.1).
            return Err(ForwardError::UnsupportedProtocol);
        }
        let addrs = delta_6to4(old, (t.src, t.dst));
        patch_l4(seg, protocol, (t.sport, t.dport), addrs, mss_max, None)?;
    }
    header_v4(
        head,
        total,
        protocol,
        t,
        (fr.ident as u16, fr.offset, fr.more, false),
    );
    Ok(())
}

/// Server (IPv4) fragment -> client (IPv6). `frame` is `[Ethernet][48
/// bytes][the fragment's data]`; `old` the IPv4 addresses; `t` the new
/// header (its ports used only for a first fragment). The frame is
/// unchanged on error.
pub fn write_v6_frag(
    frame: &mut [u8],
    old: (Ipv4Addr, Ipv4Addr),
    protocol: u8,
    t: &To6,
    mss_max: u16,
    fr: FragFields,
) -> Result<(), ForwardError> {
    let first = fr.offset == 0;
    let min = if first { udp::HEADER_LEN } else { 1 };
    if frame.len() < L4_OFF_V6_FRAG + min {
        return Err(ForwardError::Mismatch);
    }
    let payload = u16::try_from(frame.len() - L4_OFF_V6).map_err(|_| ForwardError::TooBig)?;
    let (head, seg) = frame.split_at_mut(L4_OFF_V6_FRAG);
    if first {
        if protocol == proto::UDP && get_u16(seg, udp::CHECKSUM_OFFSET) == 0 {
            // No checksum, and none can be computed over one fragment.
            return Err(ForwardError::Fragmented);
        }
        let addrs = delta_4to6(old, (t.src, t.dst));
        patch_l4(
            seg,
            protocol,
            (t.sport, t.dport),
            addrs,
            mss_max,
            Some((t.src, t.dst)),
        )?;
    }
    header_v6(head, payload, next_header::FRAGMENT, t);
    let fh = &mut head[L4_OFF_V6..];
    fh[0] = protocol;
    fh[1] = 0;
    set_u16(fh, 2, fr.offset & 0xFFF8 | u16::from(fr.more));
    fh[4..8].copy_from_slice(&fr.ident.to_be_bytes());
    Ok(())
}
