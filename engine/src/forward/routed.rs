//! What every forwarding method does as a routed hop: new Ethernet addresses
//! and a TTL decrement. DR is exactly that and nothing more.

use crate::packet::checksum::Delta;
use crate::packet::ethernet::{self, MacAddr};
use crate::packet::{Ipv4Frame, Parsed};

use super::ForwardError;

/// True when the packet must not be forwarded (TTL 0 or 1): answer it with
/// [`super::icmp_time_exceeded`] or drop it.
#[inline]
pub fn ttl_expired(p: &Parsed) -> bool {
    p.ttl <= 1
}

/// Sets the Ethernet destination and source (next hop's MAC, our port's).
#[inline]
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), ForwardError> {
    let hdr = frame
        .get_mut(..ethernet::HEADER_LEN)
        .ok_or(ForwardError::Mismatch)?;
    hdr[..6].copy_from_slice(&dst.0);
    hdr[6..12].copy_from_slice(&src.0);
    Ok(())
}

/// Decrements the IPv4 TTL and updates the header checksum incrementally
/// (the TTL shares its 16-bit word with the protocol byte). Refuses TTL <= 1.
#[inline]
pub fn decrement_ttl<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
) -> Result<(), ForwardError> {
    let mut ip = frame.ip_mut();
    let d = ttl_delta(ip.ttl())?;
    ip.set_ttl(ip.ttl() - 1);
    ip.set_checksum(d.apply(ip.checksum()));
    Ok(())
}

/// The checksum delta of `ttl -> ttl - 1`, or `TtlExpired`.
#[inline]
pub(crate) fn ttl_delta(ttl: u8) -> Result<Delta, ForwardError> {
    if ttl <= 1 {
        return Err(ForwardError::TtlExpired);
    }
    // The word (TTL, protocol) drops by 0x100 whatever it holds, so the
    // delta `~old + new` is the constant `0xFFFF - 0x100`: written as that
    // change, it costs nothing per packet.
    Ok(Delta::new().word(0x0100, 0))
}

/// Direct routing: the real server has the VIP on a loopback, so only the
/// Ethernet addresses change (destination `rs_mac`, source `port_mac`) and
/// the TTL is decremented. Addresses and ports are untouched.
#[inline]
pub fn dr<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
    rs_mac: MacAddr,
    port_mac: MacAddr,
) -> Result<(), ForwardError> {
    decrement_ttl(frame)?;
    // Cannot fail: the frame holds an IPv4 packet after its Ethernet header.
    set_macs(frame.bytes_mut(), rs_mac, port_mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, parse_frame, L3Class};

    #[test]
    fn ttl_delta_is_the_word_change() {
        for ttl in 2..=255u8 {
            for protocol in 0..=255u8 {
                let old = u16::from_be_bytes([ttl, protocol]);
                let new = u16::from_be_bytes([ttl - 1, protocol]);
                assert_eq!(ttl_delta(ttl).unwrap(), Delta::new().word(old, new));
            }
        }
        assert!(ttl_delta(1).is_err() && ttl_delta(0).is_err());
    }

    fn udp_frame(ttl: u8) -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // eth
            0x45, 0, 0, 29, 0, 1, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // ip
            0x13, 0x88, 0, 53, 0, 9, 0, 0, b'x', // udp
        ];
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn decrement_matches_full_recompute() {
        for ttl in [2u8, 64, 128, 255] {
            let mut f = udp_frame(ttl);
            let p = parse_frame(&f).unwrap();
            decrement_ttl(&mut p.ipv4(&mut f).unwrap()).unwrap();
            assert_eq!(f, udp_frame(ttl - 1));
            assert_eq!(checksum::sum(&f[14..34]), 0xFFFF);
        }
    }

    #[test]
    fn expired_is_refused_and_untouched() {
        for ttl in [0u8, 1] {
            let mut f = udp_frame(ttl);
            let p = parse_frame(&f).unwrap();
            assert!(ttl_expired(&p));
            let before = f.clone();
            assert_eq!(
                decrement_ttl(&mut p.ipv4(&mut f).unwrap()),
                Err(ForwardError::TtlExpired)
            );
            assert_eq!(
                dr(
                    &mut p.ipv4(&mut f).unwrap(),
                    MacAddr([9; 6]),
                    MacAddr([8; 6])
                ),
                Err(ForwardError::TtlExpired)
            );
            assert_eq!(f, before);
        }
        assert!(!ttl_expired(&parse_frame(&udp_frame(2)).unwrap()));
    }

    #[test]
    fn dr_exact_bytes() {
        let mut f = udp_frame(64);
        let p = parse_frame(&f).unwrap();
        dr(
            &mut p.ipv4(&mut f).unwrap(),
            MacAddr([0xAA; 6]),
            MacAddr([0xBB; 6]),
        )
        .unwrap();
        let mut want = udp_frame(63);
        want[..12].copy_from_slice(&[
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xBB, 0xBB, 0xBB, 0xBB, 0xBB, 0xBB,
        ]);
        assert_eq!(f, want);
    }

    #[test]
    fn set_macs_short_frame() {
        let mut f = [0u8; 13];
        assert_eq!(
            set_macs(&mut f, MacAddr::ZERO, MacAddr::ZERO),
            Err(ForwardError::Mismatch)
        );
        let mut f = [0u8; 14];
        set_macs(&mut f, MacAddr([1; 6]), MacAddr([2; 6])).unwrap();
        assert_eq!(f, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0]);
    }

    #[test]
    fn frame_binds_only_ipv4_that_fits() {
        let f = udp_frame(64);
        let good = parse_frame(&f).unwrap();
        let mut p = good;
        p.l3 = L3Class::Arp;
        assert_eq!(
            super::super::ipv4_frame(&p, &f[..]).err(),
            Some(ForwardError::NotIpv4)
        );
        // Shorter than the IP packet: not the frame it was parsed from.
        assert_eq!(
            super::super::ipv4_frame(&good, &f[..f.len() - 1]).err(),
            Some(ForwardError::Mismatch)
        );
        assert!(super::super::ipv4_frame(&good, &f[..]).is_ok());
    }
}
