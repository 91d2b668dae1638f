//! ARP for the director's addresses and VIPs: answer requests, learn
//! from replies (never from gratuitous ARP), and the queue of requests the
//! worker sends for next hops it has to resolve.

use super::*;
use crate::packet::arp::{self, ArpPacket};

/// Length of the ARP request frames the director sends (minimum frame).
pub const ARP_FRAME_LEN: usize = 60;

/// ARP requests one worker may queue between two bursts.
pub(super) const ARP_QUEUE: usize = 16;

impl Pipeline {
    /// Answers requests for our addresses and VIPs; learns from requests to
    /// us and from replies.
    pub(super) fn arp<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let port = &snap.ports[in_port];
        let Ok(eth) = EthernetFrame::new_checked(f.data()) else {
            return self.drop(Drop::ArpIgnored);
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return self.drop(Drop::ArpIgnored);
        };
        let (sha, spa, tpa) = (a.sha(), a.spa(), a.tpa());
        // The VIPs and virtual addresses belong to the [ha] master only.
        let ours = tpa == port.addr
            || (self.master
                && (snap.is_vip(tpa)
                    || snap.is_virtual(tpa)
                    || (snap.has_fnat && port.snat_addrs.contains(&tpa))));
        match p.arp_op {
            arp::op::REQUEST if ours => {
                if port.on_link(spa) {
                    self.neigh().learn(spa, sha, now_ms);
                }
                if arp::reply_in_place(f.data_mut(), port.mac).is_err() {
                    return self.drop(Drop::ArpIgnored);
                }
                self.stats.arp_replies_sent.inc();
                Verdict::Tx(in_port)
            }
            arp::op::REPLY if tpa == port.addr && port.on_link(spa) => {
                self.neigh().learn_reply(spa, sha, now_ms);
                // The kernel behind the TAP may be waiting for it too.
                if port.kernel {
                    return self.to_kernel();
                }
                Verdict::Drop
            }
            _ => {
                // A gratuitous ARP moving a known neighbour is checked with
                // a request of our own, not believed (see neigh.rs).
                if spa == tpa && port.on_link(spa) {
                    self.neigh().recheck(spa, sha, now_ms);
                }
                self.drop(Drop::ArpIgnored)
            }
        }
    }

    pub(super) fn queue_arp(&mut self, port: usize, ip: Ipv4Addr) {
        if self.arp_len < ARP_QUEUE {
            self.arp_queue[self.arp_len] = (port, ip);
            self.arp_len += 1;
        }
    }

    /// The next ARP request the worker should send: (port, address).
    pub fn take_arp_request(&mut self) -> Option<(usize, Ipv4Addr)> {
        if self.arp_len == 0 {
            return None;
        }
        self.arp_len -= 1;
        Some(self.arp_queue[self.arp_len])
    }

    /// Writes an ARP request for `ip` from port `port` into `buf`
    /// (`ARP_FRAME_LEN` bytes).
    pub fn build_arp_request(
        &self,
        snap: &Snapshot,
        port: usize,
        ip: Ipv4Addr,
        buf: &mut [u8],
    ) -> bool {
        snap.ports
            .get(port)
            .is_some_and(|pi| write_arp_request(pi.mac, pi.addr, ip, buf))
    }
}

/// Writes a broadcast ARP request for `tpa` from `mac`/`spa` into `buf`
/// (`ARP_FRAME_LEN` bytes); a gratuitous ARP has `spa == tpa`.
pub(super) fn write_arp_request(
    mac: MacAddr,
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
    buf: &mut [u8],
) -> bool {
    if buf.len() < ARP_FRAME_LEN {
        return false;
    }
    buf[..ARP_FRAME_LEN].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst(MacAddr::BROADCAST);
    eth.set_src(mac);
    eth.set_ethertype(EtherType::ARP);
    let mut a = ArpPacket::new_unchecked(eth.payload_mut());
    a.set_ethernet_ipv4();
    a.set_op(arp::op::REQUEST);
    a.set_sha(mac);
    a.set_spa(spa);
    a.set_tha(MacAddr::ZERO);
    a.set_tpa(tpa);
    true
}
