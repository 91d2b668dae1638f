//! IPv6 header view (RFC 8200) and a bounded extension-header walk.
//!
//! The view covers the packet from the first byte of the fixed header; the
//! buffer may extend past `40 + payload_len` (Ethernet padding), and
//! [`Ipv6Packet::payload`] stops at the payload length so padding never
//! reaches L4 checksums. Jumbograms (payload length 0 with a hop-by-hop
//! jumbo option) are not supported: payload length 0 means an empty payload.
//!
//! The walk ([`walk_extensions`]) follows hop-by-hop, routing, fragment and
//! destination options headers, at most [`MAX_EXT_HEADERS`] of them, and
//! stops at anything else (TCP, UDP, ICMPv6, AH, ESP, No Next Header,
//! unknown), returning that protocol and its offset. A non-first fragment
//! ends the walk too: it carries no upper-layer header.

use std::net::Ipv6Addr;

use super::{clamp, clamp_mut, get_u16, get_u32, set_u16, set_u32, DropReason};

/// IPv6 next-header values the walk and the director care about.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The most extension headers the walk follows before dropping the packet.
/// RFC 8200 section 4.1 recommends at most one of each kind (destination
/// options twice): 6 in practice; 8 leaves room without letting a chain of
/// tiny headers cost unbounded work per packet.
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

#[inline(always)]
fn get_addr6(data: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&data[off..off + 16]);
    Ipv6Addr::from(a)
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Validates, in this order: at least 40 bytes
    /// ([`DropReason::TruncatedIpv6`]), version 6 (`BadIpVersion`),
    /// `40 + payload_len <= buffer length` (`BadIpv6PayloadLength`). Bytes
    /// after the payload are padding and ignored.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::TruncatedIpv6);
        }
        if b[field::VER_TC_FL] >> 4 != 6 {
            return Err(DropReason::BadIpVersion);
        }
        if HEADER_LEN + usize::from(get_u16(b, field::PAYLOAD_LEN)) > b.len() {
            return Err(DropReason::BadIpv6PayloadLength);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn first_word(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FL)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// The whole traffic class byte (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000F_FFFF
    }

    /// Length of everything after the fixed header (extensions included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// `40 + payload_len`: one past the packet; later bytes are padding.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The first next-header value (an extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        get_addr6(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        get_addr6(self.buffer.as_ref(), field::DST)
    }

    /// Extensions + upper layer, up to the payload length (no padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), HEADER_LEN, self.total_len())
    }

    /// Walks the extension headers of this packet ([`walk_extensions`]).
    #[inline]
    pub fn walk(&self) -> Result<ExtWalk, DropReason> {
        walk_extensions(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_first_word(&mut self, w: u32) {
        set_u32(self.buffer.as_mut(), field::VER_TC_FL, w);
    }

    /// Writes version 6, keeping traffic class and flow label.
    #[inline]
    pub fn set_version(&mut self) {
        let w = self.first_word();
        self.set_first_word((w & 0x0FFF_FFFF) | 0x6000_0000);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = self.first_word();
        self.set_first_word((w & 0xF00F_FFFF) | (u32::from(tc) << 20));
    }

    /// Sets the flow label (its low 20 bits).
    #[inline]
    pub fn set_flow_label(&mut self, fl: u32) {
        let w = self.first_word();
        self.set_first_word((w & 0xFFF0_0000) | (fl & 0x000F_FFFF));
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }

    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// Mutable payload, up to the payload length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

/// The fragment header's fields (RFC 8200 section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Fragment {
    /// Offset of this fragment's data in the original payload, in bytes
    /// (the 13-bit field times 8).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more: bool,
    pub ident: u32,
    /// Offset of the fragment header from the start of the IPv6 payload.
    pub header_off: u16,
}

impl Ipv6Fragment {
    /// Offset zero: this fragment starts with the upper-layer header.
    #[inline]
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Offset zero and no more fragments (RFC 6946): the whole packet.
    #[inline]
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Result of the extension-header walk. Offsets are from the start of the
/// IPv6 *payload* (add 40 for the offset from the fixed header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtWalk {
    /// The next header that ended the walk: TCP/UDP/ICMPv6, AH, ESP, No Next
    /// Header or unknown, as is. For a non-first fragment, the fragment
    /// header's next header (whose header is in the first fragment).
    pub protocol: u8,
    /// Where `protocol`'s header starts (the bytes after the last extension
    /// header walked).
    pub l4_off: u16,
    /// Extension headers walked.
    pub count: u8,
    /// The fragment header, if there was one.
    pub fragment: Option<Ipv6Fragment>,
    /// Segments left of the routing header, if there was one: non-zero means
    /// the destination address is not the final one.
    pub routing_segments_left: Option<u8>,
}

impl ExtWalk {
    /// The upper-layer header is in this packet: unfragmented or a first
    /// fragment.
    #[inline]
    pub fn has_l4_header(&self) -> bool {
        self.fragment.is_none_or(|f| f.is_first())
    }
}

/// Walks the extension headers of an IPv6 payload (`payload` is exactly the
/// payload-length bytes after the fixed header; `first` is the fixed
/// header's next header).
///
/// Errors: a header running past `payload` ([`DropReason::TruncatedIpv6Ext`]),
/// more than [`MAX_EXT_HEADERS`] headers or a hop-by-hop header that is not
/// the first (`BadIpv6ExtChain`). Never panics, at most `MAX_EXT_HEADERS`
/// iterations.
#[inline]
pub fn walk_extensions(first: u8, payload: &[u8]) -> Result<ExtWalk, DropReason> {
    let mut w = ExtWalk {
        protocol: first,
        l4_off: 0,
        count: 0,
        fragment: None,
        routing_segments_left: None,
    };
    let mut off = 0usize;
    loop {
        let len = match w.protocol {
            next_header::HOP_BY_HOP if w.count != 0 => return Err(DropReason::BadIpv6ExtChain),
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                let hdr = payload
                    .get(off..off + 2)
                    .ok_or(DropReason::TruncatedIpv6Ext)?;
                (usize::from(hdr[1]) + 1) * 8
            }
            next_header::FRAGMENT => FRAGMENT_HEADER_LEN,
            _ => break,
        };
        if w.count as usize == MAX_EXT_HEADERS {
            return Err(DropReason::BadIpv6ExtChain);
        }
        let hdr = payload
            .get(off..off + len)
            .ok_or(DropReason::TruncatedIpv6Ext)?;
        let next = hdr[0];
        w.count += 1;
        match w.protocol {
            next_header::ROUTING => {
                // Segments left is byte 3 (RFC 8200 section 4.4); the 8-byte
                // minimum length covers it.
                w.routing_segments_left = Some(hdr[3]);
            }
            next_header::FRAGMENT => {
                let fo = get_u16(hdr, 2);
                let frag = Ipv6Fragment {
                    offset: fo & 0xFFF8,
                    more: fo & 1 != 0,
                    ident: get_u32(hdr, 4),
                    header_off: off as u16,
                };
                w.fragment = Some(frag);
                if !frag.is_first() {
                    w.protocol = next;
                    w.l4_off = (off + len) as u16;
                    return Ok(w);
                }
            }
            _ => {}
        }
        w.protocol = next;
        off += len;
    }
    // At most 8 headers of at most 2048 bytes: fits u16.
    w.l4_off = off as u16;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x6A, 0xB1, 0x23, 0x45];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[nh, 64]);
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn fixed_header_fields_and_setters() {
        let mut p = packet(next_header::NO_NEXT, &[]);
        p.extend_from_slice(&[0xEE; 6]); // padding
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.version(), 6);
        assert_eq!(v.traffic_class(), 0xAB);
        assert_eq!(v.flow_label(), 0x12345);
        assert_eq!((v.payload_len(), v.total_len()), (0, 40));
        assert!(v.payload().is_empty(), "padding is not payload");
        let mut m = Ipv6Packet::new_unchecked(&mut p[..]);
        m.set_traffic_class(0x01);
        m.set_flow_label(0xFFFFF);
        m.set_hop_limit(1);
        m.set_dst(Ipv6Addr::LOCALHOST);
        m.set_payload_len(2);
        m.set_next_header(17);
        assert_eq!(m.version(), 6);
        assert_eq!(m.traffic_class(), 0x01);
        assert_eq!(m.flow_label(), 0xFFFFF);
        assert_eq!(m.hop_limit(), 1);
        assert_eq!(m.dst(), Ipv6Addr::LOCALHOST);
        assert_eq!(m.payload(), &[0xEE, 0xEE]);
        assert_eq!(&p[..8], &[0x60, 0x1F, 0xFF, 0xFF, 0, 2, 17, 1]);
    }

    #[test]
    fn walk_bounds() {
        // Eight destination-options headers then TCP: accepted; nine: not.
        let chain = |n: usize| {
            let mut pl = Vec::new();
            for i in 0..n {
                let nh = if i + 1 == n { 6 } else { 60 };
                pl.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]);
            }
            pl
        };
        let w = walk_extensions(60, &chain(8)).unwrap();
        assert_eq!((w.protocol, w.l4_off, w.count), (6, 64, 8));
        assert_eq!(
            walk_extensions(60, &chain(9)),
            Err(DropReason::BadIpv6ExtChain)
        );
        // Hop-by-hop after the first header.
        assert_eq!(
            walk_extensions(60, &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0]),
            Err(DropReason::BadIpv6ExtChain)
        );
        // Unknown / AH / ESP / no-next end the walk untouched.
        for nh in [next_header::AH, next_header::ESP, next_header::NO_NEXT, 253] {
            let w = walk_extensions(nh, &[]).unwrap();
            assert_eq!((w.protocol, w.l4_off, w.count), (nh, 0, 0));
        }
    }
}
