//! The rewrites of one frame for each forwarding method, in place.
//!
//! The full path's rewrites take the frame as one value, an
//! [`Ipv4Frame`](crate::packet::Ipv4Frame): the mbuf data with the layout
//! the parser validated (made from the frame's [`Parsed`] by
//! [`ipv4_frame`]), and touch only the bytes that change, through the
//! frame's typed views. Checksums are updated incrementally (RFC 1624);
//! only the rare ICMP paths recompute an ICMP checksum over its message.
//! The IPv6 rewrites take an [`Ipv6Frame`](crate::packet::Ipv6Frame) the
//! same way ([`ipv6_frame`]). The fixed-offset rewrites of the common
//! shape (`fast`, `fast6`) are separate.
//!
//! Every method is a routed hop, as in IPVS: the caller first asks
//! [`ttl_expired`] (a packet with TTL <= 1 is answered with
//! [`icmp_time_exceeded`] or dropped, never forwarded) and every rewrite
//! below also refuses such a packet with [`ForwardError::TtlExpired`].
//!
//! The offsets need no checking here: an `Ipv4Frame` (`Ipv6Frame`) is
//! made only from what the parser validated, over a buffer that holds the
//! whole IP packet. What
//! the rewrites still check is what the bytes say (a TTL, a quoted header):
//! on `Err` the frame is unchanged, and no bytes can make them panic.

mod fast;
mod fast6;
mod fnat;
mod icmp46;
mod icmp6;
mod icmp_nat;
mod icmp_reply;
mod nat;
mod nat6;
mod nat64;
mod nat64_frag;
mod routed;
mod routed6;
mod tun;

pub use fast::{
    decrement_ttl_fixed, dr_fixed, dr_fixed_pair, mac_pair, nat_fixed, nat_fixed_l3,
    nat_fixed_pair, tun_fixed, NatSide, TunTemplate,
};
pub use fast6::{addr6_sum, dr6_fixed, dr6_pair, nat6_fixed, nat6_sum};
pub use fnat::{fnat_rewrite, icmp_error_fnat, IcmpFnat};
pub use icmp46::{icmp6_to_icmp4, Icmp46, ICMP4_ERROR_MAX};
pub use icmp6::{
    icmp6_error_nat_inbound, icmp6_error_nat_outbound, icmp6_packet_too_big, icmp6_time_exceeded,
    quoted_flow6, QuotedFlow6, ICMP6_ERROR_MAX_LEN, IPV6_MIN_MTU,
};
pub use icmp_nat::{icmp_error_nat_inbound, icmp_error_nat_outbound};
pub use icmp_reply::{icmp_frag_needed, icmp_time_exceeded, ICMP_ERROR_MAX_LEN};
pub use nat::{nat_inbound, nat_outbound};
pub use nat6::{nat6_inbound, nat6_outbound};
pub use nat64::{
    icmp4_to_icmp6, write_v4 as nat64_write_v4, write_v6 as nat64_write_v6, Icmp64, To4, To6,
    GROWTH as NAT64_GROWTH, L4_OFF_V4 as NAT64_L4_OFF_V4, L4_OFF_V6 as NAT64_L4_OFF_V6,
};
pub use nat64_frag::{
    write_v4_frag as nat64_write_v4_frag, write_v6_frag as nat64_write_v6_frag, FragFields,
    L4_OFF_V6_FRAG as NAT64_L4_OFF_V6_FRAG,
};
pub use routed::{decrement_ttl, dr, set_macs, ttl_expired};
pub use routed6::{decrement_hop_limit, dr6, tun6_encap_in_place, IPV6_IN_IPV6, TUN6_OVERHEAD};
pub use tun::{tun_encap_header, tun_encap_in_place, tun_fits_mtu, TUN_OVERHEAD};

use std::fmt;

use crate::packet::icmp;
use crate::packet::{Ipv4Frame, Ipv4Packet, Ipv6Frame, Ipv6Parsed, L3Class, L4View, Parsed};

/// Why a rewrite was refused. The frame is unchanged when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardError {
    /// The frame is not IPv4 (`Parsed::l3`).
    NotIpv4,
    /// The frame is shorter than the IP packet `Parsed` describes (not the
    /// frame it was parsed from: a caller bug), or too short for the
    /// Ethernet header.
    Mismatch,
    /// TTL <= 1: must not be forwarded.
    TtlExpired,
    /// The method does not handle this protocol (e.g. NAT of ICMP echo).
    UnsupportedProtocol,
    /// A fragmented ICMP error (its checksum spans fragments).
    Fragmented,
    /// Not an ICMP error with a usable quote.
    NoQuote,
    /// The output buffer is too small.
    BufferTooSmall,
    /// The encapsulated packet would exceed 65535 bytes.
    TooBig,
    /// RFC 1122/1812 forbid an ICMP error here (about an ICMP error, a
    /// non-first fragment, or a broadcast/multicast/unspecified source).
    IcmpSuppressed,
}

impl ForwardError {
    /// Stable snake_case name for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardError::NotIpv4 => "not_ipv4",
            ForwardError::Mismatch => "mismatch",
            ForwardError::TtlExpired => "ttl_expired",
            ForwardError::UnsupportedProtocol => "unsupported_protocol",
            ForwardError::Fragmented => "fragmented",
            ForwardError::NoQuote => "no_quote",
            ForwardError::BufferTooSmall => "buffer_too_small",
            ForwardError::TooBig => "too_big",
            ForwardError::IcmpSuppressed => "icmp_suppressed",
        }
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ForwardError {}

/// The IPv4 frame `p` was parsed from, as the rewrites take it: `NotIpv4`
/// for another class, `Mismatch` when `frame` is shorter than the IP
/// packet (not the frame `p` belongs to).
#[inline(always)]
pub fn ipv4_frame<T: AsRef<[u8]>>(p: &Parsed, frame: T) -> Result<Ipv4Frame<T>, ForwardError> {
    if p.l3 != L3Class::Ipv4 {
        return Err(ForwardError::NotIpv4);
    }
    p.ipv4(frame).ok_or(ForwardError::Mismatch)
}

/// The IPv6 frame `p` was parsed from, as the IPv6 rewrites take it:
/// `Mismatch` when `frame` is shorter than the IPv6 packet (not the frame
/// `p` belongs to).
#[inline(always)]
pub fn ipv6_frame<T: AsRef<[u8]>>(p: &Ipv6Parsed, frame: T) -> Result<Ipv6Frame<T>, ForwardError> {
    p.ipv6(frame).ok_or(ForwardError::Mismatch)
}

/// The outer IPv4 header and the ICMP message of an ICMP error with a
/// usable quote (at [`icmp::HEADER_LEN`] in the message, at least an IPv4
/// header and 8 bytes: the parser checked), writable. `NoQuote` when the
/// frame is not such an error, `Fragmented` when it is a fragment (its ICMP
/// checksum spans fragments we do not see).
pub(crate) fn icmp_error_parts<T: AsRef<[u8]> + AsMut<[u8]>>(
    frame: &mut Ipv4Frame<T>,
) -> Result<(Ipv4Packet<&mut [u8]>, &mut [u8]), ForwardError> {
    let at = *frame.layout();
    let (ip, l4) = frame.split_mut();
    let L4View::Icmp(msg) = l4 else {
        return Err(ForwardError::NoQuote);
    };
    if !icmp::is_error(msg.msg_type()) {
        return Err(ForwardError::NoQuote);
    }
    if at.is_fragment() {
        return Err(ForwardError::Fragmented);
    }
    if !at.has_quote() {
        return Err(ForwardError::NoQuote);
    }
    Ok((ip, msg.into_inner()))
}
