//! Zero-copy typed views over frame bytes, in the style of smoltcp's `wire`.
//!
//! Every protocol has a view `Xxx<T: AsRef<[u8]>>` that wraps a byte buffer:
//!
//! * `new_unchecked(buf)` wraps without looking at the bytes;
//! * `new_checked(buf)` also validates every length the getters rely on and
//!   returns the [`DropReason`] the data plane counts when it does not hold;
//! * getters read fields straight from the buffer (no owned copies);
//! * setters exist when `T: AsMut<[u8]>`.
//!
//! After `new_checked` succeeded, no getter or setter can index out of
//! bounds. Variable-length regions (options, payload) are clamped rather than
//! indexed, so even a header whose length fields were changed afterwards
//! cannot make them panic.
//!
//! [`parse::parse_frame`] is the one function the data plane calls per
//! packet off the fixed-offset fast paths; it produces a small `Copy`
//! [`Parsed`]: where the headers are (a [`Layout`], which only the parsers
//! can make) and the fields the full path decides with, decoded once. The
//! rewrites in `forward` take the frame and its layout as one value,
//! [`Ipv4Frame`] (`Parsed::ipv4(buf)`, [`frame`]): a buffer whose headers the
//! parser validated, with typed sub-views (`ip()`, `tcp()`, `udp()`,
//! `icmp()`, `split_mut()`) that need no checks. [`parse_ipv6::parse_ipv6`]
//! is its IPv6 twin: its [`Ipv6Parsed`] holds a [`Layout6`] and binds the
//! frame as an [`Ipv6Frame`] (`Ipv6Parsed::ipv6(buf)`, [`frame6`]), which
//! the IPv6 rewrites take.

pub mod arp;
pub mod checksum;
pub mod drop_reason;
pub mod ethernet;
pub mod frame;
pub mod frame6;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod parse;
pub mod parse_fast;
pub mod parse_fast6;
pub mod parse_ipv6;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use drop_reason::DropReason;
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use frame::{Ipv4Frame, L4Kind, L4View, Layout};
pub use frame6::{Ipv6Frame, L4View6, Layout6};
pub use icmp::IcmpPacket;
pub use icmpv6::{Icmpv6Packet, NeighborAdvert, NeighborSolicit};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use parse::{parse_frame, parse_frame_full, quoted_flow, L3Class, Parsed, QuotedFlow};
pub use parse_ipv6::{parse_ipv6, Ipv6Parsed};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

use std::net::Ipv4Addr;

/// Big-endian field accessors shared by the views. Callers guarantee
/// `off + N <= data.len()` (the checked constructors establish it).
#[inline(always)]
pub(crate) fn get_u16(data: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([data[off], data[off + 1]])
}

#[inline(always)]
pub(crate) fn get_u32(data: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
}

#[inline(always)]
pub(crate) fn set_u16(data: &mut [u8], off: usize, v: u16) {
    data[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_u32(data: &mut [u8], off: usize, v: u32) {
    data[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn get_addr(data: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::from(get_u32(data, off))
}

#[inline(always)]
pub(crate) fn set_addr(data: &mut [u8], off: usize, a: Ipv4Addr) {
    data[off..off + 4].copy_from_slice(&a.octets());
}

/// `data[start..end]`, or an empty slice when the range does not fit.
#[inline(always)]
pub(crate) fn clamp(data: &[u8], start: usize, end: usize) -> &[u8] {
    data.get(start..end).unwrap_or(&[])
}

/// Mutable twin of [`clamp`].
#[inline(always)]
pub(crate) fn clamp_mut(data: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    data.get_mut(start..end).unwrap_or(&mut [])
}
