//! ICMPv6 errors over IPv6 (issue 13): the ones the director originates as
//! a router ([`icmp6_time_exceeded`], [`icmp6_packet_too_big`]) and the
//! translation of an error quoting a packet of a tracked NAT flow
//! ([`icmp6_error_nat_inbound`] / [`icmp6_error_nat_outbound`], IPv6's
//! [`icmp_nat`](super::icmp_error_nat_inbound)).
//!
//! # Originated errors (RFC 4443)
//!
//! Written into a caller buffer (at most [`ICMP6_ERROR_MAX_LEN`] bytes) from
//! the frame *as received*: Ethernet addresses swapped, IPv6 from `src`
//! (the port's IPv6 address) to the packet's source, hop limit 64, and as
//! much of the offending packet as fits in the IPv6 minimum MTU (1280
//! bytes for the whole ICMPv6 packet, section 2.4 (c)). The checksum
//! covers the pseudo header. Suppressed (section 2.4 (e)): an error about
//! an ICMPv6 error or a redirect, about a packet from an address that is
//! not one node's (unspecified, multicast, loopback), and, except for
//! packet-too-big, about a packet sent to a multicast address (IP or link).
//!
//! # Translated errors
//!
//! Inbound (from the client side about `VIP:vport -> client`): outer
//! destination and quoted source become the server's address and port.
//! Outbound (from a server about `client -> RS:port`): outer source and
//! quoted destination become the VIP and its port. The quoted TCP/UDP
//! checksum is updated incrementally when the quote holds it; the ICMPv6
//! checksum is recomputed (its pseudo header and several quoted words
//! change; rare path); the outer hop limit is decremented.

use std::net::Ipv6Addr;

use crate::packet::checksum::Delta;
use crate::packet::ethernet::{self, EtherType, EthernetFrame};
use crate::packet::icmpv6::{self, msg_type, Icmpv6Packet};
use crate::packet::ipv6::{self, next_header, Ipv6Packet};
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::packet::{get_u16, set_u16, tcp, udp};

use super::ForwardError;

/// IPv6's minimum MTU: the whole ICMPv6 error packet fits it.
pub const IPV6_MIN_MTU: usize = 1280;

/// Largest frame an ICMPv6 error builder writes.
pub const ICMP6_ERROR_MAX_LEN: usize = ethernet::HEADER_LEN + IPV6_MIN_MTU;

const REPLY_HOP_LIMIT: u8 = 64;

/// ICMPv6 time exceeded, hop limit exceeded in transit (type 3, code 0).
pub fn icmp6_time_exceeded(
    orig: &[u8],
    p: &Ipv6Parsed,
    src: Ipv6Addr,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(orig, p, src, msg_type::TIME_EXCEEDED, 0, 0, out)
}

/// ICMPv6 packet too big (type 2, code 0) with the next-hop `mtu`.
pub fn icmp6_packet_too_big(
    orig: &[u8],
    p: &Ipv6Parsed,
    src: Ipv6Addr,
    mtu: u32,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(orig, p, src, msg_type::PACKET_TOO_BIG, 0, mtu, out)
}

/// An address that names one node (RFC 4443 2.4 (e.6)).
#[inline]
fn is_node(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_loopback())
}

fn build(
    orig: &[u8],
    p: &Ipv6Parsed,
    src: Ipv6Addr,
    icmp_type: u8,
    code: u8,
    rest: u32,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    let l3 = usize::from(p.l3_off);
    let end = p.l3_end();
    if l3 < ethernet::HEADER_LEN || l3 + ipv6::HEADER_LEN > end || end > orig.len() {
        return Err(ForwardError::Mismatch);
    }
    let eth = EthernetFrame::new_unchecked(&orig[..ethernet::HEADER_LEN]);
    let too_big = icmp_type == msg_type::PACKET_TOO_BIG;
    let about_error = p.protocol == next_header::ICMPV6
        && (!p.has_l4 || icmpv6::is_error(p.icmp_type) || p.icmp_type == msg_type::REDIRECT);
    if about_error
        || !is_node(p.src)
        || (!too_big && (p.dst.is_multicast() || eth.dst().is_multicast()))
    {
        return Err(ForwardError::IcmpSuppressed);
    }
    const IP_OFF: usize = ethernet::HEADER_LEN;
    const ICMP_OFF: usize = IP_OFF + ipv6::HEADER_LEN;
    const QUOTE_OFF: usize = ICMP_OFF + icmpv6::HEADER_LEN;
    let quote_len = (end - l3).min(ICMP6_ERROR_MAX_LEN - QUOTE_OFF);
    let len = QUOTE_OFF + quote_len;
    let out = out.get_mut(..len).ok_or(ForwardError::BufferTooSmall)?;

    let mut e = EthernetFrame::new_unchecked(&mut out[..IP_OFF]);
    e.set_dst(eth.src());
    e.set_src(eth.dst());
    e.set_ethertype(EtherType::IPV6);

    let mut ip = Ipv6Packet::new_unchecked(&mut out[IP_OFF..ICMP_OFF]);
    ip.set_version();
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len((len - ICMP_OFF) as u16);
    ip.set_next_header(next_header::ICMPV6);
    ip.set_hop_limit(REPLY_HOP_LIMIT);
    ip.set_src(src);
    ip.set_dst(p.src);

    out[QUOTE_OFF..].copy_from_slice(&orig[l3..l3 + quote_len]);
    let msg = &mut out[ICMP_OFF..];
    msg[..4].fill(0);
    msg[4..8].copy_from_slice(&rest.to_be_bytes());
    let mut m = Icmpv6Packet::new_unchecked(msg);
    m.set_msg_type(icmp_type);
    m.set_code(code);
    m.fill_checksum(src, p.src);
    Ok(len)
}

/// The flow an ICMPv6 error quotes: the quoted packet's TCP/UDP 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedFlow6 {
    pub protocol: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The quoted packet of an ICMPv6 error (types 1-4), when it is TCP or UDP
/// right after the quoted fixed header and its ports are in the quote.
/// Quotes with extension headers are not followed (`None`).
pub fn quoted_flow6(frame: &[u8], p: &Ipv6Parsed) -> Option<QuotedFlow6> {
    let (_, quote) = error_parts(frame, p)?;
    let q = Ipv6Packet::new_unchecked(quote);
    let protocol = q.next_header();
    if protocol != next_header::TCP && protocol != next_header::UDP {
        return None;
    }
    let l4 = &quote[ipv6::HEADER_LEN..];
    Some(QuotedFlow6 {
        protocol,
        src: q.src(),
        dst: q.dst(),
        src_port: get_u16(l4, 0),
        dst_port: get_u16(l4, 2),
    })
}

/// `(ICMPv6 message offset, quoted packet)` of an ICMPv6 error types 1-4
/// whose quote holds an IPv6 header and 8 bytes, unfragmented.
fn error_parts<'a>(frame: &'a [u8], p: &Ipv6Parsed) -> Option<(usize, &'a [u8])> {
    if p.protocol != next_header::ICMPV6
        || !p.has_l4
        || !(msg_type::DEST_UNREACHABLE..=msg_type::PARAM_PROBLEM).contains(&p.icmp_type)
        || p.fragment.is_some()
    {
        return None;
    }
    let l4 = usize::from(p.l4_off);
    let quote = frame.get(l4 + icmpv6::HEADER_LEN..p.l3_end())?;
    (quote.len() >= ipv6::HEADER_LEN + 8 && quote[0] >> 4 == 6).then_some((l4, quote))
}

/// Error from the client side toward the real server: outer destination ->
/// `rs`; quoted source -> `rs:rs_port`.
pub fn icmp6_error_nat_inbound(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    rs: Ipv6Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    translate(frame, p, true, rs, rs_port)
}

/// Error from the real-server side toward the client: outer source ->
/// `vip`; quoted destination -> `vip:vport`.
pub fn icmp6_error_nat_outbound(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    vip: Ipv6Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    translate(frame, p, false, vip, vport)
}

fn translate(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    inbound: bool,
    addr: Ipv6Addr,
    port: u16,
) -> Result<(), ForwardError> {
    let l3 = usize::from(p.l3_off);
    if l3 + ipv6::HEADER_LEN > usize::from(p.l4_off) {
        return Err(ForwardError::Mismatch);
    }
    let (l4, proto) = match error_parts(frame, p) {
        Some((l4, q)) => (l4, q[6]),
        None => return Err(ForwardError::NoQuote),
    };
    if proto != next_header::TCP && proto != next_header::UDP {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let end = p.l3_end();
    let (head, msg) = frame[..end].split_at_mut(l4);
    let mut ip = Ipv6Packet::new_unchecked(&mut head[l3..l3 + ipv6::HEADER_LEN]);
    let hop = ip.hop_limit();
    if hop <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    let (qhdr, ql4) = msg[icmpv6::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
    let mut q = Ipv6Packet::new_unchecked(qhdr);
    let (old, port_off) = if inbound { (q.src(), 0) } else { (q.dst(), 2) };
    if inbound {
        q.set_src(addr);
    } else {
        q.set_dst(addr);
    }
    let old_port = get_u16(ql4, port_off);
    set_u16(ql4, port_off, port);
    let d = Delta::new().addr6(old, addr).word(old_port, port);
    if proto == next_header::UDP {
        let ck = get_u16(ql4, udp::CHECKSUM_OFFSET);
        if ck != 0 {
            set_u16(ql4, udp::CHECKSUM_OFFSET, d.apply_udp6(ck));
        }
    } else if ql4.len() >= tcp::CHECKSUM_OFFSET + 2 {
        let ck = get_u16(ql4, tcp::CHECKSUM_OFFSET);
        set_u16(ql4, tcp::CHECKSUM_OFFSET, d.apply(ck));
    }
    if inbound {
        ip.set_dst(addr);
    } else {
        ip.set_src(addr);
    }
    ip.set_hop_limit(hop - 1);
    let (s, t) = (ip.src(), ip.dst());
    Icmpv6Packet::new_unchecked(msg).fill_checksum(s, t);
    Ok(())
}
