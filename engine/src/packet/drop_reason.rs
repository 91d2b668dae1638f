//! Why a frame was refused by the parser.
//!
//! One variant per counter: the data plane keeps `[u64; DropReason::COUNT]`
//! per worker, indexed by [`DropReason::index`], and the control plane labels
//! them with [`DropReason::as_str`].

use std::fmt;

/// A reason to drop a malformed frame. `Copy`, one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the 14-byte Ethernet header.
    TruncatedEthernet,
    /// ARP payload shorter than the 28 bytes of an Ethernet/IPv4 ARP packet.
    TruncatedArp,
    /// ARP for another hardware or protocol type (or odd address lengths).
    UnsupportedArp,
    /// Fewer than 20 bytes, or fewer than the IHL announces.
    TruncatedIpv4,
    /// Version field is not 4.
    BadIpVersion,
    /// IHL below 5.
    BadIhl,
    /// Total length smaller than the header, or larger than the frame.
    BadTotalLength,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// Fewer than 20 bytes of TCP header.
    TruncatedTcp,
    /// TCP data offset below 5 or beyond the segment.
    BadTcpDataOffset,
    /// Fewer than 8 bytes of UDP header.
    TruncatedUdp,
    /// UDP length below 8 or beyond the IP payload.
    BadUdpLength,
    /// Fewer than 8 bytes of ICMP header.
    TruncatedIcmp,
    /// An 802.1Q tag without the 4 bytes of tag (TCI + inner EtherType).
    TruncatedVlan,
    /// Fewer than the 40 bytes of the IPv6 fixed header.
    TruncatedIpv6,
    /// IPv6 payload length beyond the frame.
    BadIpv6PayloadLength,
    /// An IPv6 extension header runs past the payload length.
    TruncatedIpv6Ext,
    /// More IPv6 extension headers than the walk allows, or a hop-by-hop
    /// header that is not the first one (RFC 8200 section 4.1).
    BadIpv6ExtChain,
    /// Fewer than 8 bytes of ICMPv6 header.
    TruncatedIcmpv6,
    /// A neighbour solicitation/advertisement that RFC 4861 section 7.1.1/7.1.2
    /// says to discard: short, code not 0, an option of length 0 or running
    /// past the message.
    BadNdp,
}

impl DropReason {
    /// Number of variants (length of a counter array).
    pub const COUNT: usize = 20;

    /// Every variant, in [`index`](Self::index) order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::TruncatedEthernet,
        DropReason::TruncatedArp,
        DropReason::UnsupportedArp,
        DropReason::TruncatedIpv4,
        DropReason::BadIpVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLength,
        DropReason::BadIpChecksum,
        DropReason::TruncatedTcp,
        DropReason::BadTcpDataOffset,
        DropReason::TruncatedUdp,
        DropReason::BadUdpLength,
        DropReason::TruncatedIcmp,
        DropReason::TruncatedVlan,
        DropReason::TruncatedIpv6,
        DropReason::BadIpv6PayloadLength,
        DropReason::TruncatedIpv6Ext,
        DropReason::BadIpv6ExtChain,
        DropReason::TruncatedIcmpv6,
        DropReason::BadNdp,
    ];

    /// Dense index in `0..COUNT`, for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name, used as a counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "truncated_ethernet",
            DropReason::TruncatedArp => "truncated_arp",
            DropReason::UnsupportedArp => "unsupported_arp",
            DropReason::TruncatedIpv4 => "truncated_ipv4",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadIhl => "bad_ihl",
            DropReason::BadTotalLength => "bad_total_length",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::TruncatedTcp => "truncated_tcp",
            DropReason::BadTcpDataOffset => "bad_tcp_data_offset",
            DropReason::TruncatedUdp => "truncated_udp",
            DropReason::BadUdpLength => "bad_udp_length",
            DropReason::TruncatedIcmp => "truncated_icmp",
            DropReason::TruncatedVlan => "truncated_vlan",
            DropReason::TruncatedIpv6 => "truncated_ipv6",
            DropReason::BadIpv6PayloadLength => "bad_ipv6_payload_length",
            DropReason::TruncatedIpv6Ext => "truncated_ipv6_ext",
            DropReason::BadIpv6ExtChain => "bad_ipv6_ext_chain",
            DropReason::TruncatedIcmpv6 => "truncated_icmpv6",
            DropReason::BadNdp => "bad_ndp",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique_snake_case() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            let s = r.as_str();
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert_eq!(r.to_string(), s);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(DropReason::TruncatedEthernet.as_str(), "truncated_ethernet");
        assert_eq!(DropReason::BadIpChecksum.as_str(), "bad_ip_checksum");
    }
}
