//! The IPv6 twin of [`parse_frame`](super::parse_frame): one pass over
//! Ethernet (at most one 802.1Q tag), the IPv6 fixed header, the extension
//! headers and the upper-layer header, producing a `Copy` [`Ipv6Parsed`].
//!
//! Separate from `parse_frame` so the data plane's handling of IPv6 (today:
//! the exception path) does not change until it calls this. Like
//! `parse_frame` it validates lengths only; L4 checksums are not verified.
//!
//! * A non-first fragment has no L4 header: `has_l4` is false and ports,
//!   flags and ICMPv6 fields are zero.
//! * A first fragment of UDP needs only the 8-byte UDP header (its length
//!   field is the whole datagram's).
//! * Anything the walk stops at other than TCP/UDP/ICMPv6 (AH, ESP, No Next
//!   Header, unknown) parses fine with `has_l4 == false`.

use std::net::Ipv6Addr;

use super::ethernet::{EtherType, EthernetFrame};
use super::icmpv6::Icmpv6Packet;
use super::ipv6::{self, next_header, Ipv6Fragment, Ipv6Packet};
use super::tcp::{TcpFlags, TcpPacket};
use super::udp::{self, UdpPacket};
use super::DropReason;

/// Summary of one IPv6 frame. Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Parsed {
    /// VLAN id of the 802.1Q tag, if the frame had one.
    pub vlan: Option<u16>,
    /// Offset of the IPv6 header: 14 untagged, 18 tagged.
    pub l3_off: u16,
    /// Offset of the header that ended the extension walk (`protocol`'s).
    pub l4_off: u16,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (the walk's result, not the first next
    /// header).
    pub protocol: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    /// The IPv6 payload length (the frame may be longer: padding).
    pub payload_len: u16,
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
    pub icmp_code: u8,
}

impl Ipv6Parsed {
    /// One past the IPv6 packet (`l3_off + 40 + payload_len`); later bytes
    /// are Ethernet padding.
    #[inline]
    pub fn l3_end(&self) -> usize {
        usize::from(self.l3_off) + ipv6::HEADER_LEN + usize::from(self.payload_len)
    }

    /// Length of the upper-layer part (from `l4_off` to `l3_end`).
    #[inline]
    pub fn l4_len(&self) -> usize {
        self.l3_end().saturating_sub(usize::from(self.l4_off))
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
    let mut p = Ipv6Parsed {
        vlan: l2.vlan,
        l3_off: l2.l3_off as u16,
        // l3_off <= 18 and l4_off <= 8 * 2048: no overflow.
        l4_off: (l2.l3_off + ipv6::HEADER_LEN + l4_in_payload) as u16,
        src: ip.src(),
        dst: ip.dst(),
        protocol: walk.protocol,
        hop_limit: ip.hop_limit(),
        traffic_class: ip.traffic_class(),
        flow_label: ip.flow_label(),
        payload_len: ip.payload_len(),
        ext_count: walk.count,
        fragment: walk.fragment,
        routing_segments_left: walk.routing_segments_left,
        has_l4: false,
        src_port: 0,
        dst_port: 0,
        tcp_flags: TcpFlags::NONE,
        icmp_type: 0,
        icmp_code: 0,
    };
    if !walk.has_l4_header() {
        return Ok(Some(p));
    }
    let l4 = ip.payload().get(l4_in_payload..).unwrap_or(&[]);
    let fragmented = walk.fragment.is_some_and(|f| f.more);
    match p.protocol {
        next_header::TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            p.src_port = tcp.src_port();
            p.dst_port = tcp.dst_port();
            p.tcp_flags = tcp.flags();
        }
        next_header::UDP if fragmented => {
            if l4.len() < udp::HEADER_LEN {
                return Err(DropReason::TruncatedUdp);
            }
            let u = UdpPacket::new_unchecked(l4);
            p.src_port = u.src_port();
            p.dst_port = u.dst_port();
        }
        next_header::UDP => {
            let u = UdpPacket::new_checked(l4)?;
            p.src_port = u.src_port();
            p.dst_port = u.dst_port();
        }
        next_header::ICMPV6 => {
            let m = Icmpv6Packet::new_checked(l4)?;
            p.icmp_type = m.msg_type();
            p.icmp_code = m.code();
        }
        _ => return Ok(Some(p)),
    }
    p.has_l4 = true;
    Ok(Some(p))
}
