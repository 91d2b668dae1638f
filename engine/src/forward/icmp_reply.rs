//! ICMP errors the director originates as a router: time exceeded (TTL ran
//! out here) and fragmentation needed (the packet, after encapsulation, does
//! not fit the path and has DF set).
//!
//! The builders write a complete frame into a caller-provided buffer (an mbuf
//! from the pool; at most [`ICMP_ERROR_MAX_LEN`] bytes) and return its length.
//! Call them on the frame *as received* (before any rewrite): the quote must
//! be what the sender sent, so it can match it to its socket.
//!
//! Reply frame: Ethernet addresses swapped (the sender's MAC becomes the
//! destination, the MAC it sent to, ours, the source); IPv4 from `src` (the
//! director's address on that port) to the original source, TOS 0xC0
//! (internetwork control, as Linux uses for ICMP errors), TTL 64, DF, ident 0;
//! ICMP quoting the original IP header (options included) and the first 8
//! bytes of its payload.
//!
//! RFC 1122 3.2.2 / RFC 1812 4.3.2.7: no error about an ICMP error (or any
//! non-query ICMP type), about a non-first fragment, about a packet sent to a
//! broadcast or multicast address (link or IP), or from a source that does not
//! identify a single host. Those return [`ForwardError::IcmpSuppressed`].

use std::net::Ipv4Addr;

use crate::packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::packet::icmp::{self, msg_type, unreach, IcmpPacket};
use crate::packet::ipv4::{self, proto};
use crate::packet::{Ipv4Frame, Ipv4Packet};

use super::ForwardError;

/// Largest frame a builder writes: Ethernet + IPv4 + ICMP header + a quote
/// of a 60-byte header and 8 bytes.
pub const ICMP_ERROR_MAX_LEN: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + ipv4::MAX_HEADER_LEN + 8;

const TOS_INTERNETWORK_CONTROL: u8 = 0xC0;
const REPLY_TTL: u8 = 64;

/// ICMP time exceeded in transit (type 11, code 0) in reply to `orig`.
pub fn icmp_time_exceeded<T: AsRef<[u8]>>(
    orig: &Ipv4Frame<T>,
    src: Ipv4Addr,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(
        orig,
        src,
        msg_type::TIME_EXCEEDED,
        icmp::time_exceeded::TTL,
        0,
        out,
    )
}

/// ICMP destination unreachable, fragmentation needed and DF set (type 3,
/// code 4) with the next-hop `mtu` (RFC 1191), in reply to `orig`.
pub fn icmp_frag_needed<T: AsRef<[u8]>>(
    orig: &Ipv4Frame<T>,
    src: Ipv4Addr,
    mtu: u16,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    build(
        orig,
        src,
        msg_type::DEST_UNREACHABLE,
        unreach::FRAG_NEEDED,
        u32::from(mtu),
        out,
    )
}

/// ICMP types that are queries/replies, about which an error may be sent.
#[inline]
fn is_query(t: u8) -> bool {
    matches!(t, 0 | 8 | 9 | 10 | 13..=18)
}

/// A source that identifies one host (RFC 1812 4.3.2.7).
#[inline]
fn is_host_source(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        && a.octets()[0] < 240
}

fn build<T: AsRef<[u8]>>(
    orig: &Ipv4Frame<T>,
    src: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    rest: u32,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    let at = orig.layout();
    let l3 = at.l3_off();
    let quote_len = at.header_len() + at.l4_len().min(8);
    let quote = &orig.bytes()[l3..l3 + quote_len];
    let eth = EthernetFrame::new_unchecked(&orig.bytes()[..ethernet::HEADER_LEN]);
    let ip = orig.ip();
    let about_icmp_error = orig.icmp().is_some_and(|m| !is_query(m.msg_type()));
    if !at.is_first_fragment()
        || about_icmp_error
        || !is_host_source(ip.src())
        || ip.dst().is_broadcast()
        || ip.dst().is_multicast()
        || eth.dst().is_multicast()
    {
        return Err(ForwardError::IcmpSuppressed);
    }
    let to = ip.src();

    const IP_OFF: usize = ethernet::HEADER_LEN;
    const ICMP_OFF: usize = IP_OFF + ipv4::MIN_HEADER_LEN;
    const QUOTE_OFF: usize = ICMP_OFF + icmp::HEADER_LEN;
    let len = QUOTE_OFF + quote_len;
    let out = out.get_mut(..len).ok_or(ForwardError::BufferTooSmall)?;
    out.fill(0);

    let (reply_dst_mac, reply_src_mac): (MacAddr, MacAddr) = (eth.src(), eth.dst());
    let mut e = EthernetFrame::new_unchecked(&mut out[..IP_OFF]);
    e.set_dst(reply_dst_mac);
    e.set_src(reply_src_mac);
    e.set_ethertype(EtherType::IPV4);

    let mut ip = Ipv4Packet::new_unchecked(&mut out[IP_OFF..ICMP_OFF]);
    ip.set_version(4);
    ip.set_header_len(ipv4::MIN_HEADER_LEN);
    ip.set_tos(TOS_INTERNETWORK_CONTROL);
    ip.set_total_len((len - IP_OFF) as u16);
    ip.set_dont_frag(true);
    ip.set_ttl(REPLY_TTL);
    ip.set_protocol(proto::ICMP);
    ip.set_src(src);
    ip.set_dst(to);
    ip.fill_checksum();

    out[QUOTE_OFF..].copy_from_slice(quote);
    let mut m = IcmpPacket::new_unchecked(&mut out[ICMP_OFF..]);
    m.set_msg_type(icmp_type);
    m.set_code(code);
    m.set_rest_of_header(rest);
    m.fill_checksum();
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, parse_frame};

    /// The frame as the builders take it.
    fn fr(f: &[u8]) -> Ipv4Frame<&[u8]> {
        parse_frame(f).unwrap().ipv4(f).unwrap()
    }

    /// `f` with its source and destination set and the IP checksum fixed.
    fn with_addrs(f: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut g = f.to_vec();
        g[26..30].copy_from_slice(&src.octets());
        g[30..34].copy_from_slice(&dst.octets());
        g[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        g
    }

    /// An ICMP message of type `t` (TTL 1, from the client).
    fn icmp_frame(t: u8) -> Vec<u8> {
        let mut f = udp_frame(1, b"");
        f[23] = 1;
        f[34..42].copy_from_slice(&[t, 0, 0, 0, 0, 0, 0, 0]);
        with_addrs(&f, CLIENT, VIP)
    }

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const DIR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0C];
    const PMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];

    fn udp_frame(ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = PMAC.to_vec();
        f.extend_from_slice(&CMAC);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (28 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, ttl, 17, 0, 0]);
        f.extend_from_slice(&CLIENT.octets());
        f.extend_from_slice(&VIP.octets());
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x9C, 0x40, 0, 53]);
        f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0xAB, 0xCD]);
        f.extend_from_slice(payload);
        f
    }

    fn expected(t: u8, code: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
        let mut w = CMAC.to_vec();
        w.extend_from_slice(&PMAC);
        w.extend_from_slice(&[0x08, 0x00]);
        let total = (28 + quote.len()) as u16;
        w.extend_from_slice(&[0x45, 0xC0]);
        w.extend_from_slice(&total.to_be_bytes());
        w.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
        w.extend_from_slice(&DIR.octets());
        w.extend_from_slice(&CLIENT.octets());
        let c = checksum::checksum(&w[14..34]);
        w[24..26].copy_from_slice(&c.to_be_bytes());
        w.extend_from_slice(&[t, code, 0, 0]);
        w.extend_from_slice(&rest);
        w.extend_from_slice(quote);
        let c = checksum::checksum(&w[34..]);
        w[36..38].copy_from_slice(&c.to_be_bytes());
        w
    }

    #[test]
    fn time_exceeded_exact() {
        let f = udp_frame(1, b"payload beyond eight bytes");
        let mut out = [0u8; ICMP_ERROR_MAX_LEN];
        let n = icmp_time_exceeded(&fr(&f), DIR, &mut out).unwrap();
        assert_eq!(&out[..n], &expected(11, 0, [0; 4], &f[14..42])[..]);
        assert_eq!(n, 14 + 20 + 8 + 28);
    }

    #[test]
    fn frag_needed_exact_and_short_payload() {
        // A UDP header without payload: the quote is the IP header + all 8
        // L4 bytes.
        let f = udp_frame(64, b"");
        let mut out = [0u8; 200];
        let n = icmp_frag_needed(&fr(&f), DIR, 1480, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &expected(3, 4, [0, 0, 0x05, 0xC8], &f[14..42])[..]
        );
        let back = parse_frame(&out[..n]).unwrap();
        assert!(back.is_icmp_error());
        assert_eq!(back.icmp_quoted_off(), Some(42));
        // Non-first fragment with 4 bytes of payload: suppressed.
        let mut g = udp_frame(64, b"");
        g[20] = 0x00;
        g[21] = 0x01;
        g[24] = 0;
        g[25] = 0;
        let c = checksum::checksum(&g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            icmp_frag_needed(&fr(&g), DIR, 1480, &mut out),
            Err(ForwardError::IcmpSuppressed)
        );
    }

    #[test]
    fn quote_keeps_ip_options() {
        let mut f = udp_frame(1, b"abcdefghij");
        // Insert 4 bytes of options (NOP NOP NOP EOL): IHL 6.
        f.splice(34..34, [1u8, 1, 1, 0]);
        f[14] = 0x46;
        let total = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24] = 0;
        f[25] = 0;
        let c = checksum::checksum(&f[14..38]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let mut out = [0u8; ICMP_ERROR_MAX_LEN];
        let n = icmp_time_exceeded(&fr(&f), DIR, &mut out).unwrap();
        assert_eq!(&out[..n], &expected(11, 0, [0; 4], &f[14..46])[..]);
    }

    #[test]
    fn suppressed_cases() {
        let mut out = [0u8; ICMP_ERROR_MAX_LEN];
        let f = udp_frame(1, b"x");
        let mut frames: Vec<Vec<u8>> = [
            Ipv4Addr::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(224, 0, 0, 5),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(240, 0, 0, 1),
        ]
        .iter()
        .map(|&src| with_addrs(&f, src, VIP))
        .collect();
        for dst in [Ipv4Addr::new(239, 1, 1, 1), Ipv4Addr::BROADCAST] {
            frames.push(with_addrs(&f, CLIENT, dst));
        }
        // A non-first fragment.
        let mut later = f.clone();
        later[21] = 1;
        frames.push(with_addrs(&later, CLIENT, VIP));
        // About ICMP errors and non-query types.
        for t in [3u8, 5, 200] {
            frames.push(icmp_frame(t));
        }
        for (i, g) in frames.iter().enumerate() {
            assert_eq!(
                icmp_time_exceeded(&fr(g), DIR, &mut out),
                Err(ForwardError::IcmpSuppressed),
                "case {i}"
            );
        }
        // Echo request with TTL 1 gets an answer.
        assert!(icmp_time_exceeded(&fr(&icmp_frame(8)), DIR, &mut out).is_ok());
        // Link-layer broadcast.
        let mut g = f.clone();
        g[..6].copy_from_slice(&[0xFF; 6]);
        assert_eq!(
            icmp_time_exceeded(&fr(&g), DIR, &mut out),
            Err(ForwardError::IcmpSuppressed)
        );
    }

    #[test]
    fn buffer_too_small() {
        let f = udp_frame(1, b"xyz");
        let mut small = [0u8; 69];
        assert_eq!(
            icmp_time_exceeded(&fr(&f), DIR, &mut small),
            Err(ForwardError::BufferTooSmall)
        );
        let mut out = [0u8; 70];
        assert_eq!(icmp_time_exceeded(&fr(&f), DIR, &mut out), Ok(70));
    }
}
