//! The parsed IPv6 frame: the buffer and where the parser found its
//! headers, as one value ([`Ipv6Frame`]), the IPv6 twin of
//! [`Ipv4Frame`](super::Ipv4Frame) (see `frame.rs` for why one value).
//!
//! * [`Layout6`] is what [`parse_ipv6`](super::parse_ipv6) validated of an
//!   IPv6 frame: the L3 offset, the offset of the header that ended the
//!   extension walk, the payload length, the upper-layer protocol (the
//!   walk's result: the fixed header cannot say it), which L4 header is
//!   there (with its length checked) and whether an ICMPv6 error carries a
//!   usable quote. Its fields are private and only the parser makes one, so
//!   its invariants hold: `l3_off >= 14`, `l3_off + 40 <= l4_off <= l3_end`
//!   (`l3_off + 40 + payload_len`), and the L4 header it names fits in
//!   `l4_off..l3_end`; a quote (at `l4_off + 8`) holds an IPv6 header
//!   (version 6) and 8 bytes, in an unfragmented ICMPv6 error (types 1-4).
//! * [`Ipv6Frame`] is a buffer with its layout, made from the frame's
//!   `Ipv6Parsed` by [`Ipv6Parsed::ipv6`](super::Ipv6Parsed::ipv6), which
//!   checks the one thing a layout cannot vouch for: that the buffer holds
//!   the whole IPv6 packet (`l3_end <= len`). Its sub-views
//!   ([`ip`](Ipv6Frame::ip), [`l4`](Ipv6Frame::l4),
//!   [`split_mut`](Ipv6Frame::split_mut), [`quote`](Ipv6Frame::quote)) are
//!   the existing `packet::*` views over the right sub-slices, opened
//!   without checking again; plain accessors (`hop_limit`, `src`, ...) read
//!   the bytes.

use std::net::Ipv6Addr;

use super::frame::L4Kind;
use super::icmpv6::{self, msg_type, Icmpv6Packet};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::{self, TcpPacket};
use super::udp::{self, UdpPacket};

/// Where the headers of an IPv6 frame are (see the module doc for its
/// invariants). Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout6 {
    l3_off: u16,
    l4_off: u16,
    payload_len: u16,
    /// The upper-layer protocol (the walk's result).
    protocol: u8,
    /// `Icmp` names an ICMPv6 header here.
    l4: L4Kind,
    quote: bool,
}

impl Layout6 {
    /// An IPv6 layout. Only the parser calls it, after checking what the
    /// module doc lists (the quote is derived here from the bytes).
    #[inline(always)]
    pub(super) fn new(
        l3_off: u16,
        l4_off: u16,
        payload_len: u16,
        protocol: u8,
        l4: L4Kind,
        unfragmented: bool,
        frame: &[u8],
    ) -> Layout6 {
        let mut at = Layout6 {
            l3_off,
            l4_off,
            payload_len,
            protocol,
            l4,
            quote: false,
        };
        if l4 == L4Kind::Icmp && unfragmented {
            let msg = &frame[at.l4_off()..at.l3_end()];
            at.quote = (msg_type::DEST_UNREACHABLE..=msg_type::PARAM_PROBLEM).contains(&msg[0])
                && msg.len() >= QUOTE6_MIN_L4_LEN
                && msg[icmpv6::HEADER_LEN] >> 4 == 6;
        }
        at
    }

    #[inline(always)]
    pub fn l3_off(&self) -> usize {
        usize::from(self.l3_off)
    }

    /// The header that ended the extension walk (the upper layer's).
    #[inline(always)]
    pub fn l4_off(&self) -> usize {
        usize::from(self.l4_off)
    }

    /// One past the IPv6 packet; what follows is Ethernet padding.
    #[inline(always)]
    pub fn l3_end(&self) -> usize {
        self.l3_off() + ipv6::HEADER_LEN + usize::from(self.payload_len)
    }

    /// The IPv6 payload length (extension headers included).
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        self.payload_len
    }

    /// The IPv6 packet's length: fixed header and payload.
    #[inline(always)]
    pub fn ip_len(&self) -> usize {
        ipv6::HEADER_LEN + usize::from(self.payload_len)
    }

    /// The fixed header and the extension headers walked.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        self.l4_off() - self.l3_off()
    }

    /// Length of the upper-layer part (`l4_off..l3_end`).
    #[inline(always)]
    pub fn l4_len(&self) -> usize {
        self.l3_end() - self.l4_off()
    }

    /// The upper-layer protocol (the walk's result).
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    #[inline(always)]
    pub fn l4(&self) -> L4Kind {
        self.l4
    }

    /// Not a later fragment (unfragmented packets too): the L4 header, if
    /// any, is here.
    #[inline(always)]
    pub fn is_first_fragment(&self) -> bool {
        self.l4 != L4Kind::Later
    }

    /// An unfragmented ICMPv6 error (types 1-4) with a usable quote (at
    /// `l4_off + 8`).
    #[inline(always)]
    pub fn has_quote(&self) -> bool {
        self.quote
    }
}

/// The L4 part of an [`Ipv6Frame`], as the view of the header the layout
/// names.
pub enum L4View6<B: AsRef<[u8]>> {
    Later,
    Tcp(TcpPacket<B>),
    Udp(UdpPacket<B>),
    Icmpv6(Icmpv6Packet<B>),
    Other,
}

/// A frame and its validated [`Layout6`]: the one representation the
/// IPv6 rewrites in `forward` take.
#[derive(Debug)]
pub struct Ipv6Frame<T: AsRef<[u8]>> {
    buf: T,
    at: Layout6,
}

impl<T: AsRef<[u8]>> Ipv6Frame<T> {
    /// `buf` with `at`, when the buffer holds the whole IPv6 packet. Only
    /// [`Ipv6Parsed::ipv6`](super::Ipv6Parsed::ipv6) calls it.
    #[inline(always)]
    pub(super) fn bind(buf: T, at: Layout6) -> Option<Ipv6Frame<T>> {
        if at.l3_end() <= buf.as_ref().len() {
            Some(Ipv6Frame { buf, at })
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn layout(&self) -> &Layout6 {
        &self.at
    }

    /// The whole frame (Ethernet header and padding included).
    #[inline(always)]
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The IPv6 header and the extension headers walked (`l3_off..l4_off`).
    #[inline(always)]
    pub fn ip(&self) -> Ipv6Packet<&[u8]> {
        Ipv6Packet::new_unchecked(&self.buf.as_ref()[self.at.l3_off()..self.at.l4_off()])
    }

    /// The whole IPv6 packet, `l3_off..l3_end` (padding excluded).
    #[inline(always)]
    pub fn packet(&self) -> &[u8] {
        &self.buf.as_ref()[self.at.l3_off()..self.at.l3_end()]
    }

    /// The L4 bytes, `l4_off..l3_end` (padding excluded).
    #[inline(always)]
    pub fn l4_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[self.at.l4_off()..self.at.l3_end()]
    }

    /// The L4 header the parser validated.
    #[inline(always)]
    pub fn l4(&self) -> L4View6<&[u8]> {
        view(self.at.l4, self.l4_bytes())
    }

    #[inline]
    pub fn icmpv6(&self) -> Option<Icmpv6Packet<&[u8]>> {
        match self.l4() {
            L4View6::Icmpv6(m) => Some(m),
            _ => None,
        }
    }

    /// The quoted packet of an ICMPv6 error (from its IPv6 header to the
    /// end of the message), when the layout found a usable one.
    #[inline]
    pub fn quote(&self) -> Option<&[u8]> {
        self.at
            .quote
            .then(|| &self.l4_bytes()[icmpv6::HEADER_LEN..])
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.ip().hop_limit()
    }

    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        self.ip().traffic_class()
    }

    #[inline(always)]
    pub fn src(&self) -> Ipv6Addr {
        self.ip().src()
    }

    #[inline(always)]
    pub fn dst(&self) -> Ipv6Addr {
        self.ip().dst()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Frame<T> {
    /// The whole frame, writable (e.g. the Ethernet addresses).
    #[inline(always)]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// The IPv6 header (and extensions), writable.
    #[inline(always)]
    pub fn ip_mut(&mut self) -> Ipv6Packet<&mut [u8]> {
        let (l3, l4) = (self.at.l3_off(), self.at.l4_off());
        Ipv6Packet::new_unchecked(&mut self.buf.as_mut()[l3..l4])
    }

    /// The IPv6 header and the L4 header's view, both writable: what a
    /// rewrite of addresses and ports changes.
    #[inline(always)]
    pub fn split_mut(&mut self) -> (Ipv6Packet<&mut [u8]>, L4View6<&mut [u8]>) {
        let at = self.at;
        let (ip, l4) = self.buf.as_mut()[at.l3_off()..at.l3_end()].split_at_mut(at.header_len());
        (Ipv6Packet::new_unchecked(ip), view(at.l4, l4))
    }
}

/// The view `kind` names over `l4`. The header lengths were checked by the
/// parser; the views clamp variable-length regions in any case.
#[inline(always)]
fn view<B: AsRef<[u8]>>(kind: L4Kind, l4: B) -> L4View6<B> {
    debug_assert!(match kind {
        L4Kind::Tcp => l4.as_ref().len() >= tcp::MIN_HEADER_LEN,
        L4Kind::Udp => l4.as_ref().len() >= udp::HEADER_LEN,
        L4Kind::Icmp => l4.as_ref().len() >= icmpv6::HEADER_LEN,
        _ => true,
    });
    match kind {
        L4Kind::Later => L4View6::Later,
        L4Kind::Tcp => L4View6::Tcp(TcpPacket::new_unchecked(l4)),
        L4Kind::Udp => L4View6::Udp(UdpPacket::new_unchecked(l4)),
        L4Kind::Icmp => L4View6::Icmpv6(Icmpv6Packet::new_unchecked(l4)),
        L4Kind::Other => L4View6::Other,
    }
}

/// Smallest L4 part of an ICMPv6 error with a usable quote: the ICMPv6
/// header, an IPv6 header, 8 bytes.
pub const QUOTE6_MIN_L4_LEN: usize = icmpv6::HEADER_LEN + ipv6::HEADER_LEN + 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_ipv6::parse_ipv6;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);

    /// Ethernet + IPv6 `A -> B` with next header `nh` and `payload`.
    fn frame(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let len = (payload.len() as u16).to_be_bytes();
        f.extend_from_slice(&[0x60, 0, 0, 0, len[0], len[1], nh, 64]);
        f.extend_from_slice(&A.octets());
        f.extend_from_slice(&B.octets());
        f.extend_from_slice(payload);
        f
    }

    /// An ICMPv6 error of `ty` quoting `quoted` bytes of an IPv6/UDP packet.
    fn error(ty: u8, quoted: usize) -> Vec<u8> {
        let inner = frame(17, &[0x13, 0x88, 0, 53, 0, 8, 0x12, 0x34]);
        let mut msg = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner[14..14 + quoted]);
        frame(58, &msg)
    }

    #[test]
    fn layout_of_a_udp_frame_and_its_views() {
        let mut f = frame(17, &[0x13, 0x88, 0, 53, 0, 9, 0x12, 0x34, b'x']);
        f.extend_from_slice(&[0xEE; 6]); // padding
        let p = parse_ipv6(&f).unwrap().unwrap();
        let at = *p.layout();
        assert_eq!((at.l3_off(), at.l4_off(), at.l3_end()), (14, 54, 63));
        assert_eq!((at.l4(), at.protocol(), at.l4_len()), (L4Kind::Udp, 17, 9));
        assert!(!at.has_quote() && at.is_first_fragment());
        let mut fr = p.ipv6(&mut f[..]).unwrap();
        assert_eq!((fr.src(), fr.dst(), fr.hop_limit()), (A, B, 64));
        assert_eq!(fr.l4_bytes().len(), 9);
        let (mut ip, l4) = fr.split_mut();
        let L4View6::Udp(mut u) = l4 else {
            panic!("not UDP")
        };
        u.set_dst_port(54);
        ip.set_hop_limit(9);
        assert_eq!((f[21], &f[56..58]), (9, &[0u8, 54][..]));
        // Shorter than the packet: not this frame.
        assert!(p.ipv6(&f[..62]).is_none());
    }

    #[test]
    fn quote_needs_an_error_an_ipv6_header_and_eight_bytes() {
        let p = |f: &[u8]| parse_ipv6(f).unwrap().unwrap();
        let f = error(msg_type::TIME_EXCEEDED, 48);
        let fr = p(&f).ipv6(&f[..]).unwrap();
        assert!(fr.layout().has_quote());
        assert_eq!(
            fr.quote().unwrap(),
            &frame(17, &[0x13, 0x88, 0, 53, 0, 8, 0x12, 0x34])[14..]
        );
        // 7 bytes after the quoted header, an echo, a quote of version 4.
        let short = error(msg_type::TIME_EXCEEDED, 47);
        assert!(p(&short).ipv6(&short[..]).unwrap().quote().is_none());
        let echo = error(128, 48);
        assert!(!p(&echo).layout().has_quote());
        let mut v4 = error(msg_type::DEST_UNREACHABLE, 48);
        v4[14 + 40 + 8] = 0x45;
        assert!(!p(&v4).layout().has_quote());
    }
}
