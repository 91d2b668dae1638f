//! VRRPv3 advertisements for IPv4 (RFC 5798 §5), wire-compatible with
//! keepalived.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IPv4 Address(es)                        |
//! ```
//!
//! The checksum covers the IPv4 pseudo header (source, destination, zero,
//! protocol 112, VRRP length) and then the VRRP packet (RFC 5798 §5.2.8).
//! VRRPv2 summed the VRRP packet alone; a v3 receiver such as keepalived
//! (which, for unicast peers, puts the real unicast destination in the
//! pseudo header) rejects that, so the destination passed to [`encode`] must
//! be the one the packet is sent to: [`MCAST_GROUP`] or the peer.
//!
//! [`decode_ip`] takes the whole IPv4 packet because the checks RFC 5798
//! §7.1 requires live in the IP header (TTL 255, protocol) and the checksum
//! needs its addresses. It does not verify the IPv4 header checksum: the
//! kernel that delivered the packet on a raw socket already has.

use std::net::Ipv4Addr;

use crate::packet::checksum;

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = 112;
/// The VRRP IPv4 multicast group.
pub const MCAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Ethernet address of [`MCAST_GROUP`] (RFC 1112 mapping).
pub const MCAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// The only TTL a VRRP packet may arrive with: it proves the sender is on
/// the same link (RFC 5798 §5.1.1.3).
pub const TTL: u8 = 255;
/// VRRP version this module speaks.
pub const VERSION: u8 = 3;
/// The only VRRP packet type (ADVERTISEMENT).
pub const TYPE_ADVERT: u8 = 1;
/// Fixed part of the VRRP packet, before the addresses.
pub const HEADER_LEN: usize = 8;
/// At most this many addresses fit the 8-bit count field; [`encode`] sends
/// the first `MAX_ADDRS` of a longer list.
pub const MAX_ADDRS: usize = 255;
/// Mask of the 12-bit Max Adver Int field (centiseconds).
pub const INTERVAL_MASK: u16 = 0x0FFF;

/// One advertisement, as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router id.
    pub vrid: u8,
    /// Sender's priority; 0 means "the master is leaving".
    pub priority: u8,
    /// Advertisement interval in centiseconds (12 bits on the wire).
    pub interval_cs: u16,
    /// The virtual addresses the sender owns while master.
    pub addrs: Vec<Ipv4Addr>,
}

/// Why [`decode_ip`] refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    /// Shorter than its IP header, its total length or the VRRP header.
    #[error("truncated packet")]
    Truncated,
    /// IP version is not 4 or IHL < 5.
    #[error("not an IPv4 packet")]
    NotIpv4,
    /// IP protocol is not 112.
    #[error("not a VRRP packet (IP protocol {0})")]
    NotVrrp(u8),
    /// A fragment: adverts are never fragmented and a raw socket delivers
    /// reassembled packets, so this is forged or broken.
    #[error("fragmented VRRP packet")]
    Fragment,
    /// TTL is not 255: the sender is not on our link.
    #[error("bad TTL {0} (must be 255)")]
    BadTtl(u8),
    /// VRRP version is not 3.
    #[error("unsupported VRRP version {0}")]
    BadVersion(u8),
    /// VRRP type is not 1 (ADVERTISEMENT).
    #[error("unknown VRRP type {0}")]
    BadType(u8),
    /// The pseudo-header checksum does not verify.
    #[error("bad VRRP checksum")]
    BadChecksum,
    /// The IP payload length is not 8 + 4 * count, or the IP total length is
    /// shorter than its header.
    #[error("VRRP length does not match the address count")]
    BadLength,
}

/// Encodes the VRRP packet (what follows the IPv4 header) of `a`, sent from
/// `src` to `dst`.
///
/// Only the low 12 bits of `interval_cs` are sent (the reserved bits are
/// zero), and at most [`MAX_ADDRS`] addresses.
pub fn encode(a: &Advert, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let addrs = &a.addrs[..a.addrs.len().min(MAX_ADDRS)];
    let mut p = Vec::with_capacity(HEADER_LEN + 4 * addrs.len());
    p.push((VERSION << 4) | TYPE_ADVERT);
    p.push(a.vrid);
    p.push(a.priority);
    p.push(addrs.len() as u8); // <= MAX_ADDRS
    p.extend_from_slice(&(a.interval_cs & INTERVAL_MASK).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    for addr in addrs {
        p.extend_from_slice(&addr.octets());
    }
    let c = checksum::ipv4_l4_checksum(src, dst, PROTO_VRRP, &p);
    p[6..8].copy_from_slice(&c.to_be_bytes());
    p
}

/// Parses a whole IPv4 packet as a raw socket delivers it (options allowed,
/// trailing bytes past the IP total length ignored).
///
/// Checks, in this order: IPv4 version and IHL, header and total length
/// inside the buffer, protocol 112, not a fragment, TTL 255, VRRP version 3,
/// type 1, IP payload == 8 + 4 * count, then the pseudo-header checksum.
/// The reserved bits above the 12-bit interval are ignored (RFC 5798 §5.2.7).
///
/// Returns `(source, destination, advert)`.
pub fn decode_ip(packet: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr, Advert), AdvertError> {
    if packet.len() < 20 {
        return Err(AdvertError::Truncated);
    }
    let ver = packet[0] >> 4;
    let ihl = usize::from(packet[0] & 0x0F) * 4;
    if ver != 4 || ihl < 20 {
        return Err(AdvertError::NotIpv4);
    }
    if packet.len() < ihl {
        return Err(AdvertError::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < ihl {
        return Err(AdvertError::BadLength);
    }
    if total > packet.len() {
        return Err(AdvertError::Truncated);
    }
    let proto = packet[9];
    if proto != PROTO_VRRP {
        return Err(AdvertError::NotVrrp(proto));
    }
    // MF set or a non-zero fragment offset.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3FFF != 0 {
        return Err(AdvertError::Fragment);
    }
    let ttl = packet[8];
    if ttl != TTL {
        return Err(AdvertError::BadTtl(ttl));
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let vrrp = &packet[ihl..total];
    let advert = decode_vrrp(vrrp)?;
    if !checksum::ipv4_l4_verify(src, dst, PROTO_VRRP, vrrp) {
        return Err(AdvertError::BadChecksum);
    }
    Ok((src, dst, advert))
}

/// Parses the VRRP packet alone (no checksum: it needs the IP addresses).
fn decode_vrrp(p: &[u8]) -> Result<Advert, AdvertError> {
    if p.len() < HEADER_LEN {
        return Err(AdvertError::Truncated);
    }
    let version = p[0] >> 4;
    if version != VERSION {
        return Err(AdvertError::BadVersion(version));
    }
    let kind = p[0] & 0x0F;
    if kind != TYPE_ADVERT {
        return Err(AdvertError::BadType(kind));
    }
    let count = usize::from(p[3]);
    if p.len() != HEADER_LEN + 4 * count {
        return Err(AdvertError::BadLength);
    }
    let addrs = p[HEADER_LEN..]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    Ok(Advert {
        vrid: p[1],
        priority: p[2],
        interval_cs: u16::from_be_bytes([p[4], p[5]]) & INTERVAL_MASK,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);

    /// RFC 1071 from first principles: the plain 32-bit sum of big-endian
    /// 16-bit words (odd byte zero-padded), carries folded back in.
    fn rfc1071_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = u32::from(data[i]) << 8;
            let lo = data.get(i + 1).map_or(0, |b| u32::from(*b));
            acc += hi | lo;
            i += 2;
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        acc as u16
    }

    fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.push(0);
        v.push(PROTO_VRRP);
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v
    }

    /// A full IPv4 packet around a VRRP payload (header checksum filled).
    fn ip(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0xC0, 0, 0, 0, 1, 0, 0, ttl, PROTO_VRRP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        let c = !rfc1071_sum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn sample() -> Advert {
        Advert {
            vrid: 51,
            priority: 100,
            interval_cs: 10,
            addrs: vec![Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 19, 0, 1)],
        }
    }

    #[test]
    fn encode_literal_bytes() {
        let p = encode(&sample(), SRC, MCAST_GROUP);
        assert_eq!(
            &p[..6],
            &[0x31, 51, 100, 2, 0x00, 0x0A],
            "version 3 type 1, vrid, priority, count, rsvd+interval"
        );
        assert_eq!(&p[8..], &[198, 18, 0, 100, 198, 19, 0, 1]);
        // Checksum recomputed independently over pseudo header + packet
        // with the checksum field zeroed.
        let mut z = p.clone();
        z[6] = 0;
        z[7] = 0;
        let mut all = pseudo(SRC, MCAST_GROUP, p.len());
        all.extend_from_slice(&z);
        let want = !rfc1071_sum(&all);
        assert_eq!(u16::from_be_bytes([p[6], p[7]]), want);
        // And the whole thing, checksum included, folds to 0xFFFF.
        let mut all = pseudo(SRC, MCAST_GROUP, p.len());
        all.extend_from_slice(&p);
        assert_eq!(rfc1071_sum(&all), 0xFFFF);
    }

    /// A hand-computed vector: 10.0.0.1 -> 224.0.0.18, vrid 1, priority
    /// 100, interval 100 cs, one address 10.0.0.100.
    #[test]
    fn encode_known_checksum() {
        let a = Advert {
            vrid: 1,
            priority: 100,
            interval_cs: 100,
            addrs: vec![Ipv4Addr::new(10, 0, 0, 100)],
        };
        let p = encode(&a, Ipv4Addr::new(10, 0, 0, 1), MCAST_GROUP);
        // Words: pseudo 0a00 0001 e000 0012 0070 000c,
        // packet 3101 6401 0064 0000 0a00 0064.
        // Sum = 0x1_8a59 -> 0x8a5a; checksum = !0x8a5a = 0x75a5.
        assert_eq!(
            p,
            vec![0x31, 1, 100, 1, 0x00, 0x64, 0x75, 0xa5, 10, 0, 0, 100]
        );
    }

    #[test]
    fn unicast_checksum_uses_the_peer_as_destination() {
        let a = sample();
        let m = encode(&a, SRC, MCAST_GROUP);
        let u = encode(&a, SRC, PEER);
        assert_ne!(m[6..8], u[6..8]);
        let (_, dst, got) = decode_ip(&ip(SRC, PEER, 255, &u)).unwrap();
        assert_eq!((dst, got), (PEER, a));
        // The multicast checksum does not verify when sent unicast.
        assert_eq!(
            decode_ip(&ip(SRC, PEER, 255, &m)),
            Err(AdvertError::BadChecksum)
        );
    }

    #[test]
    fn round_trip_through_ip() {
        let a = sample();
        let pkt = ip(SRC, MCAST_GROUP, 255, &encode(&a, SRC, MCAST_GROUP));
        assert_eq!(decode_ip(&pkt), Ok((SRC, MCAST_GROUP, a)));
    }

    #[test]
    fn round_trip_no_addresses_and_max_addresses() {
        for n in [0usize, 1, 255] {
            let a = Advert {
                vrid: 255,
                priority: 254,
                interval_cs: 4095,
                addrs: (0..n as u32).map(Ipv4Addr::from).collect(),
            };
            let pkt = ip(SRC, MCAST_GROUP, 255, &encode(&a, SRC, MCAST_GROUP));
            assert_eq!(decode_ip(&pkt).unwrap().2, a);
        }
    }

    #[test]
    fn encode_caps_addresses_and_interval() {
        let a = Advert {
            vrid: 1,
            priority: 1,
            interval_cs: 0xF00A,
            addrs: (0..300u32).map(Ipv4Addr::from).collect(),
        };
        let p = encode(&a, SRC, MCAST_GROUP);
        assert_eq!(p.len(), HEADER_LEN + 4 * MAX_ADDRS);
        assert_eq!(p[3], 255);
        assert_eq!(&p[4..6], &[0x00, 0x0A]);
        let got = decode_ip(&ip(SRC, MCAST_GROUP, 255, &p)).unwrap().2;
        assert_eq!(got.interval_cs, 10);
        assert_eq!(got.addrs[..], a.addrs[..255]);
    }

    #[test]
    fn etherparse_builds_a_packet_we_accept() {
        use etherparse::{IpNumber, Ipv4Header};
        let payload = encode(&sample(), SRC, MCAST_GROUP);
        let mut h = Ipv4Header::new(
            payload.len() as u16,
            255,
            IpNumber(PROTO_VRRP),
            SRC.octets(),
            MCAST_GROUP.octets(),
        )
        .unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut pkt = h.to_bytes().to_vec();
        pkt.extend_from_slice(&payload);
        assert_eq!(decode_ip(&pkt).unwrap(), (SRC, MCAST_GROUP, sample()));
        // etherparse agrees on what we built.
        let (hh, rest) = Ipv4Header::from_slice(&pkt).unwrap();
        assert_eq!(hh.protocol, IpNumber(112));
        assert_eq!(hh.time_to_live, 255);
        assert_eq!(rest, &payload[..]);
    }

    #[test]
    fn ip_options_and_padding_are_allowed() {
        let payload = encode(&sample(), SRC, MCAST_GROUP);
        // IHL 6: one 4-byte option (router alert, as keepalived may send).
        let mut pkt = ip(SRC, MCAST_GROUP, 255, &payload);
        pkt[0] = 0x46;
        pkt.splice(20..20, [0x94, 0x04, 0x00, 0x00]);
        let total = pkt.len() as u16;
        pkt[2..4].copy_from_slice(&total.to_be_bytes());
        // Ethernet-style padding after the total length.
        pkt.extend_from_slice(&[0; 6]);
        assert_eq!(decode_ip(&pkt).unwrap().2, sample());
    }

    #[test]
    fn each_check_has_its_error() {
        let good = ip(SRC, MCAST_GROUP, 255, &encode(&sample(), SRC, MCAST_GROUP));
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            f(&mut p);
            decode_ip(&p)
        };
        assert_eq!(bad(&|p| p.truncate(19)), Err(AdvertError::Truncated));
        assert_eq!(bad(&|p| p[0] = 0x65), Err(AdvertError::NotIpv4));
        assert_eq!(bad(&|p| p[0] = 0x44), Err(AdvertError::NotIpv4));
        assert_eq!(bad(&|p| p[0] = 0x4F), Err(AdvertError::Truncated));
        assert_eq!(
            bad(&|p| p[2..4].copy_from_slice(&[0, 19])),
            Err(AdvertError::BadLength)
        );
        assert_eq!(
            bad(&|p| p[2..4].copy_from_slice(&[0, 200])),
            Err(AdvertError::Truncated)
        );
        assert_eq!(bad(&|p| p[9] = 17), Err(AdvertError::NotVrrp(17)));
        assert_eq!(bad(&|p| p[6] = 0x20), Err(AdvertError::Fragment));
        assert_eq!(bad(&|p| p[7] = 0x01), Err(AdvertError::Fragment));
        assert_eq!(bad(&|p| p[8] = 254), Err(AdvertError::BadTtl(254)));
        assert_eq!(bad(&|p| p[20] = 0x21), Err(AdvertError::BadVersion(2)));
        assert_eq!(bad(&|p| p[20] = 0x32), Err(AdvertError::BadType(2)));
        assert_eq!(bad(&|p| p[23] = 3), Err(AdvertError::BadLength));
        assert_eq!(bad(&|p| p[23] = 1), Err(AdvertError::BadLength));
        assert_eq!(bad(&|p| p[22] ^= 1), Err(AdvertError::BadChecksum));
        assert_eq!(bad(&|p| p[12] ^= 1), Err(AdvertError::BadChecksum));
        // Total length cutting the VRRP header short.
        assert_eq!(
            bad(&|p| p[2..4].copy_from_slice(&[0, 24])),
            Err(AdvertError::Truncated)
        );
        // DF is fine.
        assert!(bad(&|p| p[6] = 0x40).is_ok());
        // Reserved bits are ignored on receive (checksum fixed up).
        let mut p = good.clone();
        p[24] |= 0xF0;
        let mut all = pseudo(SRC, MCAST_GROUP, p.len() - 20);
        p[26] = 0;
        p[27] = 0;
        all.extend_from_slice(&p[20..]);
        let c = !rfc1071_sum(&all);
        p[26..28].copy_from_slice(&c.to_be_bytes());
        assert_eq!(decode_ip(&p).unwrap().2.interval_cs, 10);
    }

    #[test]
    fn every_single_bit_flip_of_the_vrrp_part_is_rejected() {
        let good = ip(SRC, MCAST_GROUP, 255, &encode(&sample(), SRC, MCAST_GROUP));
        for byte in 20..good.len() {
            for bit in 0..8 {
                let mut p = good.clone();
                p[byte] ^= 1 << bit;
                // Flipping a reserved bit is caught by the checksum too.
                assert!(decode_ip(&p).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        let good = ip(SRC, MCAST_GROUP, 255, &encode(&sample(), SRC, MCAST_GROUP));
        for n in 0..good.len() {
            assert!(decode_ip(&good[..n]).is_err(), "len {n}");
        }
    }
}
