//! NAT (IPVS "masquerading"): the client talks to VIP:vport, the real server
//! sees the client talking to RS:port, and its replies are rewritten back.
//!
//! * inbound (client -> RS): destination address/port -> real server;
//! * outbound (RS -> client): source address/port -> VIP:vport.
//!
//! Checksums, RFC 1624 style: the address change is summed once into a
//! [`Delta`] and applied to the IPv4 header checksum *and* to the TCP/UDP
//! checksum (the address is in the L4 pseudo header); the port change goes
//! only into the L4 checksum; the TTL decrement only into the IP checksum. A
//! UDP checksum of zero ("none") stays zero.
//!
//! Fragments: the first fragment carries the L4 header and gets the full
//! rewrite (the L4 checksum covers the whole datagram, and an incremental
//! update stays correct because only header words change). A non-first
//! fragment has no ports: only its IP header changes (address, TTL, IP
//! checksum). Finding the connection for it is the data plane's business.

use std::net::Ipv4Addr;

use crate::packet::checksum::Delta;
use crate::packet::{Ipv4Frame, L4View};

use super::routed::ttl_delta;
use super::ForwardError;

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

/// Client -> real server: destination becomes `rs_ip:rs_port`, TTL - 1.
#[inline]
pub fn nat_inbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    rs_ip: Ipv4Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, Side::Dst, rs_ip, rs_port)
}

/// Real server -> client: source becomes `vip:vport`, TTL - 1.
#[inline]
pub fn nat_outbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    vip: Ipv4Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    rewrite(frame, Side::Src, vip, vport)
}

#[inline(always)]
fn rewrite<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    side: Side,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(), ForwardError> {
    let (mut ip, l4) = frame.split_mut();
    let ttl = ttl_delta(ip.ttl())?;
    let old_addr = match side {
        Side::Src => ip.src(),
        Side::Dst => ip.dst(),
    };
    let addr_delta = Delta::new().addr(old_addr, addr);

    // L4 first: it is the only step that can still fail, and nothing has
    // been written yet.
    match l4 {
        // A non-first fragment: no ports.
        L4View::Later => {}
        L4View::Tcp(mut t) => {
            let old_port = match side {
                Side::Src => t.src_port(),
                Side::Dst => t.dst_port(),
            };
            match side {
                Side::Src => t.set_src_port(port),
                Side::Dst => t.set_dst_port(port),
            }
            t.set_checksum(addr_delta.word(old_port, port).apply(t.checksum()));
        }
        L4View::Udp(mut u) => {
            let old_port = match side {
                Side::Src => u.src_port(),
                Side::Dst => u.dst_port(),
            };
            match side {
                Side::Src => u.set_src_port(port),
                Side::Dst => u.set_dst_port(port),
            }
            u.set_checksum(addr_delta.word(old_port, port).apply_udp(u.checksum()));
        }
        L4View::Icmp(_) | L4View::Other => return Err(ForwardError::UnsupportedProtocol),
    }

    match side {
        Side::Src => ip.set_src(addr),
        Side::Dst => ip.set_dst(addr),
    }
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(addr_delta.plus(ttl).apply(ip.checksum()));
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Byte-exact cases with hand-built frames; the etherparse-based
    //! end-to-end checks live in `tests/rewrite_nat.rs`.
    use super::*;
    use crate::packet::ipv4::proto;
    use crate::packet::{checksum, parse_frame};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

    /// eth + ip(ttl, src, dst, proto, frag word) + l4 with valid checksums.
    fn frame(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        protocol: u8,
        frag: u16,
        l4: &[u8],
        l4_ck: bool,
    ) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 7]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[ttl, protocol, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(l4);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        if l4_ck {
            let off = if protocol == proto::TCP { 16 } else { 6 };
            f[34 + off] = 0;
            f[35 + off] = 0;
            let mut c = checksum::ipv4_l4_checksum(src, dst, protocol, &f[34..]);
            if protocol == proto::UDP {
                c = checksum::udp_final(c);
            }
            f[34 + off..36 + off].copy_from_slice(&c.to_be_bytes());
        }
        f
    }

    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&[1, 2, 3, 4]);
        t[12] = 0x50;
        t[13] = 0x18;
        t[14] = 0x20;
        t.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
        t
    }

    fn udp(sport: u16, dport: u16, ck: u16) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&13u16.to_be_bytes());
        u[6..8].copy_from_slice(&ck.to_be_bytes());
        u.extend_from_slice(b"hello");
        u
    }

    #[test]
    fn tcp_inbound_and_outbound_exact() {
        let mut f = frame(CLIENT, VIP, 64, proto::TCP, 0x4000, &tcp(40000, 80), true);
        let p = parse_frame(&f).unwrap();
        nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 8080).unwrap();
        assert_eq!(
            f,
            frame(CLIENT, RS, 63, proto::TCP, 0x4000, &tcp(40000, 8080), true)
        );

        let mut r = frame(RS, CLIENT, 64, proto::TCP, 0, &tcp(8080, 40000), true);
        let p = parse_frame(&r).unwrap();
        nat_outbound(&mut p.ipv4(&mut r).unwrap(), VIP, 80).unwrap();
        assert_eq!(
            r,
            frame(VIP, CLIENT, 63, proto::TCP, 0, &tcp(80, 40000), true)
        );
    }

    #[test]
    fn udp_with_and_without_checksum() {
        let mut f = frame(CLIENT, VIP, 5, proto::UDP, 0, &udp(5353, 53, 0), true);
        let p = parse_frame(&f).unwrap();
        nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 5300).unwrap();
        assert_eq!(
            f,
            frame(CLIENT, RS, 4, proto::UDP, 0, &udp(5353, 5300, 0), true)
        );

        // Zero checksum ("none") stays zero.
        let mut f = frame(CLIENT, VIP, 5, proto::UDP, 0, &udp(5353, 53, 0), false);
        let p = parse_frame(&f).unwrap();
        nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 5300).unwrap();
        assert_eq!(
            f,
            frame(CLIENT, RS, 4, proto::UDP, 0, &udp(5353, 5300, 0), false)
        );
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn non_first_fragment_only_ip_changes() {
        let payload = b"0123456789abcdef".to_vec();
        let mut f = frame(CLIENT, VIP, 9, proto::UDP, 0x0003, &payload, false);
        let p = parse_frame(&f).unwrap();
        assert!(!p.has_l4);
        nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 5300).unwrap();
        assert_eq!(f, frame(CLIENT, RS, 8, proto::UDP, 0x0003, &payload, false));
        // Also fine for protocols NAT does not otherwise handle.
        let mut g = frame(RS, CLIENT, 9, proto::ICMP, 0x0003, &payload, false);
        let p = parse_frame(&g).unwrap();
        nat_outbound(&mut p.ipv4(&mut g).unwrap(), VIP, 1).unwrap();
        assert_eq!(
            g,
            frame(VIP, CLIENT, 8, proto::ICMP, 0x0003, &payload, false)
        );
    }

    #[test]
    fn first_fragment_gets_ports() {
        let mut f = frame(CLIENT, VIP, 9, proto::UDP, 0x2000, &udp(1, 53, 0), true);
        let p = parse_frame(&f).unwrap();
        nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 99).unwrap();
        assert_eq!(
            f,
            frame(CLIENT, RS, 8, proto::UDP, 0x2000, &udp(1, 99, 0), true)
        );
    }

    #[test]
    fn refusals_leave_frame_untouched() {
        let echo = [8u8, 0, 0xF7, 0xFF, 0, 0, 0, 0];
        let mut f = frame(CLIENT, VIP, 64, proto::ICMP, 0, &echo, false);
        let p = parse_frame(&f).unwrap();
        let before = f.clone();
        assert_eq!(
            nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 1),
            Err(ForwardError::UnsupportedProtocol)
        );
        let mut g = frame(CLIENT, VIP, 64, 47, 0, &[0; 8], false);
        let pg = parse_frame(&g).unwrap();
        assert_eq!(
            nat_inbound(&mut pg.ipv4(&mut g).unwrap(), RS, 1),
            Err(ForwardError::UnsupportedProtocol)
        );
        let mut h = frame(CLIENT, VIP, 1, proto::TCP, 0, &tcp(1, 80), true);
        let ph = parse_frame(&h).unwrap();
        let hb = h.clone();
        assert_eq!(
            nat_inbound(&mut ph.ipv4(&mut h).unwrap(), RS, 1),
            Err(ForwardError::TtlExpired)
        );
        assert_eq!(h, hb);
        // A Parsed whose protocol was changed after parsing: the rewrite
        // goes by the layout the parser validated (ICMP), not by the copy.
        let mut q = p;
        q.protocol = proto::TCP;
        assert_eq!(
            nat_inbound(&mut q.ipv4(&mut f).unwrap(), RS, 1),
            Err(ForwardError::UnsupportedProtocol)
        );
        assert_eq!(f, before);
    }
}
