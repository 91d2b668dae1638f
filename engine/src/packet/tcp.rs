//! TCP header view (RFC 9293).
//!
//! The director only reads ports and flags (connection tracking) and rewrites
//! ports; options and payload pass through untouched.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use super::ipv4::proto;
use super::{checksum, clamp, get_u16, get_u32, set_u16, set_u32, DropReason};

/// The eight TCP flag bits (CWR ECE URG ACK PSH RST SYN FIN). `Copy`, one byte.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);
    pub const NONE: TcpFlags = TcpFlags(0);

    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// All bits of `other` are set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    #[inline]
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    #[inline]
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        f.write_str("TcpFlags(")?;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Byte offset of the checksum field (for callers updating it in place).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view over a TCP segment (header + payload, no IP padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// At least 20 bytes ([`DropReason::TruncatedTcp`]); data offset >= 5 and
    /// the header it announces fits the segment (`BadTcpDataOffset`).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TruncatedTcp);
        }
        let hl = usize::from(b[field::DATA_OFF] >> 4) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(DropReason::BadTcpDataOffset);
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Data offset in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFF] >> 4
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), MIN_HEADER_LEN, self.header_len())
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, self.header_len(), b.len())
    }

    /// Verifies the checksum over the whole buffer under the pseudo header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::ipv4_l4_verify(src, dst, proto::TCP, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, v);
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the data offset from a header length in bytes (multiple of 4).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0F) | (((len / 4) as u8) << 4);
    }

    #[inline]
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }

    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Full recompute over the whole buffer (for segments we build).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::ipv4_l4_checksum(src, dst, proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn sample() -> Vec<u8> {
        vec![
            0x30, 0x39, 0x00, 0x50, // 12345 -> 80
            0x01, 0x02, 0x03, 0x04, // seq
            0x05, 0x06, 0x07, 0x08, // ack
            0x60, 0x12, 0xFF, 0xFF, // doff 6, SYN|ACK, window
            0x00, 0x00, 0x00, 0x07, // checksum, urgent
            0x02, 0x04, 0x05, 0xB4, // MSS 1460
            b'h', b'i', b'!',
        ]
    }

    #[test]
    fn getters() {
        let b = sample();
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(t.src_port(), 12345);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0x01020304);
        assert_eq!(t.ack_number(), 0x05060708);
        assert_eq!(t.data_offset(), 6);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert!(t.flags().syn() && t.flags().ack());
        assert!(!t.flags().fin() && !t.flags().rst() && !t.flags().psh() && !t.flags().urg());
        assert_eq!(t.window(), 0xFFFF);
        assert_eq!(t.urgent(), 7);
        assert_eq!(t.options(), &[2, 4, 5, 0xB4]);
        assert_eq!(t.payload(), b"hi!");
    }

    #[test]
    fn setters_and_checksum_round_trip() {
        let mut b = sample();
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_seq_number(0xAABBCCDD);
        t.set_ack_number(0x11223344);
        t.set_flags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG);
        t.set_window(512);
        t.set_urgent(9);
        t.payload_mut()[0] = b'H';
        t.fill_checksum(SRC, DST);
        assert!(t.verify_checksum(SRC, DST));
        assert!(!t.verify_checksum(DST, Ipv4Addr::new(192, 0, 2, 3)));
        assert_eq!(t.flags().bits(), 0x29);
        assert_eq!(
            &b[..20],
            &[
                0, 1, 0, 2, 0xAA, 0xBB, 0xCC, 0xDD, 0x11, 0x22, 0x33, 0x44, 0x60, 0x29, 0x02, 0x00,
                b[16], b[17], 0, 9
            ]
        );
        assert_eq!(b[24], b'H');
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_header_len(20);
        assert_eq!(t.data_offset(), 5);
        assert_eq!(t.payload().len(), 7);
    }

    #[test]
    fn known_checksum() {
        // Independent computation: pseudo header + segment words summed by hand.
        let mut b = sample();
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.fill_checksum(SRC, DST);
        let mut acc: u32 = 0xC000 + 0x0201 + 0xC000 + 0x0202 + 6 + b.len() as u32;
        for w in b.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            let lo = w.get(1).map_or(0, |x| u32::from(*x));
            acc += hi | lo;
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        assert_eq!(acc, 0xFFFF);
    }

    #[test]
    fn checked_rejects_each_case() {
        let b = sample();
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).unwrap_err(),
            DropReason::TruncatedTcp
        );
        let mut v = b.clone();
        v[12] = 0x40; // doff 4
        assert_eq!(
            TcpPacket::new_checked(&v[..]).unwrap_err(),
            DropReason::BadTcpDataOffset
        );
        // doff 6 needs 24 bytes; 22 present.
        assert_eq!(
            TcpPacket::new_checked(&b[..22]).unwrap_err(),
            DropReason::BadTcpDataOffset
        );
        let mut v = b.clone();
        v[12] = 0xF0; // 60 bytes > 27
        assert_eq!(
            TcpPacket::new_checked(&v[..]).unwrap_err(),
            DropReason::BadTcpDataOffset
        );
        assert!(TcpPacket::new_checked(&b[..24]).is_ok());
    }

    #[test]
    fn flags_debug_and_ops() {
        assert_eq!(
            format!("{:?}", TcpFlags::SYN | TcpFlags::ACK),
            "TcpFlags(SYN|ACK)"
        );
        assert_eq!(format!("{:?}", TcpFlags::NONE), "TcpFlags()");
        let mut f = TcpFlags::NONE;
        f |= TcpFlags::RST;
        assert!(f.rst());
        assert_eq!((f | TcpFlags::ACK) & TcpFlags::ACK, TcpFlags::ACK);
        assert!(!TcpFlags::SYN.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert_eq!(TcpFlags::CWR.bits() | TcpFlags::ECE.bits(), 0xC0);
    }
}
