//! IPv4 header view (RFC 791), options allowed (IHL 5..=15).
//!
//! The view covers the IP packet from its first header byte; the buffer may
//! extend past `total_len` (Ethernet padding), and [`Ipv4Packet::payload`]
//! stops at `total_len` so padding never reaches L4 checksums.

use std::net::Ipv4Addr;

use super::{checksum, clamp, clamp_mut, get_addr, get_u16, set_addr, set_u16, DropReason};

/// IP protocol numbers the director cares about.
pub mod proto {
    pub const ICMP: u8 = 1;
    /// IP-in-IP (RFC 2003), used by the TUN forwarding method.
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Length of a header with the maximum 40 bytes of options.
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Validates, in this order: at least 20 bytes ([`DropReason::TruncatedIpv4`]),
    /// version 4 (`BadIpVersion`), IHL >= 5 (`BadIhl`), header fits the buffer
    /// (`TruncatedIpv4`), header_len <= total_len <= buffer length
    /// (`BadTotalLength`). The checksum is verified separately
    /// ([`verify_checksum`](Self::verify_checksum)).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TruncatedIpv4);
        }
        let vihl = b[field::VER_IHL];
        if vihl >> 4 != 4 {
            return Err(DropReason::BadIpVersion);
        }
        let hl = usize::from(vihl & 0x0F) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(DropReason::BadIhl);
        }
        if hl > b.len() {
            return Err(DropReason::TruncatedIpv4);
        }
        let total = usize::from(get_u16(b, field::LENGTH));
        if total < hl || total > b.len() {
            return Err(DropReason::BadTotalLength);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0F
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The whole TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Offset zero: this packet carries the L4 header (fragmented or not).
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.flags_offset() & OFFSET_MASK == 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::DST)
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), 0, self.header_len())
    }

    /// Options (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), MIN_HEADER_LEN, self.header_len())
    }

    /// Bytes from the end of the header to `total_len` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamp(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }

    /// True when the header (options included) sums to 0xFFFF.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let h = self.header();
        match <&[u8; 20]>::try_from(h) {
            Ok(h20) => checksum::valid20(h20),
            Err(_) => checksum::sum(h) == 0xFFFF,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (v << 4);
    }

    /// Sets IHL from a length in bytes (must be a multiple of 4, 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let ecn = self.ecn();
        self.set_tos((v << 2) | ecn);
    }

    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let tos = self.tos();
        self.set_tos((tos & !0x03) | (v & 0x03));
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    #[inline]
    fn set_flags_offset(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    #[inline]
    pub fn set_dont_frag(&mut self, on: bool) {
        let v = self.flags_offset() & !FLAG_DF;
        self.set_flags_offset(if on { v | FLAG_DF } else { v });
    }

    #[inline]
    pub fn set_more_frags(&mut self, on: bool) {
        let v = self.flags_offset() & !FLAG_MF;
        self.set_flags_offset(if on { v | FLAG_MF } else { v });
    }

    /// Sets the fragment offset from a byte offset (multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = self.flags_offset() & !OFFSET_MASK;
        self.set_flags_offset(v | ((bytes >> 3) & OFFSET_MASK));
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::SRC, a);
    }

    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::DST, a);
    }

    /// Recomputes the header checksum from scratch (for headers we build; the
    /// forwarding path updates it incrementally instead).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let h = self.header();
        let c = match <&[u8; 20]>::try_from(h) {
            Ok(h20) => !checksum::sum20(h20),
            Err(_) => checksum::checksum(h),
        };
        self.set_checksum(c);
    }

    /// Mutable payload (header end to `total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        clamp_mut(self.buffer.as_mut(), hl, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 24-byte header (one 4-byte option: NOP NOP NOP EOL), 4 bytes payload,
    /// 2 bytes of padding after total_len.
    fn sample() -> Vec<u8> {
        let mut b = vec![
            0x46, 0xB8, 0x00, 0x1C, // v4 ihl6, tos 0xB8 (EF), total 28
            0x12, 0x34, 0x40, 0x00, // ident, DF
            0x40, 0x06, 0x00, 0x00, // ttl 64, tcp, checksum
            10, 0, 0, 1, // src
            10, 0, 0, 2, // dst
            0x01, 0x01, 0x01, 0x00, // options
            0xDE, 0xAD, 0xBE, 0xEF, // payload
            0xEE, 0xEE, // padding
        ];
        let c = checksum::checksum(&b[..24]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn getters() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 6);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0xB8);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert!(p.is_first_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), proto::TCP);
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn setters_round_trip() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_tos(0);
        p.set_dscp(10);
        p.set_ecn(3);
        p.set_ident(0xBEEF);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_ttl(1);
        p.set_protocol(proto::UDP);
        p.set_src(Ipv4Addr::new(192, 0, 2, 1));
        p.set_dst(Ipv4Addr::new(198, 51, 100, 2));
        p.payload_mut()[0] = 0xAA;
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.dscp(), 10);
        assert_eq!(p.ecn(), 3);
        assert_eq!(p.tos(), 43);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert!(!p.is_first_fragment());
        assert_eq!(p.ident(), 0xBEEF);
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), proto::UDP);
        assert_eq!(&b[4..8], &[0xBE, 0xEF, 0x20, 0xB9]);
        assert_eq!(&b[12..20], &[192, 0, 2, 1, 198, 51, 100, 2]);
        assert_eq!(b[24], 0xAA);

        let mut h = [0u8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(20);
        assert_eq!(h[0], 0x45);
        assert_eq!(&h[2..4], &[0, 20]);
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert!(p.payload().is_empty());
        assert!(p.options().is_empty());
    }

    #[test]
    fn first_fragment_with_mf() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_more_frags(true);
        assert!(p.is_fragment());
        assert!(p.is_first_fragment());
    }

    #[test]
    fn checked_rejects_each_case() {
        let b = sample();
        let bad = |buf: &[u8]| Ipv4Packet::new_checked(buf).unwrap_err();
        assert_eq!(bad(&b[..19]), DropReason::TruncatedIpv4);
        let mut v = b.clone();
        v[0] = 0x66;
        assert_eq!(bad(&v), DropReason::BadIpVersion);
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(bad(&v), DropReason::BadIhl);
        // IHL 6 says 24 bytes of header but only 22 present.
        assert_eq!(bad(&b[..22]), DropReason::TruncatedIpv4);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&23u16.to_be_bytes()); // < header_len
        assert_eq!(bad(&v), DropReason::BadTotalLength);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&31u16.to_be_bytes()); // > buffer (30)
        assert_eq!(bad(&v), DropReason::BadTotalLength);
        // Exactly the buffer length and padding are both fine.
        let mut v = b.clone();
        v[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert!(Ipv4Packet::new_checked(&v[..]).is_ok());
        assert!(Ipv4Packet::new_checked(&b[..28]).is_ok());
    }

    #[test]
    fn verify_detects_any_header_bit_flip() {
        let b = sample();
        for i in 0..24 {
            let mut v = b.clone();
            v[i] ^= 0x10;
            let p = Ipv4Packet::new_unchecked(&v[..]);
            if p.header_len() == 24 {
                assert!(!p.verify_checksum(), "byte {i}");
            }
        }
    }

    #[test]
    fn payload_clamps_after_bogus_setter() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_total_len(9999);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
        p.set_header_len(60);
        assert!(p.options().is_empty());
        assert!(!p.verify_checksum());
    }
}
