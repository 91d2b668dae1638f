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
use crate::packet::{get_u16, set_u16, tcp, udp, Ipv6Frame, L4View6};

use super::ForwardError;

/// IPv6's minimum MTU: the whole ICMPv6 error packet fits it.
pub const IPV6_MIN_MTU: usize = 1280;

/// Largest frame an ICMPv6 error builder writes.
pub const ICMP6_ERROR_MAX_LEN: usize = ethernet::HEADER_LEN + IPV6_MIN_MTU;

const REPLY_HOP_LIMIT: u8 = 64;

/// ICMPv6 time exceeded, hop limit exceeded in transit (type 3, code 0).
pub fn icmp6_time_exceeded<T: AsRef<[u8]>>(
    orig: &Ipv6Frame<T>,
    src: Ipv6Addr,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(orig, src, msg_type::TIME_EXCEEDED, 0, 0, out)
}

/// ICMPv6 packet too big (type 2, code 0) with the next-hop `mtu`.
pub fn icmp6_packet_too_big<T: AsRef<[u8]>>(
    orig: &Ipv6Frame<T>,
    src: Ipv6Addr,
    mtu: u32,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(orig, src, msg_type::PACKET_TOO_BIG, 0, mtu, out)
}

/// An address that names one node (RFC 4443 2.4 (e.6)).
#[inline]
fn is_node(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_loopback())
}

fn build<T: AsRef<[u8]>>(
    orig: &Ipv6Frame<T>,
    src: Ipv6Addr,
    icmp_type: u8,
    code: u8,
    rest: u32,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    let at = orig.layout();
    let eth = EthernetFrame::new_unchecked(&orig.bytes()[..ethernet::HEADER_LEN]);
    let (p_src, p_dst) = (orig.src(), orig.dst());
    let too_big = icmp_type == msg_type::PACKET_TOO_BIG;
    // A later fragment of ICMPv6 may be one of an error: not answered.
    let about_error = at.protocol() == next_header::ICMPV6
        && orig
            .icmpv6()
            .is_none_or(|m| icmpv6::is_error(m.msg_type()) || m.msg_type() == msg_type::REDIRECT);
    if about_error
        || !is_node(p_src)
        || (!too_big && (p_dst.is_multicast() || eth.dst().is_multicast()))
    {
        return Err(ForwardError::IcmpSuppressed);
    }
    const IP_OFF: usize = ethernet::HEADER_LEN;
    const ICMP_OFF: usize = IP_OFF + ipv6::HEADER_LEN;
    const QUOTE_OFF: usize = ICMP_OFF + icmpv6::HEADER_LEN;
    let packet = orig.packet();
    let quote_len = packet.len().min(ICMP6_ERROR_MAX_LEN - QUOTE_OFF);
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
    ip.set_dst(p_src);

    out[QUOTE_OFF..].copy_from_slice(&packet[..quote_len]);
    let msg = &mut out[ICMP_OFF..];
    msg[..4].fill(0);
    msg[4..8].copy_from_slice(&rest.to_be_bytes());
    let mut m = Icmpv6Packet::new_unchecked(msg);
    m.set_msg_type(icmp_type);
    m.set_code(code);
    m.fill_checksum(src, p_src);
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
pub fn quoted_flow6<T: AsRef<[u8]>>(frame: &Ipv6Frame<T>) -> Option<QuotedFlow6> {
    let quote = frame.quote()?;
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

/// Error from the client side toward the real server: outer destination ->
/// `rs`; quoted source -> `rs:rs_port`.
pub fn icmp6_error_nat_inbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    rs: Ipv6Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    translate(frame, true, rs, rs_port)
}

/// Error from the real-server side toward the client: outer source ->
/// `vip`; quoted destination -> `vip:vport`.
pub fn icmp6_error_nat_outbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    vip: Ipv6Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    translate(frame, false, vip, vport)
}

fn translate<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    inbound: bool,
    addr: Ipv6Addr,
    port: u16,
) -> Result<(), ForwardError> {
    let proto = match frame.quote() {
        Some(q) => Ipv6Packet::new_unchecked(q).next_header(),
        None => return Err(ForwardError::NoQuote),
    };
    if proto != next_header::TCP && proto != next_header::UDP {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let (mut ip, l4) = frame.split_mut();
    let L4View6::Icmpv6(m) = l4 else {
        return Err(ForwardError::NoQuote);
    };
    let msg = m.into_inner();
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
