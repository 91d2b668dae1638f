//! Where a packet to an address leaves: the route, the neighbour's MAC,
//! and the per-worker cache of resolved next hops that the established
//! fast path reads instead of the snapshot and the neighbour table.

use super::*;

/// Next hops one worker remembers (direct-mapped by address).
pub(super) const HOP_CACHE: usize = 16;

/// How long a remembered next hop is used without asking the neighbour
/// table again (which is where refresh requests and expiry are decided).
/// A changed MAC is seen at once: a hit re-reads the neighbour entry's version.
pub(super) const HOP_CACHE_MS: u64 = 100;

/// A resolved next hop, valid for one snapshot (routes) while the
/// neighbour entry it came from is unchanged (same version), until `until_ms`.
/// With it, what the established fast path needs of its egress port (MAC,
/// address, MTU), so that path reads nothing else of the snapshot.
#[derive(Clone, Copy)]
pub(super) struct Hop {
    pub(super) ip: u32,
    pub(super) port: u32,
    pub(super) mac: MacAddr,
    /// `mac` and the egress port's MAC as the 12 bytes a frame to this
    /// hop starts with.
    pub(super) macs: [u8; 12],
    pub(super) port_mtu: u16,
    pub(super) port_addr: Ipv4Addr,
    pub(super) until_ms: u64,
    pub(super) generation: u64,
    pub(super) snapshot: usize,
    pub(super) entry: usize,
    pub(super) version: u64,
}

impl Hop {
    pub(super) const EMPTY: Hop = Hop {
        ip: 0,
        port: 0,
        mac: MacAddr([0; 6]),
        macs: [0; 12],
        port_mtu: 0,
        port_addr: Ipv4Addr::UNSPECIFIED,
        until_ms: 0,
        generation: 0,
        snapshot: 0,
        entry: 0,
        version: 0,
    };
}

impl Pipeline {
    /// The port and next-hop MAC for `ip`; queues an ARP request when the
    /// neighbour is unknown or due for a refresh.
    #[inline(always)]
    pub(super) fn next_hop(
        &mut self,
        snap: &Snapshot,
        ip: Ipv4Addr,
        now_ms: u64,
    ) -> Result<(usize, MacAddr), Drop> {
        if let Some(h) = self.hop_hit(snap, ip, now_ms) {
            return Ok((h.port as usize, h.mac));
        }
        let a = u32::from(ip);
        let slot = hop_slot(a);
        let at = snap as *const Snapshot as usize;
        let (port, nh) = snap.route(ip).ok_or(Drop::NoRoute)?;
        match self.neigh().resolve(nh, now_ms) {
            Resolution::Mac(m, stamp) => {
                let pi = &snap.ports[port];
                self.hops[slot] = Hop {
                    ip: a,
                    port: port as u32,
                    mac: m,
                    macs: forward::mac_pair(m, pi.mac),
                    port_mtu: pi.mtu,
                    port_addr: pi.addr,
                    until_ms: now_ms + HOP_CACHE_MS,
                    generation: snap.generation,
                    snapshot: at,
                    entry: stamp.entry,
                    version: stamp.version,
                };
                Ok((port, m))
            }
            Resolution::MacRefresh(m) => {
                self.queue_arp(port, nh);
                Ok((port, m))
            }
            Resolution::Request => {
                self.queue_arp(port, nh);
                Err(Drop::NeighbourUnresolved)
            }
            Resolution::Pending => Err(Drop::NeighbourUnresolved),
        }
    }

    /// The remembered next hop of `ip`, while it is valid: the same
    /// snapshot (routes, ports), the neighbour entry unchanged since (a MAC
    /// change shows at once), and asked of the neighbour table less than
    /// [`HOP_CACHE_MS`] ago.
    #[inline(always)]
    pub(super) fn hop_hit(&self, snap: &Snapshot, ip: Ipv4Addr, now_ms: u64) -> Option<&Hop> {
        let a = u32::from(ip);
        let h = &self.hops[hop_slot(a)];
        let at = snap as *const Snapshot as usize;
        (h.ip == a
            && now_ms < h.until_ms
            && h.generation == snap.generation
            && h.snapshot == at
            && self.neigh().version(h.entry) == h.version)
            .then_some(h)
    }

    /// Asks for the MACs of every configured server and gateway that is
    /// unknown or getting old, so first packets rarely wait for ARP.
    pub(super) fn warm_neighbours(&mut self, snap: &Snapshot, now_ms: u64) {
        for p in &snap.ports {
            if let Some(g) = p.gateway {
                let _ = self.next_hop(snap, g, now_ms);
            }
        }
        for s in &snap.services {
            for srv in s.servers.iter().chain(s.sorry.as_ref()) {
                let _ = self.next_hop(snap, srv.addr, now_ms);
                if self.arp_len == ARP_QUEUE {
                    return;
                }
            }
        }
        self.warm_nat64(snap, now_ms);
    }
}

/// The next-hop cache slot of address `a` (direct-mapped).
#[inline(always)]
pub(super) fn hop_slot(a: u32) -> usize {
    (a.wrapping_mul(0x9E37_79B1) >> 28) as usize % HOP_CACHE
}
