//! IPv6 frames (issue 13, stage 2 in part): neighbour solicitations for the
//! ports' own IPv6 addresses and (on the `[ha]` master) the IPv6 VIPs are
//! answered here with a neighbour advertisement written over the frame;
//! malformed IPv6 is dropped and counted by its parse reason; everything
//! else for the port's MAC goes to the kernel as before (the exception
//! path), and other IPv6 multicast is not ours.
//!
//! Neighbour advertisements are learned from in `nd.rs` (with resolving
//! servers by solicitation and unsolicited advertisements); a solicitation
//! for the TAP's own link-local address goes to the kernel, which owns it.
//!
//! TCP/UDP to a forwarded IPv6 VIP, and its servers' replies, are NAT-ed
//! by `nat6.rs`; DR/TUN and ICMPv6 errors by `routed6.rs`.

use std::net::Ipv6Addr;

use super::{Frame, Pipeline, Verdict};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::packet::ethernet::MacAddr;
use crate::packet::icmpv6::{
    self, msg_type, Icmpv6Packet, NaFlags, NeighborSolicit, NDP_FRAME_LEN, NDP_HOP_LIMIT,
};
use crate::packet::ipv6::next_header;
use crate::packet::parse_ipv6::{parse_ipv6, Ipv6Parsed};
use crate::packet::DropReason;

/// All-nodes (RFC 4291): where an answer to duplicate address detection
/// goes, and its MAC.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Pipeline {
    /// An IPv6 frame sent to the port's MAC (`multicast` false) or to an
    /// IPv6 multicast MAC (33:33:..).
    pub(super) fn ipv6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        in_port: usize,
        multicast: bool,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        let p = match parse_ipv6(f.data()) {
            Ok(Some(p)) => p,
            Ok(None) => return self.drop(Drop::NotIpv4),
            Err(r) => {
                self.stats.parse_drop(r);
                return Verdict::Drop;
            }
        };
        if p.protocol == next_header::ICMPV6 && p.icmp_type == msg_type::NEIGHBOR_SOLICIT {
            if let Some(v) = self.solicitation(snap, f, &p, in_port, now_ms) {
                return v;
            }
        }
        if p.protocol == next_header::ICMPV6 && p.icmp_type == msg_type::NEIGHBOR_ADVERT {
            if let Some(v) = self.advertisement(snap, f, &p, in_port, now_ms) {
                return v;
            }
        }
        if multicast {
            return self.drop(Drop::NotForUs);
        }
        if let Some(v) = self.forward6(snap, f, &p, in_port, now_ms, owned) {
            return v;
        }
        if snap.ports[in_port].kernel {
            self.to_kernel()
        } else {
            self.drop(Drop::NotIpv4)
        }
    }

    /// A neighbour solicitation: `Some(verdict)` when it was for one of our
    /// addresses (answered) or malformed (dropped and counted), `None` when
    /// it asks for someone else's address.
    fn solicitation<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        let port = &snap.ports[in_port];
        let (target, sll) = {
            let fr = p.ipv6(f.data())?;
            let icmp = fr.l4_bytes();
            // RFC 4861 7.1.1: hop limit 255 (it crossed no router), a valid
            // checksum, the message's own checks, and a multicast one sent
            // to the target's solicited-node group; DAD (source ::) carries
            // no source link-layer option.
            let valid = p.hop_limit == NDP_HOP_LIMIT
                && Icmpv6Packet::new_unchecked(icmp).verify_checksum(p.src, p.dst);
            let ns = match NeighborSolicit::new_checked(icmp) {
                Ok(ns) if valid => ns,
                _ => return Some(self.bad_ndp()),
            };
            let target = ns.target();
            let sll = ns.source_ll_addr();
            if (p.dst.is_multicast() && p.dst != icmpv6::solicited_node(target))
                || (p.src.is_unspecified() && sll.is_some())
            {
                return Some(self.bad_ndp());
            }
            (target, sll)
        };
        // The VIPs belong to the [ha] master only, as in ARP.
        let ours = port.addr6 == Some(target) || (self.master && snap.is_vip6(target));
        if p.vlan.is_some() {
            return None;
        }
        if !ours {
            // The TAP's link-local address is the kernel's to defend.
            let link_local = target.segments()[0] & 0xffc0 == 0xfe80;
            return (link_local && port.kernel).then(|| self.to_kernel());
        }
        if let Some(m) = sll {
            self.learn_solicitor(snap, in_port, p.src, m, now_ms);
        }
        let (dst, dst_mac, flags) = if p.src.is_unspecified() {
            // Someone checks the address is free: tell all nodes it is not.
            let flags = NaFlags {
                override_: true,
                ..NaFlags::default()
            };
            (ALL_NODES, icmpv6::multicast_mac(ALL_NODES), flags)
        } else {
            let eth_src = MacAddr::from_bytes(&f.data()[6..12]);
            let flags = NaFlags {
                solicited: true,
                override_: true,
                router: false,
            };
            (p.src, sll.unwrap_or(eth_src), flags)
        };
        if !f.resize(NDP_FRAME_LEN) {
            return Some(self.drop(Drop::NotForUs));
        }
        icmpv6::build_na(f.data_mut(), port.mac, target, dst_mac, dst, flags)?;
        self.stats.nd_adverts_sent.inc();
        Some(Verdict::Tx(in_port))
    }

    pub(super) fn bad_ndp(&self) -> Verdict {
        self.stats.parse_drop(DropReason::BadNdp);
        Verdict::Drop
    }
}
