//! Full-NAT (DPVS's FNAT): both ends of the packet are rewritten, so the
//! real server sees the director as its client and answers it, whatever
//! its routes.
//!
//! * inbound (client:cport -> vip:vport) becomes (laddr:lport ->
//!   server:sport);
//! * reply (server:sport -> laddr:lport) becomes (vip:vport ->
//!   client:cport).
//!
//! One [`Delta`] sums both address changes (IPv4 header and L4 pseudo
//! header) and, for the L4 checksum, both port changes; TTL - 1 goes into
//! the IP checksum only, as for NAT (`nat.rs`). A UDP checksum of zero
//! stays zero. Non-first fragments are not handled here: the data plane
//! does not forward fragments of full-NAT connections.

use std::net::Ipv4Addr;

use crate::packet::checksum::Delta;
use crate::packet::ipv4::proto;
use crate::packet::{tcp, udp, Ipv4Packet, Parsed, TcpPacket, UdpPacket};

use super::routed::ttl_delta;
use super::{split_l3_l4, ForwardError};

/// Rewrites source to `src:sport` and destination to `dst:dport`, TTL - 1,
/// checksums updated incrementally. The frame is unchanged on error.
#[inline]
pub fn fnat_rewrite(
    frame: &mut [u8],
    p: &Parsed,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
) -> Result<(), ForwardError> {
    if p.fragment || !p.has_l4 {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let (ip_bytes, l4) = split_l3_l4(frame, p)?;
    let mut ip = Ipv4Packet::new_unchecked(ip_bytes);
    let ttl = ttl_delta(ip.ttl(), ip.protocol())?;
    let addrs = Delta::new().addr(ip.src(), src).addr(ip.dst(), dst);
    // L4 first: the only step that can still fail.
    match p.protocol {
        proto::TCP => {
            if l4.len() < tcp::MIN_HEADER_LEN {
                return Err(ForwardError::Mismatch);
            }
            let mut t = TcpPacket::new_unchecked(l4);
            let d = addrs.word(t.src_port(), sport).word(t.dst_port(), dport);
            t.set_src_port(sport);
            t.set_dst_port(dport);
            t.set_checksum(d.apply(t.checksum()));
        }
        proto::UDP => {
            if l4.len() < udp::HEADER_LEN {
                return Err(ForwardError::Mismatch);
            }
            let mut u = UdpPacket::new_unchecked(l4);
            let d = addrs.word(u.src_port(), sport).word(u.dst_port(), dport);
            u.set_src_port(sport);
            u.set_dst_port(dport);
            u.set_checksum(d.apply_udp(u.checksum()));
        }
        _ => return Err(ForwardError::UnsupportedProtocol),
    }
    ip.set_src(src);
    ip.set_dst(dst);
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(addrs.plus(ttl).apply(ip.checksum()));
    Ok(())
}
