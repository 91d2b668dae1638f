//! NAT over IPv6 (issue 13, stage 3 in part): the rewrites of
//! [`nat`](super::nat) for an IPv6 frame.
//!
//! * inbound (client -> RS): destination address/port -> real server;
//! * outbound (RS -> client): source address/port -> VIP:vport.
//!
//! IPv6 has no header checksum: the address change (eight words, one
//! [`Delta`]) and the port change go only into the TCP/UDP checksum, whose
//! pseudo header holds both addresses; the hop limit is in no checksum. A
//! hop limit <= 1 is refused ([`ForwardError::TtlExpired`]), as IPv4's TTL.
//! UDP over IPv6 must carry a checksum (RFC 8200 section 8.1): one of zero
//! is refused (a receiver would drop it, and an incremental update of "no
//! checksum" is no checksum), and a computed zero is written as 0xFFFF.
//!
//! Fragments: the first fragment (offset 0) carries the L4 header and gets
//! the full rewrite (the checksum covers the whole datagram and only
//! header words change); a later one has no ports, only its address and
//! hop limit change.
//!
//! Offsets in [`Ipv6Parsed`] are checked against the frame before anything
//! is written: on `Err` the frame is unchanged, and no input panics.

use std::net::Ipv6Addr;

use crate::packet::checksum::Delta;
use crate::packet::ipv6::{self, next_header, Ipv6Packet};
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::packet::{tcp, udp, TcpPacket, UdpPacket};

use super::ForwardError;

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

/// Client -> real server: destination becomes `rs:rs_port`, hop limit - 1.
#[inline]
pub fn nat6_inbound(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    rs: Ipv6Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, p, Side::Dst, rs, rs_port)
}

/// Real server -> client: source becomes `vip:vport`, hop limit - 1.
#[inline]
pub fn nat6_outbound(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    vip: Ipv6Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, p, Side::Src, vip, vport)
}

#[inline(always)]
fn rewrite(
    frame: &mut [u8],
    p: &Ipv6Parsed,
    side: Side,
    addr: Ipv6Addr,
    port: u16,
) -> Result<(), ForwardError> {
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    let end = p.l3_end();
    if l3 + ipv6::HEADER_LEN > l4 || l4 > end || end > frame.len() {
        return Err(ForwardError::Mismatch);
    }
    let (ip_bytes, rest) = frame[l3..end].split_at_mut(l4 - l3);
    let mut ip = Ipv6Packet::new_unchecked(ip_bytes);
    if ip.hop_limit() <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    let old = match side {
        Side::Src => ip.src(),
        Side::Dst => ip.dst(),
    };
    let delta = Delta::new().addr6(old, addr);
    let first = p.fragment.is_none_or(|f| f.offset == 0);

    // L4 first: the only step that can still fail, nothing written yet.
    if first {
        match p.protocol {
            next_header::TCP => {
                if rest.len() < tcp::MIN_HEADER_LEN {
                    return Err(ForwardError::Mismatch);
                }
                let mut t = TcpPacket::new_unchecked(rest);
                let old_port = match side {
                    Side::Src => t.src_port(),
                    Side::Dst => t.dst_port(),
                };
                match side {
                    Side::Src => t.set_src_port(port),
                    Side::Dst => t.set_dst_port(port),
                }
                t.set_checksum(delta.word(old_port, port).apply(t.checksum()));
            }
            next_header::UDP => {
                if rest.len() < udp::HEADER_LEN {
                    return Err(ForwardError::Mismatch);
                }
                let mut u = UdpPacket::new_unchecked(rest);
                if u.checksum() == 0 {
                    return Err(ForwardError::UnsupportedProtocol);
                }
                let old_port = match side {
                    Side::Src => u.src_port(),
                    Side::Dst => u.dst_port(),
                };
                match side {
                    Side::Src => u.set_src_port(port),
                    Side::Dst => u.set_dst_port(port),
                }
                u.set_checksum(delta.word(old_port, port).apply_udp6(u.checksum()));
            }
            _ => return Err(ForwardError::UnsupportedProtocol),
        }
    }

    match side {
        Side::Src => ip.set_src(addr),
        Side::Dst => ip.set_dst(addr),
    }
    ip.set_hop_limit(ip.hop_limit() - 1);
    Ok(())
}
