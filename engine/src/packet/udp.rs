//! UDP header view (RFC 768).
//!
//! A zero checksum means "not computed" and must be left alone by rewrites;
//! a computed zero is sent as 0xFFFF. The UDP length may be shorter than the
//! IP payload (the extra bytes are not part of the datagram), never longer.

use std::net::Ipv4Addr;

use super::ipv4::proto;
use super::{checksum, clamp, clamp_mut, get_u16, set_u16, DropReason};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view over a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// At least 8 bytes ([`DropReason::TruncatedUdp`]); 8 <= length <= buffer
    /// length (`BadUdpLength`).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::TruncatedUdp);
        }
        let len = usize::from(get_u16(b, field::LENGTH));
        if len < HEADER_LEN || len > b.len() {
            return Err(DropReason::BadUdpLength);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Header + payload length as carried in the header.
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Payload up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }

    /// Verifies the checksum over `len` bytes; a zero checksum ("none")
    /// always verifies.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = clamp(self.buffer.as_ref(), 0, usize::from(self.len()));
        checksum::ipv4_l4_verify(src, dst, proto::UDP, d)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    #[inline]
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Full recompute over `len` bytes, with the 0 -> 0xFFFF rule.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = usize::from(self.len());
        let c =
            checksum::ipv4_l4_checksum(src, dst, proto::UDP, clamp(self.buffer.as_ref(), 0, len));
        self.set_checksum(checksum::udp_final(c));
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 2, 2, 2);

    fn sample() -> Vec<u8> {
        // 5353 -> 53, len 11, checksum 0, "abc", then 2 stray bytes.
        vec![
            0x14, 0xE9, 0x00, 0x35, 0x00, 0x0B, 0x00, 0x00, b'a', b'b', b'c', 0x99, 0x99,
        ]
    }

    #[test]
    fn getters() {
        let b = sample();
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(u.src_port(), 5353);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 11);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), b"abc");
        assert!(u.verify_checksum(SRC, DST), "zero checksum means none");
    }

    #[test]
    fn setters_and_checksum() {
        let mut b = sample();
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(1000);
        u.set_dst_port(2000);
        u.payload_mut()[2] = b'C';
        u.fill_checksum(SRC, DST);
        assert!(u.verify_checksum(SRC, DST));
        assert!(!u.verify_checksum(SRC, SRC));
        // Stray bytes after `len` are outside the checksum.
        b[11] = 0;
        let u = UdpPacket::new_unchecked(&b[..]);
        assert!(u.verify_checksum(SRC, DST));
        assert_eq!(&b[..6], &[0x03, 0xE8, 0x07, 0xD0, 0, 11]);
        assert_eq!(&b[8..11], b"abC");
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_len(8);
        assert!(u.is_empty());
        assert!(u.payload().is_empty());
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Search for a payload word that makes the computed checksum 0.
        let mut b = [0u8; 10];
        b[4..6].copy_from_slice(&10u16.to_be_bytes());
        let mut found = false;
        for w in 0..=u16::MAX {
            b[8..10].copy_from_slice(&w.to_be_bytes());
            b[6..8].copy_from_slice(&[0, 0]);
            let c = checksum::ipv4_l4_checksum(SRC, DST, proto::UDP, &b);
            if c == 0 {
                let mut u = UdpPacket::new_unchecked(&mut b[..]);
                u.fill_checksum(SRC, DST);
                assert_eq!(u.checksum(), 0xFFFF);
                assert!(u.verify_checksum(SRC, DST));
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn checked_rejects_each_case() {
        let b = sample();
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).unwrap_err(),
            DropReason::TruncatedUdp
        );
        let mut v = b.clone();
        v[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&v[..]).unwrap_err(),
            DropReason::BadUdpLength
        );
        assert_eq!(
            UdpPacket::new_checked(&b[..10]).unwrap_err(),
            DropReason::BadUdpLength
        );
        assert!(UdpPacket::new_checked(&b[..11]).is_ok());
    }
}
