//! The rewrites of one frame for each forwarding method, in place.
//!
//! Every function takes the frame (`&mut [u8]`, the mbuf data) and the
//! [`Parsed`] summary `parse_frame` produced for it, and touches only the
//! bytes that change. Checksums are updated incrementally (RFC 1624); only
//! the rare ICMP paths recompute an ICMP checksum over its message.
//!
//! Every method is a routed hop, as in IPVS: the caller first asks
//! [`ttl_expired`] (a packet with TTL <= 1 is answered with
//! [`icmp_time_exceeded`] or dropped, never forwarded) and every rewrite
//! below also refuses such a packet with [`ForwardError::TtlExpired`].
//!
//! All functions validate the offsets in `Parsed` against the frame before
//! writing anything: on `Err` the frame is unchanged, and no input (even a
//! `Parsed` that does not belong to the frame) can make them panic.

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
    decrement_ttl_fixed, dr_fixed, dr_fixed_pair, mac_pair, nat_fixed, nat_fixed_pair, tun_fixed,
    NatSide, TunTemplate,
};
pub use fast6::{dr6_fixed, nat6_fixed};
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

use crate::packet::ipv4;
use crate::packet::{L3Class, Parsed};

/// Why a rewrite was refused. The frame is unchanged when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardError {
    /// The frame is not IPv4 (`Parsed::l3`).
    NotIpv4,
    /// `Parsed` offsets/lengths do not fit the frame (a caller bug).
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

/// The IPv4 header and the L4 bytes (to `l3_end`, padding excluded) of an
/// IPv4 frame, checked against the frame so fixed-offset header fields are
/// in bounds.
pub(crate) fn split_l3_l4<'a>(
    frame: &'a mut [u8],
    p: &Parsed,
) -> Result<(&'a mut [u8], &'a mut [u8]), ForwardError> {
    let (l3, l4, end) = l3_bounds(frame, p)?;
    let (ip, rest) = frame[l3..end].split_at_mut(l4 - l3);
    Ok((ip, rest))
}

/// The IPv4 header only.
pub(crate) fn ip_header<'a>(frame: &'a mut [u8], p: &Parsed) -> Result<&'a mut [u8], ForwardError> {
    let (l3, l4, _) = l3_bounds(frame, p)?;
    Ok(&mut frame[l3..l4])
}

/// `(l3_off, l4_off, l3_end)` after checking `l3_off + 20 <= l4_off <=
/// l3_end <= frame.len()` and that `l4_off - l3_off` is a legal IHL.
fn l3_bounds(frame: &[u8], p: &Parsed) -> Result<(usize, usize, usize), ForwardError> {
    if p.l3 != L3Class::Ipv4 {
        return Err(ForwardError::NotIpv4);
    }
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    let end = p.l3_end();
    let hl = l4.wrapping_sub(l3);
    if l4 < l3
        || !(ipv4::MIN_HEADER_LEN..=ipv4::MAX_HEADER_LEN).contains(&hl)
        || end < l4
        || end > frame.len()
    {
        return Err(ForwardError::Mismatch);
    }
    Ok((l3, l4, end))
}
