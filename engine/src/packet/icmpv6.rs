//! ICMPv6 view (RFC 4443) and neighbour discovery (RFC 4861): neighbour
//! solicitation/advertisement views with their link-layer address options,
//! and builders for the NS and NA frames the data plane will send.
//!
//! The ICMPv6 checksum covers the IPv6 pseudo header (unlike ICMPv4), so the
//! views take the addresses to compute or verify it.
//!
//! NDP receive rules the views enforce (RFC 4861 sections 7.1.1 and 7.1.2):
//! ICMP length at least 24, code 0, every option's length non-zero and
//! inside the message. The IP hop limit must be 255 ([`NDP_HOP_LIMIT`]) and
//! the checksum must verify: both need the IPv6 header and are the caller's
//! checks.

use std::net::Ipv6Addr;

use super::checksum;
use super::ethernet::{self, EtherType, MacAddr};
use super::ipv6::{self, next_header};
use super::{clamp, get_u16, set_u16, DropReason};

/// ICMPv6 message types.
pub mod msg_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// NDP option types used here.
pub mod ndp_option {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
}

/// Error messages have types 0..=127 (RFC 4443 section 2.1).
#[inline]
pub const fn is_error(t: u8) -> bool {
    t < 128
}

/// Length of the ICMPv6 header the view requires (type, code, checksum and
/// the 4-byte field every message defines).
pub const HEADER_LEN: usize = 8;
/// NS and NA without options: header (4) + reserved/flags (4) + target (16).
pub const NDP_NS_NA_LEN: usize = 24;
/// Hop limit every NDP message is sent with and must arrive with.
pub const NDP_HOP_LIMIT: u8 = 255;
/// A link-layer address option for Ethernet: type, length 1, six bytes.
pub const LL_OPTION_LEN: usize = 8;
/// Length of the NS and NA frames the builders write (Ethernet + IPv6 +
/// NS/NA + one link-layer address option).
pub const NDP_FRAME_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + NDP_NS_NA_LEN + LL_OPTION_LEN;

const CHECKSUM: usize = 2;

/// A view over an ICMPv6 message (from its type byte to the end of the IPv6
/// payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// At least [`HEADER_LEN`] bytes, else [`DropReason::TruncatedIcmpv6`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::TruncatedIcmpv6);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Everything after type, code and checksum.
    #[inline]
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, 4, b.len())
    }

    /// True when the checksum verifies under the pseudo header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::ipv6_l4_verify(src, dst, next_header::ICMPV6, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Computes and writes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::ipv6_l4_checksum(src, dst, next_header::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// Iterator over NDP options as `(type, option bytes including type and
/// length)`. Only yields options that fit; [`check_options`] tells whether
/// the whole area is well formed.
#[derive(Clone, Debug)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = (u8, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let len = usize::from(*self.rest.get(1)?) * 8;
        if len == 0 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some((opt[0], opt))
    }
}

/// RFC 4861 section 4.6: every option has a length (in 8-byte units) that is
/// non-zero and fits; anything else is [`DropReason::BadNdp`]. Bounded by
/// the area's length (each step consumes at least 8 bytes).
#[inline]
pub fn check_options(mut opts: &[u8]) -> Result<(), DropReason> {
    while !opts.is_empty() {
        let len = usize::from(*opts.get(1).ok_or(DropReason::BadNdp)?) * 8;
        if len == 0 || len > opts.len() {
            return Err(DropReason::BadNdp);
        }
        opts = &opts[len..];
    }
    Ok(())
}

/// The Ethernet address of the first option of type `kind` of length 1.
/// RFC 4861 says to ignore link-layer options of other sizes (other link
/// types), so they are skipped.
#[inline]
fn find_ll_option(opts: &[u8], kind: u8) -> Option<MacAddr> {
    NdpOptions { rest: opts }
        .find(|(t, o)| *t == kind && o.len() == LL_OPTION_LEN)
        .map(|(_, o)| MacAddr::from_bytes(&o[2..8]))
}

/// Checks an NS/NA message: type, length, code 0, options well formed.
#[inline]
fn check_ndp(b: &[u8], kind: u8) -> Result<(), DropReason> {
    if b.len() < NDP_NS_NA_LEN || b[0] != kind || b[1] != 0 {
        return Err(DropReason::BadNdp);
    }
    check_options(&b[NDP_NS_NA_LEN..])
}

#[inline(always)]
fn target_of(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[8..24]);
    Ipv6Addr::from(a)
}

/// A neighbour solicitation (type 135).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSolicit<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborSolicit<T> {
    /// The ICMPv6 message must be an NS that passes the RFC 4861 section
    /// 7.1.1 checks that need no IP header, else [`DropReason::BadNdp`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        check_ndp(buffer.as_ref(), msg_type::NEIGHBOR_SOLICIT)?;
        Ok(NeighborSolicit { buffer })
    }

    /// The address being resolved.
    #[inline]
    pub fn target(&self) -> Ipv6Addr {
        target_of(self.buffer.as_ref())
    }

    /// The options after the target.
    #[inline]
    pub fn options(&self) -> NdpOptions<'_> {
        NdpOptions {
            rest: clamp(
                self.buffer.as_ref(),
                NDP_NS_NA_LEN,
                self.buffer.as_ref().len(),
            ),
        }
    }

    /// The solicitor's MAC (source link-layer address option), absent in
    /// duplicate address detection (source ::).
    #[inline]
    pub fn source_ll_addr(&self) -> Option<MacAddr> {
        let b = self.buffer.as_ref();
        find_ll_option(clamp(b, NDP_NS_NA_LEN, b.len()), ndp_option::SOURCE_LL_ADDR)
    }
}

/// Neighbour advertisement flags (RFC 4861 section 4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

impl NaFlags {
    const R: u8 = 0x80;
    const S: u8 = 0x40;
    const O: u8 = 0x20;

    #[inline]
    pub const fn from_byte(b: u8) -> Self {
        NaFlags {
            router: b & Self::R != 0,
            solicited: b & Self::S != 0,
            override_: b & Self::O != 0,
        }
    }

    #[inline]
    pub const fn to_byte(self) -> u8 {
        (if self.router { Self::R } else { 0 })
            | (if self.solicited { Self::S } else { 0 })
            | (if self.override_ { Self::O } else { 0 })
    }
}

/// A neighbour advertisement (type 136).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborAdvert<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborAdvert<T> {
    /// The ICMPv6 message must be an NA that passes the RFC 4861 section
    /// 7.1.2 checks that need no IP header, else [`DropReason::BadNdp`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        check_ndp(buffer.as_ref(), msg_type::NEIGHBOR_ADVERT)?;
        Ok(NeighborAdvert { buffer })
    }

    #[inline]
    pub fn flags(&self) -> NaFlags {
        NaFlags::from_byte(self.buffer.as_ref()[4])
    }

    /// The address whose link-layer address is advertised.
    #[inline]
    pub fn target(&self) -> Ipv6Addr {
        target_of(self.buffer.as_ref())
    }

    #[inline]
    pub fn options(&self) -> NdpOptions<'_> {
        NdpOptions {
            rest: clamp(
                self.buffer.as_ref(),
                NDP_NS_NA_LEN,
                self.buffer.as_ref().len(),
            ),
        }
    }

    /// The advertised MAC (target link-layer address option).
    #[inline]
    pub fn target_ll_addr(&self) -> Option<MacAddr> {
        let b = self.buffer.as_ref();
        find_ll_option(clamp(b, NDP_NS_NA_LEN, b.len()), ndp_option::TARGET_LL_ADDR)
    }
}

/// The solicited-node multicast address of `a` (RFC 4291 section 2.7.1):
/// ff02::1:ffXX:XXXX with the low 24 bits of `a`.
#[inline]
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address of an IPv6 multicast group (RFC 2464 section 7):
/// 33:33 and the low 32 bits.
#[inline]
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Writes Ethernet + IPv6 (hop limit 255) + an NS/NA with one link-layer
/// option into `buf[..NDP_FRAME_LEN]`, checksum filled.
#[allow(clippy::too_many_arguments)]
fn write_ndp(
    buf: &mut [u8],
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) -> Option<usize> {
    let f = buf.get_mut(..NDP_FRAME_LEN)?;
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    set_u16(f, 12, EtherType::IPV6.0);
    let l3 = ethernet::HEADER_LEN;
    // Version 6, traffic class 0, flow label 0.
    f[l3..l3 + 4].copy_from_slice(&[0x60, 0, 0, 0]);
    let mut ip = ipv6::Ipv6Packet::new_unchecked(&mut f[l3..]);
    ip.set_payload_len((NDP_NS_NA_LEN + LL_OPTION_LEN) as u16);
    ip.set_next_header(next_header::ICMPV6);
    ip.set_hop_limit(NDP_HOP_LIMIT);
    ip.set_src(src);
    ip.set_dst(dst);
    let m = &mut f[l3 + ipv6::HEADER_LEN..];
    m[0] = kind;
    m[1] = 0;
    m[2..8].copy_from_slice(&[0, 0, flags, 0, 0, 0]);
    m[8..24].copy_from_slice(&target.octets());
    m[24] = option;
    m[25] = 1;
    let mac = src_mac.0;
    m[26..32].copy_from_slice(&mac);
    Icmpv6Packet::new_unchecked(m).fill_checksum(src, dst);
    Some(NDP_FRAME_LEN)
}

/// Writes a neighbour solicitation for `target` from `src`/`src_mac` into
/// `buf`: to the solicited-node multicast address of `target` and its
/// 33:33:ff:xx:xx:xx MAC, with a source link-layer address option. Returns
/// the frame length ([`NDP_FRAME_LEN`]), or `None` if `buf` is shorter.
#[inline]
pub fn build_ns(
    buf: &mut [u8],
    src_mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    let group = solicited_node(target);
    write_ndp(
        buf,
        multicast_mac(group),
        src_mac,
        src,
        group,
        msg_type::NEIGHBOR_SOLICIT,
        0,
        target,
        ndp_option::SOURCE_LL_ADDR,
    )
}

/// Writes a neighbour advertisement of `target` (sent from `target` itself)
/// at `src_mac`, to `dst`/`dst_mac` (the solicitor, or all-nodes ff02::1 and
/// 33:33:00:00:00:01 when unsolicited), with a target link-layer address
/// option. Returns [`NDP_FRAME_LEN`], or `None` if `buf` is shorter.
#[inline]
pub fn build_na(
    buf: &mut [u8],
    src_mac: MacAddr,
    target: Ipv6Addr,
    dst_mac: MacAddr,
    dst: Ipv6Addr,
    flags: NaFlags,
) -> Option<usize> {
    write_ndp(
        buf,
        dst_mac,
        src_mac,
        target,
        dst,
        msg_type::NEIGHBOR_ADVERT,
        flags.to_byte(),
        target,
        ndp_option::TARGET_LL_ADDR,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_and_mac() {
        let a: Ipv6Addr = "2001:db8::12:3456:789a".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(a)),
            MacAddr([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a])
        );
    }

    #[test]
    fn option_rules() {
        assert_eq!(check_options(&[]), Ok(()));
        assert_eq!(check_options(&[1, 1, 2, 0, 0, 0, 0, 1]), Ok(()));
        // Length 0 is invalid (and would loop forever if followed).
        assert_eq!(
            check_options(&[1, 0, 2, 0, 0, 0, 0, 1]),
            Err(DropReason::BadNdp)
        );
        // Past the end, and a lone type byte.
        assert_eq!(
            check_options(&[1, 2, 2, 0, 0, 0, 0, 1]),
            Err(DropReason::BadNdp)
        );
        assert_eq!(check_options(&[1]), Err(DropReason::BadNdp));
        // A 16-byte link-layer option (another link type) is skipped.
        let mut m = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&[2, 2, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[2, 1, 1, 2, 3, 4, 5, 6]);
        let na = NeighborAdvert::new_checked(&m[..]).unwrap();
        assert_eq!(na.target_ll_addr(), Some(MacAddr([1, 2, 3, 4, 5, 6])));
        assert_eq!(na.options().count(), 2);
        assert!(na.flags().override_ && !na.flags().solicited);
    }
}
