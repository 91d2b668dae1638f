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
//! stays zero.
//!
//! Fragments, as for NAT: the first fragment carries the L4 header and gets
//! the whole rewrite (the L4 checksum covers the whole datagram, and the
//! incremental update stays right because only header words change); a
//! later fragment has no ports, so only its IP header changes (both
//! addresses, TTL, IP checksum).
//!
//! ICMP errors quoting a full-NAT packet ([`icmp_error_fnat`]) get both
//! outer addresses and both quoted endpoints translated, as
//! `icmp_nat.rs` does for the one end NAT changes.

use std::net::Ipv4Addr;

use crate::packet::checksum::Delta;
use crate::packet::icmp;
use crate::packet::ipv4::{self, proto};
use crate::packet::{get_u16, set_u16, tcp, udp, IcmpPacket, Ipv4Frame, Ipv4Packet, L4View};

use super::routed::ttl_delta;
use super::{icmp_error_parts, ForwardError};

/// Rewrites source to `src:sport` and destination to `dst:dport`, TTL - 1,
/// checksums updated incrementally; a later fragment (no L4 header) gets
/// the addresses only and the ports are not used. The frame is unchanged
/// on error.
#[inline]
pub fn fnat_rewrite<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
) -> Result<(), ForwardError> {
    let (mut ip, l4) = frame.split_mut();
    if matches!(l4, L4View::Other) {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let ttl = ttl_delta(ip.ttl())?;
    let addrs = Delta::new().addr(ip.src(), src).addr(ip.dst(), dst);
    // L4 first: the only step that can still fail.
    match l4 {
        L4View::Tcp(mut t) => {
            let d = addrs.word(t.src_port(), sport).word(t.dst_port(), dport);
            t.set_src_port(sport);
            t.set_dst_port(dport);
            t.set_checksum(d.apply(t.checksum()));
        }
        L4View::Udp(mut u) => {
            let d = addrs.word(u.src_port(), sport).word(u.dst_port(), dport);
            u.set_src_port(sport);
            u.set_dst_port(dport);
            u.set_checksum(d.apply_udp(u.checksum()));
        }
        // A later fragment: the addresses only.
        L4View::Later => {}
        L4View::Icmp(_) | L4View::Other => return Err(ForwardError::UnsupportedProtocol),
    }
    ip.set_src(src);
    ip.set_dst(dst);
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(addrs.plus(ttl).apply(ip.checksum()));
    Ok(())
}

/// What an ICMP error about a full-NAT connection becomes: the outer
/// source and destination, and the quoted packet's two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpFnat {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub quoted_src: (Ipv4Addr, u16),
    pub quoted_dst: (Ipv4Addr, u16),
}

/// Translates an ICMP error (frag-needed, unreachable, time-exceeded, ...)
/// quoting a TCP/UDP packet of a full-NAT connection: outer addresses as
/// `t` says, TTL - 1; the quoted header's addresses and ports as `t` says,
/// its IP checksum and (when quoted) its TCP/UDP checksum updated
/// incrementally; the ICMP checksum recomputed over the message (rare
/// path). The MTU of a frag-needed passes through unchanged: full-NAT adds
/// no header. Fragmented errors are refused (their ICMP checksum spans
/// fragments). The frame is unchanged on error.
pub fn icmp_error_fnat<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    t: &IcmpFnat,
) -> Result<(), ForwardError> {
    let (mut ip, msg) = icmp_error_parts(frame)?;
    let ttl = ttl_delta(ip.ttl())?;

    // The quoted packet: validate everything before the first write.
    let quote = &mut msg[icmp::HEADER_LEN..];
    let ihl = usize::from(quote[0] & 0x0F) * 4;
    if quote[0] >> 4 != 4 || ihl < ipv4::MIN_HEADER_LEN || quote.len() < ihl + 8 {
        return Err(ForwardError::Mismatch);
    }
    let inner_proto = quote[9];
    if inner_proto != proto::TCP && inner_proto != proto::UDP {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let (qip, ql4) = quote.split_at_mut(ihl);
    let mut qip = Ipv4Packet::new_unchecked(qip);
    let (qsrc, qsport) = t.quoted_src;
    let (qdst, qdport) = t.quoted_dst;
    let inner = Delta::new().addr(qip.src(), qsrc).addr(qip.dst(), qdst);
    qip.set_src(qsrc);
    qip.set_dst(qdst);
    qip.set_checksum(inner.apply(qip.checksum()));
    let l4_delta = inner
        .word(get_u16(ql4, 0), qsport)
        .word(get_u16(ql4, 2), qdport);
    set_u16(ql4, 0, qsport);
    set_u16(ql4, 2, qdport);
    if inner_proto == proto::UDP {
        let ck = get_u16(ql4, udp::CHECKSUM_OFFSET);
        set_u16(ql4, udp::CHECKSUM_OFFSET, l4_delta.apply_udp(ck));
    } else if ql4.len() >= tcp::CHECKSUM_OFFSET + 2 {
        let ck = get_u16(ql4, tcp::CHECKSUM_OFFSET);
        set_u16(ql4, tcp::CHECKSUM_OFFSET, l4_delta.apply(ck));
    }

    IcmpPacket::new_unchecked(msg).fill_checksum();

    let outer = Delta::new()
        .addr(ip.src(), t.outer_src)
        .addr(ip.dst(), t.outer_dst);
    ip.set_src(t.outer_src);
    ip.set_dst(t.outer_dst);
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(outer.plus(ttl).apply(ip.checksum()));
    Ok(())
}
