//! ARP for Ethernet/IPv4 (RFC 826), the only kind the director speaks.
//!
//! The data plane answers requests for its VIPs and own addresses by turning
//! the received frame into the reply in place ([`reply_in_place`]): no buffer
//! is allocated and the frame is sent back out the port it came in on.

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use super::{get_addr, get_u16, set_addr, set_u16, DropReason};

/// ARP operation codes.
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

/// Hardware type "Ethernet".
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// A view over an Ethernet/IPv4 ARP packet (the Ethernet payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Checks length (28 bytes) and that it is Ethernet (1) / IPv4 (0x0800)
    /// with address lengths 6 and 4.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(DropReason::TruncatedArp);
        }
        // htype, ptype, hlen, plen compared as one 48-bit pattern.
        if b[..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
            return Err(DropReason::UnsupportedArp);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn htype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn ptype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::PTYPE))
    }

    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation: [`op::REQUEST`] or [`op::REPLY`].
    #[inline]
    pub fn op(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA..])
    }

    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA..])
    }

    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 header words (htype, ptype, hlen, plen).
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        self.buffer.as_mut()[..6].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    }

    #[inline]
    pub fn set_op(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, v);
    }

    #[inline]
    pub fn set_sha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_spa(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::SPA, a);
    }

    #[inline]
    pub fn set_tha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_tpa(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::TPA, a);
    }

    /// Turns a request into the reply from `our_mac`: the old sender becomes
    /// the target and we become the sender of the address that was asked
    /// for (the old target protocol address).
    #[inline]
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let (sha, spa, tpa) = (self.sha(), self.spa(), self.tpa());
        self.set_op(op::REPLY);
        self.set_tha(sha);
        self.set_tpa(spa);
        self.set_sha(our_mac);
        self.set_spa(tpa);
    }
}

/// Turns a whole Ethernet frame holding an ARP request into the reply in
/// place: the ARP body as in [`ArpPacket::make_reply`], the Ethernet
/// destination becomes the requester and the source `our_mac`.
///
/// The caller has already decided the request is for one of our addresses
/// (`op == REQUEST` and `tpa` is ours). Errors only if the frame is not a
/// valid Ethernet/IPv4 ARP frame; the frame is untouched then.
pub fn reply_in_place(frame: &mut [u8], our_mac: MacAddr) -> Result<(), DropReason> {
    let mut eth = EthernetFrame::new_checked(&mut *frame)?;
    let mut arp = ArpPacket::new_checked(eth.payload_mut())?;
    let requester = arp.sha();
    arp.make_reply(our_mac);
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst(requester);
    eth.set_src(our_mac);
    eth.set_ethertype(EtherType::ARP);
    Ok(())
}

/// Length of an ARP frame (header + packet, before padding to 60 bytes).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    const US: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xAA]);
    const THEM: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xBB]);

    fn request() -> [u8; 42] {
        let mut f = [0u8; 42];
        f[..6].copy_from_slice(&[0xFF; 6]);
        f[6..12].copy_from_slice(&THEM.0);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&THEM.0);
        f[28..32].copy_from_slice(&[10, 0, 0, 1]);
        // tha zero
        f[38..42].copy_from_slice(&[10, 0, 0, 100]);
        f
    }

    #[test]
    fn getters() {
        let f = request();
        let a = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(a.htype(), HTYPE_ETHERNET);
        assert_eq!(a.ptype(), EtherType::IPV4);
        assert_eq!((a.hlen(), a.plen()), (6, 4));
        assert_eq!(a.op(), op::REQUEST);
        assert_eq!(a.sha(), THEM);
        assert_eq!(a.spa(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.tha(), MacAddr::ZERO);
        assert_eq!(a.tpa(), Ipv4Addr::new(10, 0, 0, 100));
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 28];
        let mut a = ArpPacket::new_unchecked(&mut buf[..]);
        a.set_ethernet_ipv4();
        a.set_op(op::REPLY);
        a.set_sha(US);
        a.set_spa(Ipv4Addr::new(1, 2, 3, 4));
        a.set_tha(THEM);
        a.set_tpa(Ipv4Addr::new(5, 6, 7, 8));
        let a = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(a.op(), op::REPLY);
        assert_eq!(a.sha(), US);
        assert_eq!(a.spa(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(a.tha(), THEM);
        assert_eq!(a.tpa(), Ipv4Addr::new(5, 6, 7, 8));
    }

    #[test]
    fn checked_rejects() {
        let f = request();
        assert_eq!(
            ArpPacket::new_checked(&f[14..41]).unwrap_err(),
            DropReason::TruncatedArp
        );
        for (i, v) in [(0usize, 1u8), (1, 6), (2, 0x86), (3, 0xDD), (4, 8), (5, 16)] {
            let mut g = f;
            g[14 + i] = v;
            assert_eq!(
                ArpPacket::new_checked(&g[14..]).unwrap_err(),
                DropReason::UnsupportedArp,
                "byte {i}"
            );
        }
    }

    #[test]
    fn reply_in_place_exact_bytes() {
        let mut f = request();
        reply_in_place(&mut f, US).unwrap();
        let mut want = [0u8; 42];
        want[..6].copy_from_slice(&THEM.0);
        want[6..12].copy_from_slice(&US.0);
        want[12..14].copy_from_slice(&[0x08, 0x06]);
        want[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        want[22..28].copy_from_slice(&US.0);
        want[28..32].copy_from_slice(&[10, 0, 0, 100]);
        want[32..38].copy_from_slice(&THEM.0);
        want[38..42].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(f, want);
    }

    #[test]
    fn reply_in_place_rejects_and_leaves_frame() {
        let mut f = request();
        f[15] = 6; // htype 6
        let before = f;
        assert_eq!(reply_in_place(&mut f, US), Err(DropReason::UnsupportedArp));
        assert_eq!(f, before);
        let mut short = [0u8; 10];
        assert_eq!(
            reply_in_place(&mut short, US),
            Err(DropReason::TruncatedEthernet)
        );
        assert_eq!(
            reply_in_place(&mut request()[..30], US),
            Err(DropReason::TruncatedArp)
        );
    }
}
