//! NAT64 header translation (RFC 7915) for full-NAT across families: an
//! IPv6 client's packet to an IPv6 VIP leaves as IPv4 from a local tuple
//! to an IPv4 server ([`write_v4`]), and the server's reply comes back as
//! IPv6 from the VIP ([`write_v6`]).
//!
//! The caller has already moved the L4 bytes into place: the frame is the
//! new Ethernet header (14 bytes, MACs written later by `set_macs`), room
//! for the new IP header, then exactly the TCP/UDP segment (no padding, no
//! IPv6 extension headers, no IPv4 options: RFC 7915 drops both). These
//! functions write the IP header and patch the segment.
//!
//! What is translated: TTL from hop limit and back (minus one, a routed
//! hop), TOS from traffic class and back, flow label 0, no options,
//! DF set for TCP (and for UDP longer than 1260 bytes, RFC 7915 §5.1;
//! a shorter UDP datagram gets DF clear and an identification of the
//! caller's). The TCP/UDP checksum is adjusted incrementally across the
//! pseudo-header change (addresses of the other family and both ports:
//! the length and protocol words sum the same in both pseudo-headers),
//! except an IPv4 UDP datagram without a checksum, which gets its first
//! one computed (IPv6 makes it mandatory). The MSS option of a SYN is
//! clamped to the caller's maximum (the IPv6 header is 20 bytes longer).
//!
//! ICMPv4 errors quoting a NAT64 flow become ICMPv6 errors
//! ([`icmp4_to_icmp6`], RFC 7915 §4.2 type mapping, the quoted packet
//! translated too).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::checksum::{self, Delta};
use crate::packet::ipv4::{self, proto};
use crate::packet::ipv6::{self, Ipv6Packet};
use crate::packet::{get_u16, icmp, set_u16, tcp, udp, Ipv4Frame, Ipv4Packet};

use super::ForwardError;

/// The Ethernet header the translated packet gets (untagged).
pub const ETH_LEN: usize = 14;
/// Where the L4 segment starts in a frame translated to IPv4.
pub const L4_OFF_V4: usize = ETH_LEN + ipv4::MIN_HEADER_LEN;
/// Where the L4 segment starts in a frame translated to IPv6.
pub const L4_OFF_V6: usize = ETH_LEN + ipv6::HEADER_LEN;
/// How much longer the IPv6 header is than an IPv4 one without options:
/// what a clamped MSS leaves room for.
pub const GROWTH: u16 = 20;
/// RFC 7915 §5.1: a translated UDP datagram up to this size may be
/// fragmented on the IPv4 side (DF clear).
const DF_THRESHOLD: usize = 1260;
/// The IPv6 minimum MTU: an ICMPv6 error never exceeds it, and a
/// packet-too-big never says less.
pub const IPV6_MIN_MTU: usize = 1280;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xDD];

/// The IPv4 header and ports a packet translated to IPv4 gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct To4 {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    /// TOS (the IPv6 traffic class).
    pub tos: u8,
    /// TTL (the hop limit, already decremented).
    pub ttl: u8,
    /// The identification of a UDP datagram sent with DF clear.
    pub ident: u16,
}

/// The IPv6 header and ports a packet translated to IPv6 gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct To6 {
    pub src: Ipv6Addr,
    pub sport: u16,
    pub dst: Ipv6Addr,
    pub dport: u16,
    /// Traffic class (the IPv4 TOS).
    pub tc: u8,
    /// Hop limit (the TTL, already decremented).
    pub hop_limit: u8,
}

/// The L4 checksum change from an IPv6 address pair to an IPv4 one.
#[inline]
pub(super) fn delta_6to4(old: (Ipv6Addr, Ipv6Addr), new: (Ipv4Addr, Ipv4Addr)) -> Delta {
    let mut d = Delta::new();
    for w in old.0.segments().into_iter().chain(old.1.segments()) {
        d = d.word(w, 0);
    }
    d.dword(0, u32::from(new.0)).dword(0, u32::from(new.1))
}

/// The L4 checksum change from an IPv4 address pair to an IPv6 one.
#[inline]
pub(super) fn delta_4to6(old: (Ipv4Addr, Ipv4Addr), new: (Ipv6Addr, Ipv6Addr)) -> Delta {
    let mut d = Delta::new()
        .dword(u32::from(old.0), 0)
        .dword(u32::from(old.1), 0);
    for w in new.0.segments().into_iter().chain(new.1.segments()) {
        d = d.word(0, w);
    }
    d
}

/// Lowers the MSS option of a TCP SYN (`seg`, its header checked) to at
/// most `max`; the checksum change, zero when nothing changed. A word at
/// an odd offset enters the checksum byte-swapped (RFC 1071).
pub fn clamp_mss(seg: &mut [u8], max: u16) -> Delta {
    let doff = usize::from(seg[12] >> 4) * 4;
    let end = doff.min(seg.len());
    let mut i = tcp::MIN_HEADER_LEN;
    while i < end {
        match seg[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = seg.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > end {
                    break;
                }
                if kind == 2 && len == 4 {
                    let mss = get_u16(seg, i + 2);
                    if mss <= max {
                        return Delta::new();
                    }
                    set_u16(seg, i + 2, max);
                    return if (i + 2).is_multiple_of(2) {
                        Delta::new().word(mss, max)
                    } else {
                        Delta::new().word(mss.swap_bytes(), max.swap_bytes())
                    };
                }
                i += len;
            }
        }
    }
    Delta::new()
}

/// Rewrites the ports of a TCP/UDP segment, clamps a SYN's MSS to
/// `mss_max`, and adjusts its checksum by `addrs` plus those changes.
/// `v6_out`: the segment leaves as IPv6, where UDP must carry a checksum.
/// `pseudo`: the new addresses and protocol, to compute a UDP checksum
/// the IPv4 sender left out.
pub(super) fn patch_l4(
    seg: &mut [u8],
    protocol: u8,
    ports: (u16, u16),
    addrs: Delta,
    mss_max: u16,
    v6_out: Option<(Ipv6Addr, Ipv6Addr)>,
) -> Result<(), ForwardError> {
    match protocol {
        proto::TCP => {
            if seg.len() < tcp::MIN_HEADER_LEN {
                return Err(ForwardError::Mismatch);
            }
            let mut d = addrs
                .word(get_u16(seg, 0), ports.0)
                .word(get_u16(seg, 2), ports.1);
            set_u16(seg, 0, ports.0);
            set_u16(seg, 2, ports.1);
            if seg[13] & 0x02 != 0 {
                d = d.plus(clamp_mss(seg, mss_max));
            }
            let ck = get_u16(seg, tcp::CHECKSUM_OFFSET);
            set_u16(seg, tcp::CHECKSUM_OFFSET, d.apply(ck));
        }
        proto::UDP => {
            if seg.len() < udp::HEADER_LEN {
                return Err(ForwardError::Mismatch);
            }
            let ck = get_u16(seg, udp::CHECKSUM_OFFSET);
            let d = addrs
                .word(get_u16(seg, 0), ports.0)
                .word(get_u16(seg, 2), ports.1);
            set_u16(seg, 0, ports.0);
            set_u16(seg, 2, ports.1);
            let new = match v6_out {
                Some((src, dst)) if ck == 0 => {
                    // IPv4 let the sender leave it out; IPv6 does not.
                    let c = checksum::ipv6_l4_checksum(src, dst, proto::UDP, seg);
                    if c == 0 {
                        0xFFFF
                    } else {
                        c
                    }
                }
                Some(_) => d.apply_udp6(ck),
                // An IPv6 datagram always has one (the caller refused 0).
                None => d.apply_udp6(ck),
            };
            set_u16(seg, udp::CHECKSUM_OFFSET, new);
        }
        _ => return Err(ForwardError::UnsupportedProtocol),
    }
    Ok(())
}

/// Client (IPv6) -> server (IPv4). `frame` is `[Ethernet][20 bytes][the
/// TCP/UDP segment]` and `old` the IPv6 packet's source and destination;
/// `protocol` TCP or UDP. A SYN's MSS is clamped to `mss_max`. The frame
/// is unchanged on error.
pub fn write_v4(
    frame: &mut [u8],
    old: (Ipv6Addr, Ipv6Addr),
    protocol: u8,
    t: &To4,
    mss_max: u16,
) -> Result<(), ForwardError> {
    if frame.len() < L4_OFF_V4 + udp::HEADER_LEN {
        return Err(ForwardError::Mismatch);
    }
    let total = frame.len() - ETH_LEN;
    let total16 = u16::try_from(total).map_err(|_| ForwardError::TooBig)?;
    if protocol == proto::UDP && get_u16(frame, L4_OFF_V4 + udp::CHECKSUM_OFFSET) == 0 {
        // Invalid over IPv6 (RFC 8200 §8.1): not ours to bless.
        return Err(ForwardError::UnsupportedProtocol);
    }
    let (head, seg) = frame.split_at_mut(L4_OFF_V4);
    let addrs = delta_6to4(old, (t.src, t.dst));
    patch_l4(seg, protocol, (t.sport, t.dport), addrs, mss_max, None)?;
    let df = protocol == proto::TCP || total > DF_THRESHOLD;
    let ident = if df { 0 } else { t.ident };
    header_v4(head, total16, protocol, t, (ident, 0, false, df));
    Ok(())
}

/// Writes the Ethernet type and the IPv4 header of a translated packet
/// (`head`: Ethernet and 20 bytes) of `total` bytes; `frag` is
/// (identification, fragment offset in bytes, MF, DF).
pub(super) fn header_v4(
    head: &mut [u8],
    total: u16,
    protocol: u8,
    t: &To4,
    frag: (u16, u16, bool, bool),
) {
    head[12..14].copy_from_slice(&ETHERTYPE_IPV4);
    // Flags and offset from zero (the reserved bit too).
    set_u16(head, ETH_LEN + 6, 0);
    let mut ip = Ipv4Packet::new_unchecked(&mut head[ETH_LEN..L4_OFF_V4]);
    ip.set_version(4);
    ip.set_header_len(ipv4::MIN_HEADER_LEN);
    ip.set_tos(t.tos);
    ip.set_total_len(total);
    ip.set_ident(frag.0);
    ip.set_frag_offset(frag.1);
    ip.set_more_frags(frag.2);
    ip.set_dont_frag(frag.3);
    ip.set_ttl(t.ttl);
    ip.set_protocol(protocol);
    ip.set_src(t.src);
    ip.set_dst(t.dst);
    ip.fill_checksum();
}

/// Server (IPv4) -> client (IPv6). `frame` is `[Ethernet][40 bytes][the
/// TCP/UDP segment]` and `old` the IPv4 packet's source and destination.
/// A SYN's MSS is clamped to `mss_max`. The frame is unchanged on error.
pub fn write_v6(
    frame: &mut [u8],
    old: (Ipv4Addr, Ipv4Addr),
    protocol: u8,
    t: &To6,
    mss_max: u16,
) -> Result<(), ForwardError> {
    if frame.len() < L4_OFF_V6 + udp::HEADER_LEN {
        return Err(ForwardError::Mismatch);
    }
    let payload = u16::try_from(frame.len() - L4_OFF_V6).map_err(|_| ForwardError::TooBig)?;
    let (head, seg) = frame.split_at_mut(L4_OFF_V6);
    let addrs = delta_4to6(old, (t.src, t.dst));
    patch_l4(
        seg,
        protocol,
        (t.sport, t.dport),
        addrs,
        mss_max,
        Some((t.src, t.dst)),
    )?;
    header_v6(head, payload, protocol, t);
    Ok(())
}

/// Writes the Ethernet type and the IPv6 header of a translated packet
/// (`head`: Ethernet and at least 40 bytes) with `payload` bytes after
/// the fixed header, the first of them `next_header`'s.
pub(super) fn header_v6(head: &mut [u8], payload: u16, next_header: u8, t: &To6) {
    head[12..14].copy_from_slice(&ETHERTYPE_IPV6);
    let mut ip = Ipv6Packet::new_unchecked(&mut head[ETH_LEN..L4_OFF_V6]);
    ip.set_version();
    ip.set_traffic_class(t.tc);
    ip.set_flow_label(0);
    ip.set_payload_len(payload);
    ip.set_next_header(next_header);
    ip.set_hop_limit(t.hop_limit);
    ip.set_src(t.src);
    ip.set_dst(t.dst);
}

/// What an ICMPv4 error about a NAT64 flow becomes: the outer addresses
/// (the VIP to the client), the quoted packet's endpoints (client to VIP:
/// the packet the client sent), the hop limit, and the MTU of the client's
/// side (a packet-too-big never says more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp64 {
    pub outer_src: Ipv6Addr,
    pub outer_dst: Ipv6Addr,
    pub quoted_src: (Ipv6Addr, u16),
    pub quoted_dst: (Ipv6Addr, u16),
    pub hop_limit: u8,
    pub mtu6: u16,
}

/// RFC 7915 §4.2: the ICMPv6 type, code and 32-bit field of an ICMPv4
/// error; `None` for what is not translated (dropped: parameter problem,
/// source quench, redirect, "communication administratively prohibited"
/// codes whose meaning has no match, and anything else). `mtu4` is the
/// next-hop MTU of a fragmentation-needed.
fn map_icmp(ty: u8, code: u8, mtu4: u16, mtu6: u16) -> Option<(u8, u8, u32)> {
    use crate::packet::icmpv6::msg_type;
    const DEST_UNREACH6: u8 = 1;
    match (ty, code) {
        (icmp::msg_type::DEST_UNREACHABLE, c) => match c {
            0 | 1 | 5 | 6 | 7 | 8 | 11 | 12 => Some((DEST_UNREACH6, 0, 0)),
            9 | 10 | 13 | 15 => Some((DEST_UNREACH6, 1, 0)),
            3 => Some((DEST_UNREACH6, 4, 0)),
            // Protocol unreachable: parameter problem, pointer to the
            // next header field.
            2 => Some((msg_type::PARAM_PROBLEM, 1, 6)),
            4 => {
                // No MTU (an RFC 792 router): the IPv6 minimum, as safe.
                let mtu = if mtu4 == 0 {
                    IPV6_MIN_MTU as u32
                } else {
                    (u32::from(mtu4) + u32::from(GROWTH))
                        .min(u32::from(mtu6))
                        .max(IPV6_MIN_MTU as u32)
                };
                Some((msg_type::PACKET_TOO_BIG, 0, mtu))
            }
            _ => None,
        },
        (icmp::msg_type::TIME_EXCEEDED, c) if c <= 1 => Some((msg_type::TIME_EXCEEDED, c, 0)),
        _ => None,
    }
}

/// Translates an ICMPv4 error (`orig`: the frame, whose layout found a
/// usable quote: `NoQuote` otherwise) quoting a NAT64 flow's IPv4 packet
/// into an ICMPv6 error, written (IPv6 header first) to `out`; returns its
/// length. The quoted packet is translated too (an IPv6 header for its
/// IPv4 one, ports and checksum of the quoted TCP/UDP header as `t`
/// says), and the message cut to the IPv6 minimum MTU. Cold (one per
/// error).
pub fn icmp4_to_icmp6<T: AsRef<[u8]>>(
    orig: &Ipv4Frame<T>,
    t: &Icmp64,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    if !orig.layout().has_quote() {
        return Err(ForwardError::NoQuote);
    }
    let msg = orig.l4_bytes();
    let (ty, code) = (msg[0], msg[1]);
    let mtu4 = get_u16(msg, 6);
    let (ty6, code6, field) =
        map_icmp(ty, code, mtu4, t.mtu6).ok_or(ForwardError::UnsupportedProtocol)?;
    // The layout checked the quote: version 4, IHL >= 5, 8 bytes after.
    let quote = &msg[icmp::HEADER_LEN..];
    let qihl = usize::from(quote[0] & 0x0F) * 4;
    let qproto = quote[9];
    if qproto != proto::TCP && qproto != proto::UDP {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let qtotal = usize::from(get_u16(quote, 2));
    let ql4 = &quote[qihl..];
    // The message: ICMPv6 header, quoted IPv6 header, quoted L4 bytes, all
    // within the minimum MTU.
    let room = IPV6_MIN_MTU.min(out.len()) - ipv6::HEADER_LEN;
    let qlen = ql4.len().min(room - icmp::HEADER_LEN - ipv6::HEADER_LEN);
    let mlen = icmp::HEADER_LEN + ipv6::HEADER_LEN + qlen;
    let total = ipv6::HEADER_LEN + mlen;
    if out.len() < total {
        return Err(ForwardError::BufferTooSmall);
    }
    let (hdr, rest) = out[..total].split_at_mut(ipv6::HEADER_LEN);
    // The quoted packet, as the client sent it.
    {
        let (qh, qb) = rest[icmp::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
        let mut q6 = Ipv6Packet::new_unchecked(&mut *qh);
        q6.set_version();
        q6.set_traffic_class(quote[1]);
        q6.set_flow_label(0);
        q6.set_payload_len(qtotal.saturating_sub(qihl) as u16);
        q6.set_next_header(qproto);
        q6.set_hop_limit(quote[8]);
        q6.set_src(t.quoted_src.0);
        q6.set_dst(t.quoted_dst.0);
        qb.copy_from_slice(&ql4[..qlen]);
        let old = (
            Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]),
            Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]),
        );
        let d = delta_4to6(old, (t.quoted_src.0, t.quoted_dst.0))
            .word(get_u16(qb, 0), t.quoted_src.1)
            .word(get_u16(qb, 2), t.quoted_dst.1);
        set_u16(qb, 0, t.quoted_src.1);
        set_u16(qb, 2, t.quoted_dst.1);
        let ck_off = if qproto == proto::UDP {
            udp::CHECKSUM_OFFSET
        } else {
            tcp::CHECKSUM_OFFSET
        };
        if qb.len() >= ck_off + 2 {
            let ck = get_u16(qb, ck_off);
            let new = if qproto == proto::UDP {
                d.apply_udp(ck)
            } else {
                d.apply(ck)
            };
            set_u16(qb, ck_off, new);
        }
    }
    rest[0] = ty6;
    rest[1] = code6;
    set_u16(rest, 2, 0);
    rest[4..8].copy_from_slice(&field.to_be_bytes());
    let ck = checksum::ipv6_l4_checksum(t.outer_src, t.outer_dst, ipv6::next_header::ICMPV6, rest);
    set_u16(rest, 2, ck);
    let mut ip6 = Ipv6Packet::new_unchecked(hdr);
    ip6.set_version();
    ip6.set_traffic_class(orig.tos());
    ip6.set_flow_label(0);
    ip6.set_payload_len(mlen as u16);
    ip6.set_next_header(ipv6::next_header::ICMPV6);
    ip6.set_hop_limit(t.hop_limit);
    ip6.set_src(t.outer_src);
    ip6.set_dst(t.outer_dst);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mss_clamped_at_even_and_odd_offsets_keeps_the_checksum_right() {
        for pad in [0usize, 1] {
            // A SYN with NOPs before the MSS option (odd offset with one).
            let mut seg = vec![0u8; 28];
            seg[12] = 7 << 4; // 28 bytes
            seg[13] = 0x02;
            let mut i = 20;
            for _ in 0..pad {
                seg[i] = 1;
                i += 1;
            }
            seg[i..i + 4].copy_from_slice(&[2, 4, 0x05, 0xB4]);
            let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
            let ck = checksum::ipv4_l4_checksum(src, dst, proto::TCP, &seg);
            set_u16(&mut seg, 16, ck);
            let d = clamp_mss(&mut seg, 1400);
            assert_eq!(get_u16(&seg, i + 2), 1400);
            let ck = d.apply(get_u16(&seg, 16));
            set_u16(&mut seg, 16, ck);
            assert!(
                checksum::ipv4_l4_verify(src, dst, proto::TCP, &seg),
                "pad {pad}"
            );
        }
    }

    #[test]
    fn icmp_types_map_as_rfc7915_says() {
        assert_eq!(map_icmp(3, 3, 0, 1500), Some((1, 4, 0)));
        assert_eq!(map_icmp(3, 1, 0, 1500), Some((1, 0, 0)));
        assert_eq!(map_icmp(3, 13, 0, 1500), Some((1, 1, 0)));
        assert_eq!(map_icmp(3, 2, 0, 1500), Some((4, 1, 6)));
        assert_eq!(map_icmp(3, 4, 1400, 1500), Some((2, 0, 1420)));
        assert_eq!(map_icmp(3, 4, 1490, 1500), Some((2, 0, 1500)));
        assert_eq!(map_icmp(3, 4, 576, 1500), Some((2, 0, 1280)));
        assert_eq!(map_icmp(11, 0, 0, 1500), Some((3, 0, 0)));
        assert_eq!(map_icmp(12, 0, 0, 1500), None);
        assert_eq!(map_icmp(3, 14, 0, 1500), None);
    }
}
