//! ICMPv4 message view (RFC 792, RFC 1191 for the next-hop MTU).
//!
//! The director reads ICMP for two reasons: errors that quote a tracked
//! connection (relayed through NAT, see `forward::icmp_nat`) and the errors it
//! originates itself (time exceeded, fragmentation needed). Echo to the
//! director's own address goes to the kernel through the exception path.

use std::net::Ipv4Addr;

use super::{checksum, get_addr, get_u16, get_u32, set_addr, set_u16, set_u32, DropReason};

/// ICMP message types.
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Codes of destination unreachable (type 3).
pub mod unreach {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU.
    pub const FRAG_NEEDED: u8 = 4;
}

/// Codes of time exceeded (type 11).
pub mod time_exceeded {
    pub const TTL: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

/// Error messages that quote the offending datagram and that the NAT path
/// translates: destination unreachable, source quench, time exceeded,
/// parameter problem. (Redirects are not relayed.)
#[inline]
pub const fn is_error(t: u8) -> bool {
    matches!(
        t,
        msg_type::DEST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAMETER_PROBLEM
    )
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const MTU: usize = 6;
    pub const POINTER: usize = 4;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// A view over an ICMPv4 message (header + data, up to the IP total length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// At least the 8-byte header ([`DropReason::TruncatedIcmp`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::TruncatedIcmp);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The four type-specific header bytes as one word.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }

    /// Echo identifier (types 0 and 8).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number (types 0 and 8).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }

    /// Next-hop MTU of a fragmentation-needed message (type 3 code 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Pointer of a parameter-problem message (type 12).
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// Gateway address of a redirect (type 5).
    #[inline]
    pub fn gateway(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::REST)
    }

    /// Everything after the 8-byte header: for errors, the quoted datagram
    /// (its IP header and at least 8 bytes of it), for echo the payload.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True when the whole message sums to 0xFFFF.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REST, v);
    }

    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Sets the next-hop MTU (and clears the unused word before it).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        self.set_rest_of_header(u32::from(mtu));
    }

    #[inline]
    pub fn set_pointer(&mut self, v: u8) {
        self.buffer.as_mut()[field::POINTER] = v;
    }

    #[inline]
    pub fn set_gateway(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::REST, a);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }

    /// Full recompute over the whole message. ICMP has no pseudo header.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trip() {
        let mut b = [0u8; 12];
        let mut m = IcmpPacket::new_checked(&mut b[..]).unwrap();
        m.set_msg_type(msg_type::ECHO_REQUEST);
        m.set_code(0);
        m.set_echo_ident(0x1234);
        m.set_echo_seq(7);
        m.data_mut().copy_from_slice(b"ping");
        m.fill_checksum();
        assert!(m.verify_checksum());
        assert_eq!(m.msg_type(), 8);
        assert_eq!(m.code(), 0);
        assert_eq!(m.echo_ident(), 0x1234);
        assert_eq!(m.echo_seq(), 7);
        assert_eq!(m.rest_of_header(), 0x1234_0007);
        assert_eq!(m.data(), b"ping");
        // Checksum by hand: 0800 + 1234 + 0007 + 7069 + 6e67.
        let s: u32 = 0x0800 + 0x1234 + 0x0007 + 0x7069 + 0x6e67;
        let s = (s & 0xFFFF) + (s >> 16);
        assert_eq!(m.checksum(), !(s as u16));
    }

    #[test]
    fn error_fields() {
        let mut b = [0u8; 8];
        let mut m = IcmpPacket::new_unchecked(&mut b[..]);
        m.set_msg_type(msg_type::DEST_UNREACHABLE);
        m.set_code(unreach::FRAG_NEEDED);
        m.set_rest_of_header(0xFFFF_FFFF);
        m.set_next_hop_mtu(1400);
        assert_eq!(m.next_hop_mtu(), 1400);
        assert_eq!(m.rest_of_header(), 1400);
        m.set_pointer(9);
        assert_eq!(m.pointer(), 9);
        m.set_gateway(Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(m.gateway(), Ipv4Addr::new(1, 2, 3, 4));
        assert!(m.data().is_empty());
        assert_eq!(b, [3, 4, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn error_classification() {
        for t in 0..=255u8 {
            assert_eq!(is_error(t), matches!(t, 3 | 4 | 11 | 12), "type {t}");
        }
    }

    #[test]
    fn checked_rejects_short() {
        let b = [0u8; 8];
        for n in 0..8 {
            assert_eq!(
                IcmpPacket::new_checked(&b[..n]).unwrap_err(),
                DropReason::TruncatedIcmp
            );
        }
        assert!(IcmpPacket::new_checked(&b[..]).is_ok());
    }
}
