//! IPv6 neighbour discovery of the data plane (issue 13, stage 1): resolving
//! IPv6 servers and gateways with neighbour solicitations, learning from
//! the advertisements that answer them, and unsolicited advertisements for
//! the addresses the director owns. IPv6's ARP, with the same table design
//! and the same anti-poisoning rules (`dataplane::neigh`):
//!
//! * a solicited advertisement unicast to us is an answer
//!   ([`NeighTable6::learn_reply`]: it may set a reserved entry's MAC
//!   within the answer window of our own solicitation);
//! * an unsolicited one (to all-nodes, or without the S flag) is hearsay:
//!   a known neighbour claimed at another MAC is asked again, never moved;
//! * a solicitation's source link-layer option is learned only for an
//!   address the table already has (asked about, or configured), so a
//!   stranger's solicitations cannot fill the table.
//!
//! Unsolicited advertisements (override flag, to all-nodes) go out for the
//! ports' IPv6 addresses and, on the `[ha]` master, the IPv6 VIPs: at
//! start and on each new configuration, and on takeover (when gratuitous
//! ARP goes out), [`GARP_ROUNDS`] rounds each, from worker 0.

use std::net::Ipv6Addr;

use super::ha::GARP_ROUNDS;
use super::{Frame, Pipeline, Verdict};
use crate::dataplane::counters::Drop;
use crate::dataplane::neigh::{NeighTable6, Resolution};
use crate::dataplane::snapshot::Snapshot;
use crate::packet::ethernet::MacAddr;
use crate::packet::icmpv6::{self, Icmpv6Packet, NaFlags, NeighborAdvert, NDP_HOP_LIMIT};
use crate::packet::parse_ipv6::Ipv6Parsed;

/// Solicitations one worker may queue between two bursts.
const NS_QUEUE: usize = 16;

/// All-nodes (RFC 4291): where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// One worker's neighbour-discovery state.
pub(super) struct WorkerNd {
    queue: [(usize, Ipv6Addr); NS_QUEUE],
    len: usize,
    /// Unsolicited advertisement rounds still to send, and the next
    /// address of the current round.
    una_rounds: u32,
    una_idx: usize,
    /// The configuration and takeover request last announced.
    una_generation: u64,
    una_takeover: u64,
}

impl Default for WorkerNd {
    fn default() -> WorkerNd {
        WorkerNd {
            queue: [(0, Ipv6Addr::UNSPECIFIED); NS_QUEUE],
            len: 0,
            una_rounds: 0,
            una_idx: 0,
            una_generation: u64::MAX,
            una_takeover: 0,
        }
    }
}

impl Pipeline {
    pub(super) fn neigh6(&self) -> &NeighTable6 {
        &self.shared.neigh6
    }

    /// The port and next-hop MAC for `ip`; queues a solicitation when the
    /// neighbour is unknown or due for a refresh.
    pub(super) fn next_hop6(
        &mut self,
        snap: &Snapshot,
        ip: Ipv6Addr,
        now_ms: u64,
    ) -> Result<(usize, MacAddr), Drop> {
        let (port, nh) = snap.nd6.route(ip).ok_or(Drop::NoRoute)?;
        match self.neigh6().resolve(nh, now_ms) {
            Resolution::Mac(m, stamp) => {
                // For the established fast path (established6.rs).
                self.remember_hop6(snap, ip, port, m, stamp, now_ms);
                Ok((port, m))
            }
            Resolution::MacRefresh(m) => {
                self.queue_ns(port, nh);
                Ok((port, m))
            }
            Resolution::Request => {
                self.queue_ns(port, nh);
                Err(Drop::NeighbourUnresolved)
            }
            Resolution::Pending => Err(Drop::NeighbourUnresolved),
        }
    }

    fn queue_ns(&mut self, port: usize, ip: Ipv6Addr) {
        let nd = &mut self.nd;
        if nd.len < NS_QUEUE {
            nd.queue[nd.len] = (port, ip);
            nd.len += 1;
        }
    }

    /// The next neighbour solicitation the worker should send: (port,
    /// address).
    pub fn take_ns_request(&mut self) -> Option<(usize, Ipv6Addr)> {
        if self.nd.len == 0 {
            return None;
        }
        self.nd.len -= 1;
        Some(self.nd.queue[self.nd.len])
    }

    /// Writes a solicitation for `ip` from port `port`'s IPv6 address into
    /// `buf` (`icmpv6::NDP_FRAME_LEN` bytes); false if the port has none.
    pub fn build_ns_request(
        &self,
        snap: &Snapshot,
        port: usize,
        ip: Ipv6Addr,
        buf: &mut [u8],
    ) -> bool {
        let (Some(pi), Some(src)) = (snap.ports.get(port), snap.nd6.addr(port)) else {
            return false;
        };
        icmpv6::build_ns(buf, pi.mac, src, ip).is_some()
    }

    /// Asks for the MACs of the IPv6 servers and gateways that are unknown
    /// or getting old (worker 0, with the IPv4 ones).
    pub(super) fn warm_neighbours6(&mut self, snap: &Snapshot, now_ms: u64) {
        for i in 0..snap.nd6.ports.len() {
            if let Some(g) = snap.nd6.ports[i].and_then(|p| p.gateway) {
                let _ = self.next_hop6(snap, g, now_ms);
            }
        }
        for &s in &snap.nd6.servers {
            if self.nd.len == NS_QUEUE {
                return;
            }
            let _ = self.next_hop6(snap, s, now_ms);
        }
    }

    /// The next unsolicited advertisement to send: (port, address). Worker
    /// 0 starts [`GARP_ROUNDS`] rounds when a configuration is new and
    /// when a takeover asks for gratuitous ARP; one round (every owned
    /// address once) per loop.
    pub fn take_unsolicited_na(&mut self, snap: &Snapshot) -> Option<(usize, Ipv6Addr)> {
        if self.worker != 0 {
            return None;
        }
        let takeover = self
            .shared
            .ha
            .garp_request
            .load(std::sync::atomic::Ordering::Acquire);
        let nd = &mut self.nd;
        if snap.generation != nd.una_generation || takeover != nd.una_takeover {
            nd.una_generation = snap.generation;
            nd.una_takeover = takeover;
            nd.una_rounds = GARP_ROUNDS;
            nd.una_idx = 0;
        }
        while nd.una_rounds > 0 {
            if let Some(&(port, addr, vip)) = snap.nd6.owned.get(nd.una_idx) {
                nd.una_idx += 1;
                // The VIPs belong to the [ha] master only.
                if vip && !self.master {
                    continue;
                }
                return Some((port, addr));
            }
            nd.una_rounds -= 1;
            nd.una_idx = 0;
            return None;
        }
        None
    }

    /// Writes an unsolicited advertisement of `ip` at port `port`'s MAC
    /// (override flag, to all-nodes) into `buf` (`NDP_FRAME_LEN` bytes).
    pub fn build_unsolicited_na(
        &self,
        snap: &Snapshot,
        port: usize,
        ip: Ipv6Addr,
        buf: &mut [u8],
    ) -> bool {
        let Some(pi) = snap.ports.get(port) else {
            return false;
        };
        let flags = NaFlags {
            override_: true,
            ..NaFlags::default()
        };
        let ok = icmpv6::build_na(
            buf,
            pi.mac,
            ip,
            icmpv6::multicast_mac(ALL_NODES),
            ALL_NODES,
            flags,
        )
        .is_some();
        if ok {
            self.stats.nd_unsolicited_sent.inc();
        }
        ok
    }

    /// A neighbour advertisement: learned (an answer) or checked (hearsay)
    /// when its target is on the arrival port's IPv6 subnet. `Some(verdict)`
    /// when it was taken here or malformed, `None` to let the caller pass it
    /// on (the kernel's own neighbours, off-link targets).
    pub(super) fn advertisement<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        let fr = p.ipv6(f.data())?;
        let icmp = fr.l4_bytes();
        // RFC 4861 7.1.2: hop limit 255, a valid checksum, the message's
        // own checks, and no S flag on one sent to a multicast group.
        let valid = p.hop_limit == NDP_HOP_LIMIT
            && Icmpv6Packet::new_unchecked(icmp).verify_checksum(p.src, p.dst);
        let na = match NeighborAdvert::new_checked(icmp) {
            Ok(na) if valid => na,
            _ => return Some(self.bad_ndp()),
        };
        let flags = na.flags();
        if p.dst.is_multicast() && flags.solicited {
            return Some(self.bad_ndp());
        }
        let target = na.target();
        if !snap.nd6.on_link(in_port, target) || p.vlan.is_some() {
            return None;
        }
        let Some(mac) = na.target_ll_addr() else {
            // Without the option it only confirms reachability: nothing to
            // learn (the kernel may still want it).
            return None;
        };
        let to_us = snap.nd6.addr(in_port) == Some(p.dst);
        if flags.solicited && to_us {
            self.neigh6().learn_reply(target, mac, now_ms);
        } else {
            self.neigh6().recheck(target, mac, now_ms);
        }
        if p.dst.is_multicast() {
            return Some(self.drop(Drop::NotForUs));
        }
        // The kernel behind the TAP may be waiting for it too.
        if snap.ports[in_port].kernel {
            return Some(self.to_kernel());
        }
        Some(Verdict::Drop)
    }

    /// A solicitation for one of our addresses carried the solicitor's MAC:
    /// taken only for a neighbour the table already has (see the module
    /// docs); a reserved entry only takes it as a reason to ask.
    pub(super) fn learn_solicitor(
        &self,
        snap: &Snapshot,
        in_port: usize,
        src: Ipv6Addr,
        mac: MacAddr,
        now_ms: u64,
    ) {
        if snap.nd6.on_link(in_port, src) && self.neigh6().is_known(src) {
            self.neigh6().learn(src, mac, now_ms);
        }
    }
}
