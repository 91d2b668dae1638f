//! The parsed IPv4 frame: the buffer and where the parser found its
//! headers, as one value ([`Ipv4Frame`]), smoltcp `wire`-style.
//!
//! Before this type the full path held two representations of a packet:
//! the parser's [`Parsed`](super::Parsed) offsets, and the views each
//! rewrite in `forward` opened again after re-checking those offsets against
//! the frame ("a `Parsed` that does not belong to the frame"). Now:
//!
//! * [`Layout`] is what the parser validated of an IPv4 frame: the L3 and
//!   L4 offsets, the end of the IP packet, which L4 header is there (with
//!   its length checked), whether the packet is a fragment and whether an
//!   ICMP error carries a usable quote. Its fields are private and only the
//!   parsers of this module tree make one, so its invariants hold:
//!   `l3_off + 20 <= l4_off <= l3_off + 60`, `l4_off <= l3_end` (`l3_off +
//!   total_len`), and the L4
//!   header it names fits in `l4_off..l3_end`.
//! * [`Ipv4Frame`] is a buffer with its layout, made from the frame's
//!   `Parsed` by [`Parsed::ipv4`](super::Parsed::ipv4), which checks the
//!   one thing a layout cannot vouch for: that the buffer is long enough
//!   (`l3_end <= len`). Its sub-views ([`ip`](Ipv4Frame::ip),
//!   [`tcp`](Ipv4Frame::tcp), [`udp`](Ipv4Frame::udp),
//!   [`icmp`](Ipv4Frame::icmp), [`split_mut`](Ipv4Frame::split_mut)) are the
//!   existing `packet::*` views over the right sub-slices, opened without
//!   checking again; plain accessors (`ttl`, `dont_frag`, ...) read the
//!   bytes.
//!
//! `Parsed` keeps, beside its layout, the fields the whole full path reads
//! many times to decide (the flow key, the protocol, the fragment flags,
//! the TCP flags, the ICMP type, the TTL): decoded once per frame. Fields
//! read once (TOS, DF, header and total length, offsets) are read from the
//! frame or derived from the layout.
//!
//! IPv6 has the same shape: [`Layout6`](super::Layout6) and
//! [`Ipv6Frame`](super::Ipv6Frame) in `frame6.rs`, taken by
//! `forward::{nat6, routed6, icmp6, icmp46}` and their callers.
//!
//! The admission checksum (`admit::l4_checksum_ok`) and the NAT64 ICMP
//! translations (`forward::icmp4_to_icmp6`, `icmp6_to_icmp4`) read through
//! the frame too.
//!
//! What remains on the old pattern: the TUN encapsulations (IPv4 and
//! IPv6), which check the inner header again with `new_checked` because
//! they work on the grown buffer after the hop is counted down and the
//! mbuf prepended (a new frame, not the parsed one: the `Ipv4Frame` was
//! given up to `prepend`); and the NAT64 rewrites (`nat64_write_v4/v6`),
//! which write a frame the caller rebuilt (the L4 bytes moved, a new IP
//! header's room), at fixed offsets.

use super::icmp::{self, IcmpPacket};
use super::ipv4::{self, Ipv4Packet};
use super::tcp::{self, TcpPacket};
use super::udp::{self, UdpPacket};

/// Which L4 header the parser validated in `l4_off..l3_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Kind {
    /// A non-first fragment: no L4 header, only data.
    Later,
    /// TCP: the header (data offset included) fits.
    Tcp,
    /// UDP: the 8-byte header fits (a first fragment's UDP length is the
    /// whole datagram's, so it is not checked against the packet).
    Udp,
    /// ICMP: the 8-byte header fits.
    Icmp,
    /// Another protocol: not looked at.
    Other,
}

/// Where the headers of an IPv4 frame are (see the module doc for its
/// invariants). Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    l3_off: u16,
    l4_off: u16,
    /// The IPv4 total length: the packet ends at `l3_off + total_len`.
    total_len: u16,
    l4: L4Kind,
    /// MF set or a non-zero fragment offset.
    fragment: bool,
    /// An ICMP error whose data starts with a usable IPv4 header (version
    /// 4, IHL >= 5) and 8 bytes after it.
    quote: bool,
}

impl Layout {
    /// The layout of a frame that is not IPv4 (its `Parsed::ipv4` is
    /// `None`): the L3 offset only.
    pub(super) const fn not_ipv4(l3_off: u16) -> Layout {
        Layout {
            l3_off,
            l4_off: 0,
            total_len: 0,
            l4: L4Kind::Other,
            fragment: false,
            quote: false,
        }
    }

    /// An IPv4 layout. Only the parsers call it, after checking what the
    /// module doc lists.
    #[inline(always)]
    pub(super) const fn ipv4(
        l3_off: u16,
        l4_off: u16,
        total_len: u16,
        l4: L4Kind,
        fragment: bool,
        quote: bool,
    ) -> Layout {
        Layout {
            l3_off,
            l4_off,
            total_len,
            l4,
            fragment,
            quote,
        }
    }

    #[inline(always)]
    pub fn l3_off(&self) -> usize {
        usize::from(self.l3_off)
    }

    #[inline(always)]
    pub fn l4_off(&self) -> usize {
        usize::from(self.l4_off)
    }

    /// One past the IP packet; what follows is Ethernet padding.
    #[inline(always)]
    pub fn l3_end(&self) -> usize {
        usize::from(self.l3_off) + usize::from(self.total_len)
    }

    /// The IPv4 header length, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        self.l4_off() - self.l3_off()
    }

    /// The IPv4 total length.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        self.total_len
    }

    /// Length of the L4 part (total length less the header).
    #[inline(always)]
    pub fn l4_len(&self) -> usize {
        self.l3_end().saturating_sub(self.l4_off())
    }

    #[inline(always)]
    pub fn l4(&self) -> L4Kind {
        self.l4
    }

    /// MF set or a non-zero fragment offset.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.fragment
    }

    /// Fragment offset zero (unfragmented packets too).
    #[inline(always)]
    pub fn is_first_fragment(&self) -> bool {
        self.l4 != L4Kind::Later
    }

    /// An ICMP error with a usable quote (at `l4_off + 8`).
    #[inline(always)]
    pub fn has_quote(&self) -> bool {
        self.quote
    }
}

/// The L4 part of an [`Ipv4Frame`], as the view of the header the layout
/// names.
pub enum L4View<B: AsRef<[u8]>> {
    Later,
    Tcp(TcpPacket<B>),
    Udp(UdpPacket<B>),
    Icmp(IcmpPacket<B>),
    Other,
}

/// A frame and its validated [`Layout`]: the one representation the
/// `forward` rewrites take.
#[derive(Debug)]
pub struct Ipv4Frame<T: AsRef<[u8]>> {
    buf: T,
    at: Layout,
}

impl<T: AsRef<[u8]>> Ipv4Frame<T> {
    /// `buf` with `at`, when the buffer holds the whole IP packet. Only
    /// [`Parsed::ipv4`](super::Parsed::ipv4) calls it.
    #[inline(always)]
    pub(super) fn bind(buf: T, at: Layout) -> Option<Ipv4Frame<T>> {
        if at.l3_end() <= buf.as_ref().len() {
            Some(Ipv4Frame { buf, at })
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn layout(&self) -> &Layout {
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

    /// The IPv4 header (options included).
    #[inline(always)]
    pub fn ip(&self) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_unchecked(&self.buf.as_ref()[self.at.l3_off()..self.at.l4_off()])
    }

    /// The L4 bytes, `l4_off..l3_end` (padding excluded).
    #[inline(always)]
    pub fn l4_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[self.at.l4_off()..self.at.l3_end()]
    }

    /// The L4 header the parser validated.
    #[inline(always)]
    pub fn l4(&self) -> L4View<&[u8]> {
        view(self.at.l4, self.l4_bytes())
    }

    #[inline]
    pub fn tcp(&self) -> Option<TcpPacket<&[u8]>> {
        match self.l4() {
            L4View::Tcp(t) => Some(t),
            _ => None,
        }
    }

    #[inline]
    pub fn udp(&self) -> Option<UdpPacket<&[u8]>> {
        match self.l4() {
            L4View::Udp(u) => Some(u),
            _ => None,
        }
    }

    #[inline]
    pub fn icmp(&self) -> Option<IcmpPacket<&[u8]>> {
        match self.l4() {
            L4View::Icmp(m) => Some(m),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.ip().ttl()
    }

    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.ip().tos()
    }

    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.ip().dont_frag()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Frame<T> {
    /// The whole frame, writable (e.g. the Ethernet addresses).
    #[inline(always)]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// The IPv4 header, writable.
    #[inline(always)]
    pub fn ip_mut(&mut self) -> Ipv4Packet<&mut [u8]> {
        let (l3, l4) = (self.at.l3_off(), self.at.l4_off());
        Ipv4Packet::new_unchecked(&mut self.buf.as_mut()[l3..l4])
    }

    /// The TCP header, writable, when the layout found one.
    #[inline]
    pub fn tcp_mut(&mut self) -> Option<TcpPacket<&mut [u8]>> {
        match self.split_mut().1 {
            L4View::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// The IPv4 header and the L4 header's view, both writable: what a
    /// rewrite of addresses and ports changes.
    #[inline(always)]
    pub fn split_mut(&mut self) -> (Ipv4Packet<&mut [u8]>, L4View<&mut [u8]>) {
        let at = self.at;
        let (ip, l4) = self.buf.as_mut()[at.l3_off()..at.l3_end()].split_at_mut(at.header_len());
        (Ipv4Packet::new_unchecked(ip), view(at.l4, l4))
    }
}

/// The view `kind` names over `l4`. The header lengths were checked by the
/// parser; the views clamp variable-length regions in any case.
#[inline(always)]
fn view<B: AsRef<[u8]>>(kind: L4Kind, l4: B) -> L4View<B> {
    debug_assert!(match kind {
        L4Kind::Tcp => l4.as_ref().len() >= tcp::MIN_HEADER_LEN,
        L4Kind::Udp => l4.as_ref().len() >= udp::HEADER_LEN,
        L4Kind::Icmp => l4.as_ref().len() >= icmp::HEADER_LEN,
        _ => true,
    });
    match kind {
        L4Kind::Later => L4View::Later,
        L4Kind::Tcp => L4View::Tcp(TcpPacket::new_unchecked(l4)),
        L4Kind::Udp => L4View::Udp(UdpPacket::new_unchecked(l4)),
        L4Kind::Icmp => L4View::Icmp(IcmpPacket::new_unchecked(l4)),
        L4Kind::Other => L4View::Other,
    }
}

/// Smallest L4 part of an ICMP error with a usable quote: the ICMP header,
/// an IPv4 header, 8 bytes.
pub const QUOTE_MIN_L4_LEN: usize = icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8;
