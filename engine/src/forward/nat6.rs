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
//! The frame comes with the layout the parser validated ([`Ipv6Frame`]):
//! no offsets are checked here. On `Err` the frame is unchanged.

use std::net::Ipv6Addr;

use crate::packet::checksum::Delta;
use crate::packet::{Ipv6Frame, L4View6};

use super::ForwardError;

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

/// Client -> real server: destination becomes `rs:rs_port`, hop limit - 1.
#[inline]
pub fn nat6_inbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    rs: Ipv6Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, Side::Dst, rs, rs_port)
}

/// Real server -> client: source becomes `vip:vport`, hop limit - 1.
#[inline]
pub fn nat6_outbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    vip: Ipv6Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, Side::Src, vip, vport)
}

#[inline(always)]
fn rewrite<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    side: Side,
    addr: Ipv6Addr,
    port: u16,
) -> Result<(), ForwardError> {
    let (mut ip, l4) = frame.split_mut();
    if ip.hop_limit() <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    let old = match side {
        Side::Src => ip.src(),
        Side::Dst => ip.dst(),
    };
    let delta = Delta::new().addr6(old, addr);

    // L4 first: the only step that can still fail, nothing written yet.
    // A later fragment has no ports: only its address changes.
    match l4 {
        L4View6::Later => {}
        L4View6::Tcp(mut t) => {
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
        L4View6::Udp(mut u) => {
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
        L4View6::Icmpv6(_) | L4View6::Other => return Err(ForwardError::UnsupportedProtocol),
    }

    match side {
        Side::Src => ip.set_src(addr),
        Side::Dst => ip.set_dst(addr),
    }
    ip.set_hop_limit(ip.hop_limit() - 1);
    Ok(())
}
