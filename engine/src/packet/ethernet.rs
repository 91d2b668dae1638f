//! Ethernet II frame view, MAC addresses and EtherTypes.
//!
//! [`parse_frame`](super::parse_frame) handles untagged Ethernet II only: an
//! 802.1Q tag shows up as [`EtherType::VLAN`] and it classifies the frame as
//! "other" (the director runs on untagged ports; tagged traffic goes to the
//! exception path). [`EthernetFrame::untag`] looks through one 802.1Q tag for
//! either family, so the IPv6 parser ([`parse_ipv6`](super::parse_ipv6))
//! recognises IPv6 behind a tag the same way as untagged.

use std::fmt;

use super::{get_u16, set_u16, DropReason};

/// A 48-bit Ethernet address. `Copy`, six bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xFF; 6]);
    /// 00:00:00:00:00:00 (e.g. the unknown target of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads six bytes. `bytes` must be at least six long.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&bytes[..6]);
        MacAddr(m)
    }

    /// The six octets.
    #[inline]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// All ones.
    #[inline]
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Group bit set (includes broadcast).
    #[inline]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An EtherType value. A newtype so that the constants below can be used in
/// `match` patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    /// 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service tag (QinQ).
    pub const QINQ: EtherType = EtherType(0x88A8);
    pub const IPV6: EtherType = EtherType(0x86DD);
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag (TPID is the outer EtherType; TCI + inner
/// EtherType follow).
pub const VLAN_TAG_LEN: usize = 4;

/// What follows the Ethernet header once at most one 802.1Q tag is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Untagged {
    /// The EtherType of the L3 payload (the inner one behind a tag).
    pub ethertype: EtherType,
    /// Offset of the L3 header in the frame: 14 untagged, 18 tagged.
    pub l3_off: usize,
    /// The 12-bit VLAN id of the tag, if there was one.
    pub vlan: Option<u16>,
}

/// A view over an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` if it holds at least a full header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::TruncatedEthernet);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// EtherType of the payload.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// The L3 EtherType and offset behind at most one 802.1Q tag. A second
    /// tag (QinQ) is not looked through: its inner EtherType is returned as
    /// is (VLAN/QINQ), which no L3 parser accepts.
    #[inline]
    pub fn untag(&self) -> Result<Untagged, DropReason> {
        let b = self.buffer.as_ref();
        let outer = self.ethertype();
        if outer != EtherType::VLAN {
            return Ok(Untagged {
                ethertype: outer,
                l3_off: HEADER_LEN,
                vlan: None,
            });
        }
        if b.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(DropReason::TruncatedVlan);
        }
        Ok(Untagged {
            ethertype: EtherType(get_u16(b, HEADER_LEN + 2)),
            l3_off: HEADER_LEN + VLAN_TAG_LEN,
            vlan: Some(get_u16(b, HEADER_LEN) & 0x0FFF),
        })
    }

    /// Everything after the header (may include trailing padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_src(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x06, // ARP
        0xAA, 0xBB,
    ];

    #[test]
    fn getters() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), &[0xAA, 0xBB]);
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr([1, 2, 3, 4, 5, 6]));
        f.set_ethertype(EtherType::IPV4);
        f.payload_mut()[0] = 0x11;
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(
            buf,
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 0x08, 0x00, 0x11, 0xBB]
        );
    }

    #[test]
    fn checked_rejects_short() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..n]).unwrap_err(),
                DropReason::TruncatedEthernet
            );
        }
        let f = EthernetFrame::new_checked(&FRAME[..HEADER_LEN]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn untag_looks_through_one_tag() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(
            f.untag(),
            Ok(Untagged {
                ethertype: EtherType::ARP,
                l3_off: 14,
                vlan: None
            })
        );
        let mut t = FRAME[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x20, 0x64, 0x86, 0xDD, 0x60]);
        let f = EthernetFrame::new_checked(&t[..]).unwrap();
        assert_eq!(
            f.untag(),
            Ok(Untagged {
                ethertype: EtherType::IPV6,
                l3_off: 18,
                vlan: Some(100)
            })
        );
        for n in 14..18 {
            let f = EthernetFrame::new_checked(&t[..n]).unwrap();
            assert_eq!(f.untag(), Err(DropReason::TruncatedVlan));
        }
    }

    #[test]
    fn mac_helpers() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert_eq!(
            MacAddr([0xde, 0xad, 0xbe, 0xef, 0, 1]).to_string(),
            "de:ad:be:ef:00:01"
        );
        assert_eq!(
            MacAddr::from_bytes(&[9, 8, 7, 6, 5, 4, 3]).octets(),
            [9, 8, 7, 6, 5, 4]
        );
    }
}
