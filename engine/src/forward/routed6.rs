//! DR and TUN over IPv6 (issue 13): IPv4's [`dr`](super::dr) and
//! [`tun_encap_in_place`](super::tun_encap_in_place) for an IPv6 frame.
//!
//! * DR: new Ethernet addresses and the hop limit decremented, as IPv4 DR
//!   decrements the TTL (every method is a routed hop); addresses, ports
//!   and checksums are untouched (the hop limit is in no checksum).
//! * TUN: IPv6-in-IPv6 (RFC 2473, next header 41): a 40-byte outer header
//!   from the egress port's IPv6 address to the server, slid in between the
//!   Ethernet header and the untouched (hop-limit-decremented) inner packet,
//!   exactly as IPIP does for IPv4. Traffic class, flow label and hop limit
//!   are copied from the inner header, as IPIP copies TOS and TTL, so the
//!   tunnel is invisible to the path's QoS and ECMP.
//!
//! DR takes the frame with the layout the parser validated
//! ([`Ipv6Frame`]): no offsets are checked. TUN works on the grown buffer
//! (a new frame, not the parsed one) and checks it. On `Err` the frame is
//! unchanged, and no input panics.

use std::net::Ipv6Addr;

use crate::packet::ethernet::{self, MacAddr};
use crate::packet::ipv6::{self, Ipv6Packet};
use crate::packet::Ipv6Frame;

use super::{set_macs, ForwardError};

/// Bytes the outer IPv6 header adds (and headroom the caller prepends).
pub const TUN6_OVERHEAD: usize = ipv6::HEADER_LEN;

/// IPv6 next header of an encapsulated IPv6 packet (RFC 2473).
pub const IPV6_IN_IPV6: u8 = 41;

/// Decrements the hop limit; refuses a hop limit <= 1
/// ([`ForwardError::TtlExpired`]).
#[inline]
pub fn decrement_hop_limit<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
) -> Result<(), ForwardError> {
    let mut ip = frame.ip_mut();
    let hop = ip.hop_limit();
    if hop <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    ip.set_hop_limit(hop - 1);
    Ok(())
}

/// Direct routing over IPv6: destination `rs_mac`, source `port_mac`, hop
/// limit - 1. The server holds the VIP on a loopback.
#[inline]
pub fn dr6<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv6Frame<T>,
    rs_mac: MacAddr,
    port_mac: MacAddr,
) -> Result<(), ForwardError> {
    decrement_hop_limit(frame)?;
    set_macs(frame.bytes_mut(), rs_mac, port_mac)
}

/// `buf` is the frame after prepending [`TUN6_OVERHEAD`] bytes in front of
/// an untagged frame cut to its packet: `[40 headroom][Ethernet 14][inner
/// IPv6 ...]`. Moves the Ethernet header to the front (the only bytes that
/// move) and writes the outer IPv6 header `src -> dst` after it. On error
/// nothing has been written.
pub fn tun6_encap_in_place(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Result<(), ForwardError> {
    const ETH: usize = ethernet::HEADER_LEN;
    const INNER: usize = TUN6_OVERHEAD + ETH;
    let inner = buf.get(INNER..).ok_or(ForwardError::Mismatch)?;
    let ip = Ipv6Packet::new_checked(inner).map_err(|_| ForwardError::Mismatch)?;
    let total = ip.total_len();
    let payload = u16::try_from(total).map_err(|_| ForwardError::TooBig)?;
    let (tc, fl, hop) = (ip.traffic_class(), ip.flow_label(), ip.hop_limit());
    buf.copy_within(TUN6_OVERHEAD..INNER, 0);
    let mut o = Ipv6Packet::new_unchecked(&mut buf[ETH..INNER]);
    o.set_version();
    o.set_traffic_class(tc);
    o.set_flow_label(fl);
    o.set_payload_len(payload);
    o.set_next_header(IPV6_IN_IPV6);
    o.set_hop_limit(hop);
    o.set_src(src);
    o.set_dst(dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_ipv6::parse_ipv6;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);

    fn udp6(hop: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        f.extend_from_slice(&[0x6a, 0xb1, 0x23, 0x45, 0, 9, 17, hop]);
        f.extend_from_slice(&A.octets());
        f.extend_from_slice(&B.octets());
        f.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 9, 0x12, 0x34, b'x']);
        f
    }

    #[test]
    fn dr6_exact_and_refusals() {
        let mut f = udp6(64);
        let p = parse_ipv6(&f).unwrap().unwrap();
        dr6(
            &mut p.ipv6(&mut f[..]).unwrap(),
            MacAddr([0xAA; 6]),
            MacAddr([0xBB; 6]),
        )
        .unwrap();
        let mut want = udp6(63);
        want[..6].fill(0xAA);
        want[6..12].fill(0xBB);
        assert_eq!(f, want);
        for hop in [0, 1] {
            let mut f = udp6(hop);
            let p = parse_ipv6(&f).unwrap().unwrap();
            assert_eq!(
                dr6(
                    &mut p.ipv6(&mut f[..]).unwrap(),
                    MacAddr([1; 6]),
                    MacAddr([2; 6])
                ),
                Err(ForwardError::TtlExpired)
            );
            assert_eq!(f, udp6(hop));
        }
        // A buffer shorter than the packet is not its frame: no view.
        let short = udp6(64);
        assert!(p.ipv6(&short[..60]).is_none());
    }

    #[test]
    fn tun6_outer_header() {
        let inner = udp6(63);
        let mut buf = vec![0xCC; TUN6_OVERHEAD];
        buf.extend_from_slice(&inner);
        tun6_encap_in_place(&mut buf, B, A).unwrap();
        assert_eq!(&buf[..14], &inner[..14]);
        assert_eq!(&buf[14..18], &[0x6a, 0xb1, 0x23, 0x45]);
        assert_eq!(&buf[18..22], &[0, 49, 41, 63]);
        assert_eq!(&buf[22..38], &B.octets());
        assert_eq!(&buf[38..54], &A.octets());
        assert_eq!(&buf[54..], &inner[14..]);
        let mut short = vec![0u8; 60];
        assert_eq!(
            tun6_encap_in_place(&mut short, B, A),
            Err(ForwardError::Mismatch)
        );
        assert_eq!(short, vec![0u8; 60]);
    }
}
