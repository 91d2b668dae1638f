//! The IPv6 twin of [`parse_frame`](super::parse_frame): one pass over
//! Ethernet (at most one 802.1Q tag), the IPv6 fixed header, the extension
//! headers and the upper-layer header, producing a `Copy` [`Ipv6Parsed`]:
//! where the headers are (a [`Layout6`], which only this parser makes) and
//! the fields the path decides with, decoded once. The rewrites take the
//! frame with its layout as one value, [`Ipv6Frame`]
//! (`Ipv6Parsed::ipv6(buf)`, `frame6.rs`).
//!
//! Separate from `parse_frame` so the IPv4 path does not pay for IPv6.
//! Like `parse_frame` it validates lengths only; L4 checksums are not
//! verified.
//!
//! * A non-first fragment has no L4 header: `has_l4` is false, its layout
//!   says [`L4Kind::Later`], and ports, flags and the ICMPv6 type are zero.
//! * A first fragment of UDP needs only the 8-byte UDP header (its length
//!   field is the whole datagram's).
//! * Anything the walk stops at other than TCP/UDP/ICMPv6 (AH, ESP, No Next
//!   Header, unknown) parses fine with `has_l4 == false`.

use std::net::Ipv6Addr;

use super::ethernet::{EtherType, EthernetFrame};
use super::frame::L4Kind;
use super::frame6::{Ipv6Frame, Layout6};
use super::icmpv6::Icmpv6Packet;
use super::ipv6::{self, next_header, Ipv6Fragment, Ipv6Packet};
use super::parse_fast6::{is_fast_shape6, L4_OFF6};
use super::tcp::{TcpFlags, TcpPacket};
use super::udp::{self, UdpPacket};
use super::DropReason;

/// Summary of one IPv6 frame: where its headers are ([`Layout6`], private:
/// only the parser makes one) and the fields the path decides with (the
/// flow key, the protocol, the fragment, the TCP flags, the ICMPv6 type,
/// the hop limit), decoded once. The rewrites take the frame with its
/// layout ([`Ipv6Parsed::ipv6`]); fields read once (traffic class, flow
/// label, lengths, offsets) are read from the frame or the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Parsed {
    /// VLAN id of the 802.1Q tag, if the frame had one.
    pub vlan: Option<u16>,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (the walk's result, not the first next
    /// header).
    pub protocol: u8,
    pub hop_limit: u8,
    /// Extension headers walked.
    pub ext_count: u8,
    /// The fragment header, if any.
    pub fragment: Option<Ipv6Fragment>,
    /// Segments left of a routing header, if any.
    pub routing_segments_left: Option<u8>,
    /// The TCP/UDP/ICMPv6 header was parsed.
    pub has_l4: bool,
    /// TCP/UDP ports; 0 when `has_l4` is false or for ICMPv6.
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: TcpFlags,
    pub icmp_type: u8,
    layout: Layout6,
}

impl Ipv6Parsed {
    /// The frame this summary was parsed from, bound to its layout: `None`
    /// when `frame` is shorter than the IPv6 packet (not that frame). The
    /// layout's offsets were validated by the parser.
    #[inline(always)]
    pub fn ipv6<T: AsRef<[u8]>>(&self, frame: T) -> Option<Ipv6Frame<T>> {
        Ipv6Frame::bind(frame, self.layout)
    }

    #[inline(always)]
    pub fn layout(&self) -> &Layout6 {
        &self.layout
    }

    /// Offset of the IPv6 header: 14 untagged, 18 tagged.
    #[inline(always)]
    pub fn l3_off(&self) -> usize {
        self.layout.l3_off()
    }

    /// Offset of the header that ended the extension walk (`protocol`'s).
    #[inline(always)]
    pub fn l4_off(&self) -> usize {
        self.layout.l4_off()
    }

    /// One past the IPv6 packet (`l3_off + 40 + payload_len`); later bytes
    /// are padding.
    #[inline(always)]
    pub fn l3_end(&self) -> usize {
        self.layout.l3_end()
    }

    /// Length of the upper-layer part (from `l4_off` to `l3_end`).
    #[inline(always)]
    pub fn l4_len(&self) -> usize {
        self.layout.l4_len()
    }

    /// The IPv6 packet's length (fixed header and payload), as IPVS counts
    /// bytes.
    #[inline(always)]
    pub fn ip_len(&self) -> usize {
        self.layout.ip_len()
    }

    /// More fragments or a non-zero offset (an atomic fragment is not one).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| !f.is_atomic())
    }
}

/// Parses an IPv6 frame, untagged or behind one 802.1Q tag. `Ok(None)` when
/// the frame is not IPv6 (the caller's other parser handles it). Never
/// panics, never allocates, at most [`ipv6::MAX_EXT_HEADERS`] steps.
#[inline]
pub fn parse_ipv6(frame: &[u8]) -> Result<Option<Ipv6Parsed>, DropReason> {
    let eth = EthernetFrame::new_checked(frame)?;
    let l2 = eth.untag()?;
    if l2.ethertype != EtherType::IPV6 {
        return Ok(None);
    }
    let ip = Ipv6Packet::new_checked(&frame[l2.l3_off..])?;
    let walk = ip.walk()?;
    let l4_in_payload = usize::from(walk.l4_off);
    // l3_off <= 18 and l4_off <= 8 * 2048: no overflow.
    let l3_off = l2.l3_off as u16;
    let l4_off = (l2.l3_off + ipv6::HEADER_LEN + l4_in_payload) as u16;
    let mut p = Ipv6Parsed {
        vlan: l2.vlan,
        src: ip.src(),
        dst: ip.dst(),
        protocol: walk.protocol,
        hop_limit: ip.hop_limit(),
        ext_count: walk.count,
        fragment: walk.fragment,
        routing_segments_left: walk.routing_segments_left,
        has_l4: false,
        src_port: 0,
        dst_port: 0,
        tcp_flags: TcpFlags::NONE,
        icmp_type: 0,
        // Replaced below on every way out.
        layout: Layout6::new(l3_off, l4_off, 0, 0, L4Kind::Other, false, frame),
    };
    let (payload_len, protocol) = (ip.payload_len(), walk.protocol);
    // What Layout6's invariants rest on: new_checked above (40 +
    // payload_len <= the bytes after l3_off), the walk (every extension
    // header inside the payload: l4_off <= l3_end), and the L4 checks
    // below (the header named fits in l4_off..l3_end).
    let at = |l4, unfragmented| {
        Layout6::new(
            l3_off,
            l4_off,
            payload_len,
            protocol,
            l4,
            unfragmented,
            frame,
        )
    };
    if !walk.has_l4_header() {
        let later = walk.fragment.is_some_and(|f| f.offset != 0);
        p.layout = at(if later { L4Kind::Later } else { L4Kind::Other }, false);
        return Ok(Some(p));
    }
    let l4 = ip.payload().get(l4_in_payload..).unwrap_or(&[]);
    let fragmented = walk.fragment.is_some_and(|f| f.more);
    let kind = match p.protocol {
        next_header::TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            p.src_port = tcp.src_port();
            p.dst_port = tcp.dst_port();
            p.tcp_flags = tcp.flags();
            L4Kind::Tcp
        }
        next_header::UDP if fragmented => {
            if l4.len() < udp::HEADER_LEN {
                return Err(DropReason::TruncatedUdp);
            }
            let u = UdpPacket::new_unchecked(l4);
            p.src_port = u.src_port();
            p.dst_port = u.dst_port();
            L4Kind::Udp
        }
        next_header::UDP => {
            let u = UdpPacket::new_checked(l4)?;
            p.src_port = u.src_port();
            p.dst_port = u.dst_port();
            L4Kind::Udp
        }
        next_header::ICMPV6 => {
            let m = Icmpv6Packet::new_checked(l4)?;
            p.icmp_type = m.msg_type();
            L4Kind::Icmp
        }
        _ => {
            p.layout = at(L4Kind::Other, false);
            return Ok(Some(p));
        }
    };
    p.has_l4 = true;
    p.layout = at(kind, walk.fragment.is_none());
    Ok(Some(p))
}

/// [`parse_ipv6`]'s summary of a frame of the common IPv6 shape
/// ([`is_fast_shape6`]: untagged, TCP/UDP right after the fixed header),
/// read at fixed offsets without the walk: the first packet of a flow on
/// the new-flow path (`pipeline/transition6.rs`), whose frame the first
/// pass found of that shape. `None` for any other frame. Equal to
/// `parse_ipv6(frame)` whenever it is `Some` (parse_fast6.rs's tests check
/// it on every frame they make).
#[inline(always)]
pub fn parse_fast_ipv6(frame: &[u8]) -> Option<Ipv6Parsed> {
    if !is_fast_shape6(frame) {
        return None;
    }
    let h = frame.first_chunk::<{ L4_OFF6 + 8 }>()?;
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[at..at + 16]);
        Ipv6Addr::from(a)
    };
    let protocol = h[20];
    let (kind, tcp_flags) = if protocol == next_header::TCP {
        (L4Kind::Tcp, TcpFlags(*frame.get(L4_OFF6 + 13)?))
    } else {
        (L4Kind::Udp, TcpFlags::NONE)
    };
    let payload_len = u16::from_be_bytes([h[18], h[19]]);
    Some(Ipv6Parsed {
        vlan: None,
        src: addr(22),
        dst: addr(38),
        protocol,
        hop_limit: h[21],
        ext_count: 0,
        fragment: None,
        routing_segments_left: None,
        has_l4: true,
        src_port: u16::from_be_bytes([h[L4_OFF6], h[L4_OFF6 + 1]]),
        dst_port: u16::from_be_bytes([h[L4_OFF6 + 2], h[L4_OFF6 + 3]]),
        tcp_flags,
        icmp_type: 0,
        // The shape: IPv6 at 14, the L4 header (which fits) at 54.
        layout: Layout6::new(14, L4_OFF6 as u16, payload_len, protocol, kind, true, frame),
    })
}
