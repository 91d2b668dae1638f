//! ICMPv6 errors about NAT64 flows, translated to ICMPv4 for the IPv4
//! server (RFC 7915 §5.2): the mirror of [`icmp4_to_icmp6`](super::icmp4_to_icmp6).
//!
//! A router or the client on the IPv6 side reports a problem with a packet
//! the VIP sent (`VIP:vport -> client:cport`, the server's reply once
//! translated). The server must learn it about the packet it sent itself,
//! `server:sport -> laddr:lport`, or its stack cannot match the error to a
//! socket (and, for packet-too-big, never lowers its path MTU). So the
//! whole error is rebuilt as IPv4: outer header from the local address to
//! the server, the type and code mapped, the quoted IPv6 header replaced
//! by the IPv4 header the server sent, the quoted ports and checksum
//! rewritten. The message is cut to 576 bytes (RFC 1812 4.3.2.3).
//!
//! Type mapping (RFC 7915 §5.2): destination unreachable (no route,
//! beyond scope, address unreachable -> host unreachable; administratively
//! prohibited -> code 10; port unreachable -> port unreachable), packet
//! too big -> fragmentation needed with the MTU less 20 (at most the
//! caller's `mtu4`), time exceeded -> time exceeded (same code), parameter
//! problem: erroneous header field -> parameter problem with the pointer
//! moved to the matching IPv4 field (Figure 6; none: dropped),
//! unrecognized next header -> protocol unreachable; anything else has no
//! ICMPv4 meaning and is refused.

use std::net::Ipv4Addr;

use crate::packet::checksum::{self, Delta};
use crate::packet::icmp::{self, msg_type as icmp4, unreach};
use crate::packet::icmpv6::msg_type;
use crate::packet::ipv4::{self, proto};
use crate::packet::ipv6::{self, Ipv6Packet};
use crate::packet::{get_u16, set_u16, tcp, udp, Ipv4Packet, Ipv6Frame};

use super::ForwardError;

/// The largest ICMPv4 error packet (RFC 1812 4.3.2.3: 576 bytes).
pub const ICMP4_ERROR_MAX: usize = 576;

/// IPv6 header bytes an IPv4 header saves.
const GROWTH: u32 = (ipv6::HEADER_LEN - ipv4::MIN_HEADER_LEN) as u32;

/// What an ICMPv6 error about a NAT64 flow becomes: the outer addresses
/// (the local address to the server), the quoted packet's endpoints (the
/// server's own packet, `server:sport -> laddr:lport`), the outer TTL and
/// identification, and the most a fragmentation-needed may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp46 {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub quoted_src: (Ipv4Addr, u16),
    pub quoted_dst: (Ipv4Addr, u16),
    /// TTL (the hop limit, already decremented).
    pub ttl: u8,
    /// The identification of the outer packet (sent with DF clear).
    pub ident: u16,
    /// The MTU of the server side's link: a fragmentation-needed never
    /// says more.
    pub mtu4: u16,
}

/// RFC 7915 Figure 6: the IPv4 header field matching a parameter
/// problem's pointer into the IPv6 header; `None` where there is none
/// (flow label, beyond the fixed header).
fn map_pointer(ptr6: u32) -> Option<u32> {
    Some(match ptr6 {
        0 => 0,
        1 => 1,
        4 | 5 => 2,
        6 => 9,
        7 => 8,
        8..=23 => 12,
        24..=39 => 16,
        _ => return None,
    })
}

/// RFC 7915 §5.2: the ICMPv4 type, code and 32-bit field of an ICMPv6
/// error (`field` its 32-bit field: the MTU or the pointer); `None` for
/// what is not translated.
pub fn map_icmp6(ty: u8, code: u8, field: u32, mtu4: u16) -> Option<(u8, u8, u32)> {
    const DEST_UNREACH: u8 = icmp4::DEST_UNREACHABLE;
    match (ty, code) {
        (msg_type::DEST_UNREACHABLE, 0 | 2 | 3) => Some((DEST_UNREACH, unreach::HOST, 0)),
        // Communication with destination host administratively prohibited.
        (msg_type::DEST_UNREACHABLE, 1) => Some((DEST_UNREACH, 10, 0)),
        (msg_type::DEST_UNREACHABLE, 4) => Some((DEST_UNREACH, unreach::PORT, 0)),
        (msg_type::PACKET_TOO_BIG, _) => {
            let mtu = field.saturating_sub(GROWTH).min(u32::from(mtu4));
            Some((DEST_UNREACH, unreach::FRAG_NEEDED, mtu))
        }
        (msg_type::TIME_EXCEEDED, c) if c <= 1 => Some((icmp4::TIME_EXCEEDED, c, 0)),
        (msg_type::PARAM_PROBLEM, 0) => {
            map_pointer(field).map(|p| (icmp4::PARAMETER_PROBLEM, 0, p << 24))
        }
        (msg_type::PARAM_PROBLEM, 1) => Some((DEST_UNREACH, unreach::PROTOCOL, 0)),
        _ => None,
    }
}

/// Translates an ICMPv6 error (`orig`: the frame, whose layout found a
/// usable quote: `NoQuote` otherwise) quoting a NAT64 flow's IPv6 packet
/// into an ICMPv4 error, written (IPv4 header first) to `out`; returns its
/// length. The outer traffic class becomes the TOS. The quote must be an
/// IPv6 header straight followed by TCP or UDP (what the VIP sends) and
/// hold its ports. Cold (one per error).
pub fn icmp6_to_icmp4<T: AsRef<[u8]>>(
    orig: &Ipv6Frame<T>,
    t: &Icmp46,
    out: &mut [u8],
) -> Result<usize, ForwardError> {
    // The layout checked the quote: an IPv6 header (version 6) and 8 bytes.
    let quote = orig.quote().ok_or(ForwardError::NoQuote)?;
    let msg = orig.l4_bytes();
    let tc = orig.traffic_class();
    let (ty, code) = (msg[0], msg[1]);
    let field = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let (ty4, code4, field4) =
        map_icmp6(ty, code, field, t.mtu4).ok_or(ForwardError::UnsupportedProtocol)?;
    let q6 = Ipv6Packet::new_unchecked(quote);
    let qproto = q6.next_header();
    if qproto != proto::TCP && qproto != proto::UDP {
        return Err(ForwardError::UnsupportedProtocol);
    }
    let ql4 = &quote[ipv6::HEADER_LEN..];
    const HEAD: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    let qlen = ql4.len().min(ICMP4_ERROR_MAX - HEAD);
    let total = HEAD + qlen;
    let out = out.get_mut(..total).ok_or(ForwardError::BufferTooSmall)?;
    let (hdr, m) = out.split_at_mut(ipv4::MIN_HEADER_LEN);
    {
        // The quoted packet, as the server sent it.
        let (qh, qb) = m[icmp::HEADER_LEN..].split_at_mut(ipv4::MIN_HEADER_LEN);
        let mut q4 = Ipv4Packet::new_unchecked(&mut *qh);
        q4.set_version(4);
        q4.set_header_len(ipv4::MIN_HEADER_LEN);
        q4.set_tos(q6.traffic_class());
        q4.set_total_len(q6.payload_len().saturating_add(ipv4::MIN_HEADER_LEN as u16));
        q4.set_ident(0);
        q4.set_frag_offset(0);
        q4.set_more_frags(false);
        q4.set_dont_frag(true);
        q4.set_ttl(q6.hop_limit());
        q4.set_protocol(qproto);
        q4.set_src(t.quoted_src.0);
        q4.set_dst(t.quoted_dst.0);
        q4.fill_checksum();
        qb.copy_from_slice(&ql4[..qlen]);
        let mut d = Delta::new();
        for w in q6.src().segments().into_iter().chain(q6.dst().segments()) {
            d = d.word(w, 0);
        }
        let d = d
            .dword(0, u32::from(t.quoted_src.0))
            .dword(0, u32::from(t.quoted_dst.0))
            .word(get_u16(qb, 0), t.quoted_src.1)
            .word(get_u16(qb, 2), t.quoted_dst.1);
        set_u16(qb, 0, t.quoted_src.1);
        set_u16(qb, 2, t.quoted_dst.1);
        if qproto == proto::UDP {
            let ck = get_u16(qb, udp::CHECKSUM_OFFSET);
            set_u16(qb, udp::CHECKSUM_OFFSET, d.apply_udp(ck));
        } else if qb.len() >= tcp::CHECKSUM_OFFSET + 2 {
            let ck = get_u16(qb, tcp::CHECKSUM_OFFSET);
            set_u16(qb, tcp::CHECKSUM_OFFSET, d.apply(ck));
        }
    }
    m[0] = ty4;
    m[1] = code4;
    set_u16(m, 2, 0);
    m[4..8].copy_from_slice(&field4.to_be_bytes());
    let ck = checksum::checksum(m);
    set_u16(m, 2, ck);
    let mut ip = Ipv4Packet::new_unchecked(hdr);
    ip.set_version(4);
    ip.set_header_len(ipv4::MIN_HEADER_LEN);
    ip.set_tos(tc);
    ip.set_total_len(total as u16);
    // At most 576 bytes: DF clear, an identification of the caller's
    // (RFC 7915 §5.1).
    ip.set_ident(t.ident);
    ip.set_frag_offset(0);
    ip.set_more_frags(false);
    ip.set_dont_frag(false);
    ip.set_ttl(t.ttl);
    ip.set_protocol(proto::ICMP);
    ip.set_src(t.outer_src);
    ip.set_dst(t.outer_dst);
    ip.fill_checksum();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmpv6_types_map_as_rfc7915_says() {
        assert_eq!(map_icmp6(1, 0, 0, 1500), Some((3, 1, 0)));
        assert_eq!(map_icmp6(1, 1, 0, 1500), Some((3, 10, 0)));
        assert_eq!(map_icmp6(1, 3, 0, 1500), Some((3, 1, 0)));
        assert_eq!(map_icmp6(1, 4, 0, 1500), Some((3, 3, 0)));
        assert_eq!(map_icmp6(1, 5, 0, 1500), None);
        assert_eq!(map_icmp6(2, 0, 1400, 1500), Some((3, 4, 1380)));
        assert_eq!(map_icmp6(2, 0, 9000, 1500), Some((3, 4, 1500)));
        assert_eq!(map_icmp6(3, 1, 0, 1500), Some((11, 1, 0)));
        assert_eq!(map_icmp6(3, 2, 0, 1500), None);
        assert_eq!(map_icmp6(4, 0, 7, 1500), Some((12, 0, 8 << 24)));
        assert_eq!(map_icmp6(4, 0, 24, 1500), Some((12, 0, 16 << 24)));
        assert_eq!(map_icmp6(4, 0, 2, 1500), None);
        assert_eq!(map_icmp6(4, 0, 40, 1500), None);
        assert_eq!(map_icmp6(4, 1, 0, 1500), Some((3, 2, 0)));
        assert_eq!(map_icmp6(4, 2, 0, 1500), None);
        assert_eq!(map_icmp6(128, 0, 0, 1500), None);
    }
}
