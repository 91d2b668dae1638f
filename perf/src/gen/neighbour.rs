//! ARP and neighbour discovery: the generator answers for the real servers
//! and learns the director's MACs.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use dpdk_ffi::{rdtsc, rte_mbuf};
use engine::packet::arp::{self, ArpPacket};
use engine::packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use engine::packet::icmpv6::{self, msg_type, NaFlags, NDP_FRAME_LEN};

use super::{frame_mut, server_mac, templates, Gen, GEN_CLIENT_ADDR, GEN_CLIENT_ADDR6};
use crate::frames;

impl Gen {
    /// ARP for the VIP on the client side until the director answers.
    pub(super) fn resolve_dut_mac(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        while self.ck.dut_client_mac == MacAddr::BROADCAST {
            if Instant::now() > deadline {
                if self.o.expect.ipv6() {
                    bail!(
                        "no neighbour advertisement for the VIP {} from the DUT",
                        self.o.vip6
                    );
                }
                bail!("no ARP reply for the VIP {} from the DUT", self.o.vip);
            }
            if self.o.expect.ipv6() {
                self.send_solicitation(self.o.vip6);
            } else {
                self.send_arp_request(self.o.vip);
            }
            let until = rdtsc() + self.hz / 10;
            while rdtsc() < until && self.ck.dut_client_mac == MacAddr::BROADCAST {
                self.poll_rx();
            }
        }
        self.tpl = templates(&self.o, self.client.mac, self.ck.dut_client_mac);
        self.log(&format!("DUT client-side MAC {}", self.ck.dut_client_mac));
        Ok(())
    }

    pub(super) fn send_arp_request(&mut self, ip: Ipv4Addr) {
        let Some(m) = self.alloc_frame(frames::MIN_FRAME) else {
            return;
        };
        // SAFETY: m is a fresh mbuf with MIN_FRAME bytes of data.
        let buf = unsafe { frame_mut(m) };
        buf.fill(0);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst(MacAddr::BROADCAST);
        eth.set_src(self.client.mac);
        eth.set_ethertype(EtherType::ARP);
        let mut a = ArpPacket::new_unchecked(eth.payload_mut());
        a.set_ethernet_ipv4();
        a.set_op(arp::op::REQUEST);
        a.set_sha(self.client.mac);
        a.set_spa(GEN_CLIENT_ADDR);
        a.set_tha(MacAddr::ZERO);
        a.set_tpa(ip);
        self.tx_one(self.client.id, m);
    }

    /// A neighbour solicitation for `target` on the client side.
    pub(super) fn send_solicitation(&mut self, target: Ipv6Addr) {
        let Some(m) = self.alloc_frame(NDP_FRAME_LEN) else {
            return;
        };
        // SAFETY: m is a fresh mbuf with NDP_FRAME_LEN bytes of data.
        let buf = unsafe { frame_mut(m) };
        if icmpv6::build_ns(buf, self.client.mac, GEN_CLIENT_ADDR6, target).is_none() {
            // SAFETY: not sent, still ours.
            unsafe { dpdk_ffi::rvs_pktmbuf_free(m) };
            return;
        }
        self.tx_one(self.client.id, m);
    }
    /// Answers ARP requests (the director resolving real servers or
    /// clients) and learns the director's MACs. True when the mbuf was
    /// reused for the reply.
    pub(super) fn on_arp(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool) -> bool {
        // SAFETY: an owned received mbuf.
        let f = unsafe { frame_mut(m) };
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
            return false;
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        let (op, sha, spa, tpa) = (a.op(), a.sha(), a.spa(), a.tpa());
        if op == arp::op::REPLY {
            if !server_side && spa == self.o.vip {
                self.ck.dut_client_mac = sha;
            }
            return false;
        }
        if op != arp::op::REQUEST {
            return false;
        }
        let mac = if server_side {
            if self.ck.dut_server_mac.is_none() && spa == self.o.director_addr {
                self.ck.dut_server_mac = Some(sha);
            }
            match self.ck.servers.iter().position(|s| s.0 == tpa) {
                Some(k) => server_mac(k),
                None => self.server.mac,
            }
        } else {
            if tpa == GEN_CLIENT_ADDR || tpa == self.o.vip {
                return false;
            }
            self.client.mac
        };
        if arp::reply_in_place(f, mac).is_err() {
            return false;
        }
        self.tx_one(port, m);
        true
    }

    /// Neighbour discovery, the IPv6 twin of [`Gen::on_arp`]: answers the
    /// director's solicitations for the real servers (each at its own MAC)
    /// and learns the director's MACs (the advertisement for the VIP on the
    /// client side, the solicitations' source on the server side). True
    /// when the mbuf was reused for the answer.
    pub(super) fn on_ndp(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool) -> bool {
        // SAFETY: an owned received mbuf.
        let f = unsafe { frame_mut(m) };
        let Some((ty, src, target)) = ndp_fields(f) else {
            return false;
        };
        let eth_src = MacAddr::from_bytes(&f[6..12]);
        if ty == msg_type::NEIGHBOR_ADVERT {
            if !server_side && target == self.o.vip6 {
                self.ck.dut_client_mac = eth_src;
            }
            return false;
        }
        if !server_side {
            return false;
        }
        if self.ck.dut_server_mac.is_none() && src == self.o.director_addr6 {
            self.ck.dut_server_mac = Some(eth_src);
        }
        let Some(k) = self.ck.servers6.iter().position(|s| s.0 == target) else {
            return false;
        };
        if src.is_unspecified() || f.len() < NDP_FRAME_LEN {
            return false;
        }
        let flags = NaFlags {
            solicited: true,
            override_: true,
            router: false,
        };
        if icmpv6::build_na(f, server_mac(k), target, eth_src, src, flags).is_none() {
            return false;
        }
        // SAFETY: an owned mbuf of at least NDP_FRAME_LEN bytes.
        unsafe {
            (*m).data_len = NDP_FRAME_LEN as u16;
            (*m).pkt_len = NDP_FRAME_LEN as u32;
        }
        self.tx_one(port, m);
        true
    }
}

/// An untagged IPv6 neighbour solicitation or advertisement?
pub(super) fn is_ndp(f: &[u8]) -> bool {
    f.len() >= 14 + 40 + 24
        && f[12] == 0x86
        && f[13] == 0xdd
        && f[20] == 58
        && matches!(
            f[54],
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT
        )
}

/// (type, IPv6 source, target) of a frame [`is_ndp`] accepted.
fn ndp_fields(f: &[u8]) -> Option<(u8, Ipv6Addr, Ipv6Addr)> {
    let a = |o: usize| -> Option<Ipv6Addr> {
        Some(Ipv6Addr::from(
            <[u8; 16]>::try_from(f.get(o..o + 16)?).ok()?,
        ))
    };
    Some((*f.get(54)?, a(22)?, a(62)?))
}
