//! The common case of [`parse_frame`](super::parse_frame) in a few fixed-offset
//! loads and compares (issue 16: half the instructions per packet).
//!
//! Almost every frame a director forwards is untagged Ethernet II + IPv4
//! without options, not a fragment, carrying TCP or UDP. For those, every
//! offset is a constant (IP at 14, L4 at 34), so the checks the view
//! constructors make one by one (`EthernetFrame`, `Ipv4Packet`, `TcpPacket`
//! or `UdpPacket` `new_checked`) fold into a handful of compares on bytes
//! read once. Anything else — a VLAN tag, IP options, a fragment, ICMP, a
//! length that does not add up, a bad header checksum — returns `None` and
//! the full parser decides (and names the drop reason).
//!
//! Contract, checked by a property test and by the `parse_frame` fuzz target:
//! whenever [`parse_fast`] returns `Some(p)`, the full parser returns
//! `Ok(p)` for the same bytes — the same validation, the same summary.

use std::net::Ipv4Addr;

use super::checksum;
use super::ethernet::EtherType;
use super::frame::{L4Kind, Layout};
use super::parse::{L3Class, Parsed};
use super::tcp::TcpFlags;

/// Ethernet (14) + IPv4 without options (20).
const L4_OFF: usize = 34;

/// The [`Parsed`] of an untagged, option-less, unfragmented IPv4 TCP/UDP
/// frame with a valid header checksum and consistent lengths; `None` for
/// everything else (the caller then runs the full parser).
#[inline(always)]
pub fn parse_fast(frame: &[u8]) -> Option<Parsed> {
    is_fast_shape(frame).then(|| fast_parsed(frame))
}

/// The checks of [`parse_fast`] alone: the first pass over a burst
/// (`Pipeline::inspect`) makes them and keeps no [`Parsed`] (a struct of
/// some 30 fields written and read back per frame); the established fast
/// path reads what it needs from the frame at the fixed offsets, and
/// [`fast_parsed`] makes the summary when the full path needs it.
#[inline(always)]
pub fn is_fast_shape(frame: &[u8]) -> bool {
    // Ethernet + IPv4 + the 8 bytes every TCP/UDP header starts with.
    let Some(h) = frame.first_chunk::<{ L4_OFF + 8 }>() else {
        return false;
    };
    // EtherType 0x0800, version 4 with IHL 5: two compares with memory
    // (a 3-byte masked word is assembled from a byte and a half-word).
    if u16::from_ne_bytes([h[12], h[13]]) != u16::from_ne_bytes([0x08, 0x00]) || h[14] != 0x45 {
        return false;
    }
    let frag = u16::from_be_bytes([h[20], h[21]]);
    if frag & 0x3FFF != 0 {
        // MF or an offset: the fragment paths of the full parser.
        return false;
    }
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    // The IP packet fits the frame (what follows is Ethernet padding).
    if total > frame.len() - 14 {
        return false;
    }
    let Some(ip) = h[14..L4_OFF].first_chunk::<20>() else {
        return false;
    };
    if !checksum::valid20(ip) {
        return false;
    }
    // The L4 header's own length check, within the IP packet (which makes
    // the packet hold its 20-byte header too).
    match h[23] {
        6 => {
            // TcpPacket::new_checked: a data offset from 20 bytes to what
            // the IP packet holds after its header.
            let Some(&t) = frame.get(L4_OFF + 12) else {
                return false;
            };
            let doff = usize::from(t >> 4) * 4;
            doff >= 20 && doff + 20 <= total
        }
        17 => {
            // UdpPacket::new_checked: 8 bytes to what the IP packet holds.
            let len = usize::from(u16::from_be_bytes([h[L4_OFF + 4], h[L4_OFF + 5]]));
            len >= 8 && len + 20 <= total
        }
        _ => false,
    }
}

/// The [`Parsed`] of a frame [`is_fast_shape`] accepted, read at the fixed
/// offsets without checking again. Its callers (the first pass's `fast`
/// flag) guarantee the shape: any other frame gets a summary of whatever
/// its bytes hold (of zeros if it is too short; never a panic here), whose
/// [`Layout`] need not hold, so `Parsed::ipv4` views of it may panic. The
/// total length is not clamped to keep the layout valid for such frames:
/// that would cost every new connection's SYN and FIN instructions.
#[inline(always)]
pub fn fast_parsed(frame: &[u8]) -> Parsed {
    debug_assert!(is_fast_shape(frame), "fast_parsed of another shape");
    let h: &[u8; L4_OFF + 8] = frame.first_chunk().unwrap_or(&[0; L4_OFF + 8]);
    let protocol = h[23];
    let tcp_flags = match frame.get(L4_OFF + 13) {
        Some(&f) if protocol == 6 => TcpFlags(f),
        _ => TcpFlags::NONE,
    };
    let l4 = if protocol == 6 {
        L4Kind::Tcp
    } else {
        L4Kind::Udp
    };
    let total = u16::from_be_bytes([h[16], h[17]]);
    Parsed {
        l3: L3Class::Ipv4,
        ethertype: EtherType::IPV4,
        layout: Layout::ipv4(14, L4_OFF as u16, total, l4, false, false),
        src: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
        dst: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
        protocol,
        ttl: h[22],
        fragment: false,
        first_fragment: true,
        has_l4: true,
        src_port: u16::from_be_bytes([h[L4_OFF], h[L4_OFF + 1]]),
        dst_port: u16::from_be_bytes([h[L4_OFF + 2], h[L4_OFF + 3]]),
        tcp_flags,
        icmp_type: 0,
        arp_op: 0,
    }
}
