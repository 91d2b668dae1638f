//! Relaying ICMP errors about a NAT connection, as IPVS `ip_vs_nat_icmp`
//! does: an error quotes a packet of the connection, and both the error's
//! outer header and the quoted packet must be translated so the receiver can
//! match it to its own socket.
//!
//! * Inbound (error from the client side, e.g. a router on the client's path
//!   says "fragmentation needed" about our reply `VIP:vport -> client`): outer
//!   destination VIP -> RS, quoted source VIP:vport -> RS:port. The real server
//!   then sees an error about the packet it actually sent.
//! * Outbound (error from the real-server side, e.g. the RS says "port
//!   unreachable" about `client -> RS:port`): outer source -> VIP, quoted
//!   destination RS:port -> VIP:vport. The client sees an error about the
//!   packet it actually sent, coming from the VIP.
//!
//! The data plane finds the connection with
//! [`quoted_flow`](crate::packet::quoted_flow): the quoted packet travelled
//! the opposite way to the error.
//!
//! Checksums: outer IPv4 header and quoted IPv4 header incrementally; the
//! quoted TCP/UDP checksum incrementally when it lies within the quote (UDP
//! always, TCP only if at least 18 bytes were quoted; a zero UDP checksum
//! stays zero); the ICMP checksum is recomputed over the whole message since
//! several quoted words change (rare path). The outer TTL is decremented (we
//! are a routed hop). Fragmented errors are refused: their ICMP checksum
//! spans fragments we do not see.

use std::net::Ipv4Addr;

use crate::packet::checksum::Delta;
use crate::packet::icmp;
use crate::packet::ipv4::{self, proto};
use crate::packet::{get_u16, set_u16, tcp, udp, IcmpPacket, Ipv4Frame, Ipv4Packet};

use super::routed::ttl_delta;
use super::{icmp_error_parts, ForwardError};

/// Error from the client side toward the real server: outer destination ->
/// `rs_ip`; quoted source -> `rs_ip:rs_port`.
pub fn icmp_error_nat_inbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    rs_ip: Ipv4Addr,
    rs_port: u16,
) -> Result<(), ForwardError> {
    translate(frame, Dir::Inbound, rs_ip, rs_port)
}

/// Error from the real-server side toward the client: outer source -> `vip`;
/// quoted destination -> `vip:vport`.
pub fn icmp_error_nat_outbound<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    vip: Ipv4Addr,
    vport: u16,
) -> Result<(), ForwardError> {
    translate(frame, Dir::Outbound, vip, vport)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Inbound,
    Outbound,
}

fn translate<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    dir: Dir,
    addr: Ipv4Addr,
    port: u16,
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
    let (old_inner, port_off) = match dir {
        Dir::Inbound => (qip.src(), 0),
        Dir::Outbound => (qip.dst(), 2),
    };
    let inner_delta = Delta::new().addr(old_inner, addr);
    match dir {
        Dir::Inbound => qip.set_src(addr),
        Dir::Outbound => qip.set_dst(addr),
    }
    qip.set_checksum(inner_delta.apply(qip.checksum()));

    let old_port = get_u16(ql4, port_off);
    set_u16(ql4, port_off, port);
    let l4_delta = inner_delta.word(old_port, port);
    if inner_proto == proto::UDP {
        let ck = get_u16(ql4, udp::CHECKSUM_OFFSET);
        set_u16(ql4, udp::CHECKSUM_OFFSET, l4_delta.apply_udp(ck));
    } else if ql4.len() >= tcp::CHECKSUM_OFFSET + 2 {
        let ck = get_u16(ql4, tcp::CHECKSUM_OFFSET);
        set_u16(ql4, tcp::CHECKSUM_OFFSET, l4_delta.apply(ck));
    }

    IcmpPacket::new_unchecked(msg).fill_checksum();

    let old_outer = match dir {
        Dir::Inbound => ip.dst(),
        Dir::Outbound => ip.src(),
    };
    match dir {
        Dir::Inbound => ip.set_dst(addr),
        Dir::Outbound => ip.set_src(addr),
    }
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(
        Delta::new()
            .addr(old_outer, addr)
            .plus(ttl)
            .apply(ip.checksum()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Byte-exact checks against hand-built expected frames; etherparse
    //! cross-checks live in `tests/rewrite_icmp.rs`.
    use super::*;
    use crate::packet::{checksum, parse_frame};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

    fn ip(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 9, 0x40, 0, ttl, protocol, 0, 0]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, with_ck: bool) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&12u16.to_be_bytes());
        u.extend_from_slice(b"data");
        if with_ck {
            let c = checksum::udp_final(checksum::ipv4_l4_checksum(src, dst, 17, &u));
            u[6..8].copy_from_slice(&c.to_be_bytes());
        }
        u
    }

    fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x10;
        let c = checksum::ipv4_l4_checksum(src, dst, 6, &t);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    /// An ICMP error frame (type/code/rest) from `src` to `dst`, quoting
    /// `quote_len` bytes of `inner`.
    fn err_frame(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        t: u8,
        code: u8,
        inner: &[u8],
        quote_len: usize,
    ) -> Vec<u8> {
        let mut m = vec![t, code, 0, 0, 0, 0, 0x05, 0xDC];
        m.extend_from_slice(&inner[..quote_len]);
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip(src, dst, ttl, 1, &m));
        f
    }

    #[test]
    fn inbound_udp_frag_needed() {
        // Router on the client path: our reply VIP:53 -> client:5000 was too big.
        let reply = ip(VIP, CLIENT, 63, 17, &udp(VIP, CLIENT, 53, 5000, true));
        let mut f = err_frame(ROUTER, VIP, 64, 3, 4, &reply, 28);
        let p = parse_frame(&f).unwrap();
        icmp_error_nat_inbound(&mut p.ipv4(&mut f).unwrap(), RS, 5353).unwrap();
        let sent = ip(RS, CLIENT, 63, 17, &udp(RS, CLIENT, 5353, 5000, true));
        assert_eq!(f, err_frame(ROUTER, RS, 63, 3, 4, &sent, 28));
        let q = parse_frame(&f).unwrap();
        assert_eq!(crate::packet::quoted_flow(&f, &q).unwrap().src_port, 5353);
    }

    #[test]
    fn outbound_udp_port_unreachable_zero_checksum() {
        // RS says port unreachable about client:5000 -> RS:5353 (no UDP ck).
        let fwd = ip(CLIENT, RS, 63, 17, &udp(CLIENT, RS, 5000, 5353, false));
        let mut f = err_frame(RS, CLIENT, 64, 3, 3, &fwd, 32);
        let p = parse_frame(&f).unwrap();
        icmp_error_nat_outbound(&mut p.ipv4(&mut f).unwrap(), VIP, 53).unwrap();
        let orig = ip(CLIENT, VIP, 63, 17, &udp(CLIENT, VIP, 5000, 53, false));
        assert_eq!(f, err_frame(VIP, CLIENT, 63, 3, 3, &orig, 32));
    }

    #[test]
    fn outbound_tcp_full_quote_and_short_quote() {
        let fwd = ip(CLIENT, RS, 63, 6, &tcp(CLIENT, RS, 40000, 8080));
        let orig = ip(CLIENT, VIP, 63, 6, &tcp(CLIENT, VIP, 40000, 80));
        for quote in [28usize, 40] {
            let mut f = err_frame(RS, CLIENT, 9, 11, 0, &fwd, quote);
            let p = parse_frame(&f).unwrap();
            icmp_error_nat_outbound(&mut p.ipv4(&mut f).unwrap(), VIP, 80).unwrap();
            assert_eq!(
                f,
                err_frame(VIP, CLIENT, 8, 11, 0, &orig, quote),
                "quote {quote}"
            );
        }
    }

    #[test]
    fn refusals() {
        let fwd = ip(CLIENT, RS, 63, 17, &udp(CLIENT, RS, 5000, 5353, true));
        let check = |frame: &[u8], want: ForwardError| {
            let p = parse_frame(frame).unwrap();
            let mut g = frame.to_vec();
            let mut fr = p.ipv4(&mut g).unwrap();
            assert_eq!(icmp_error_nat_outbound(&mut fr, VIP, 53), Err(want));
            assert_eq!(g, frame);
        };
        // A quote too short to hold the ports; an echo request.
        check(
            &err_frame(RS, CLIENT, 64, 3, 3, &fwd, 27),
            ForwardError::NoQuote,
        );
        check(
            &err_frame(RS, CLIENT, 64, 8, 0, &fwd, 28),
            ForwardError::NoQuote,
        );
        // A fragment (MF set).
        let mut frag = err_frame(RS, CLIENT, 64, 3, 3, &fwd, 28);
        frag[20] |= 0x20;
        frag[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&frag[14..34]);
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        check(&frag, ForwardError::Fragmented);
        check(
            &err_frame(RS, CLIENT, 1, 3, 3, &fwd, 28),
            ForwardError::TtlExpired,
        );
        let gre = ip(CLIENT, RS, 63, 47, &[0u8; 8]);
        check(
            &err_frame(RS, CLIENT, 64, 3, 3, &gre, 28),
            ForwardError::UnsupportedProtocol,
        );
    }
}
