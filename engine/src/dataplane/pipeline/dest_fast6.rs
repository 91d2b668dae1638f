//! What the IPv6 established fast path (`established6.rs`) keeps of each
//! real server, per worker: the twin of `dest_fast.rs` for IPv6 servers.
//!
//! Indexed by the connection record's server id (`Conn::dest`), so one
//! bounds-checked load replaces, per packet, the snapshot's
//! id -> service -> server walk (`Snapshot::dest6`), the next-hop cache's
//! address hash and snapshot compares (`hop_hit6`), and the two atomic
//! counter updates through the server's shared block.
//!
//! * **Validity.** The table is stamped with the snapshot (generation and
//!   address) it was built from; a packet seen with another snapshot (a
//!   reload, a server removed, weight 0, down) rebuilds it first
//!   ([`DestTable6::refresh`]), which flushes the pending counts and
//!   forgets every remembered next hop.
//! * **Addresses (NAT edges).** Per direction ([`Edge6`]), in the
//!   frame's byte order (`addr6::raw`): the address a packet of the
//!   server's connections has there (inbound its service's VIP as
//!   destination, a reply the server's as source: the direction check is
//!   one compare with no id-table read), the one the rewrite puts in its
//!   place, and the checksum's address part for that exchange
//!   (`forward::addr6_sum`), computed here once per snapshot rather than
//!   twice per packet.
//! * **Next hop.** A copy of the next-hop cache's entry for the server's
//!   address ([`Hop6`]), used while its neighbour entry is unchanged and
//!   younger than its deadline (the cache's own rules; the snapshot is the
//!   table's stamp). A miss asks the cache and remembers what it finds.
//! * **Own addresses.** The snapshot's VIPs, NAT64 VIPs and ports'
//!   addresses as one set (`snapshot::Own6`): a reply's client is checked
//!   against it in one lookup.
//! * **Counters.** In and out packets and bytes add up here (`pending.rs`; one add per
//!   packet) and reach the server's per-worker counters at
//!   [`DestTable6::flush`]: at `Pipeline::end_burst` (the first worker
//!   loop end of every millisecond), at the end of every
//!   `Pipeline::process` and before a rebuild, so the totals `rvs ctl`
//!   reads lag the frames by at most a millisecond.

use std::net::Ipv6Addr;

use super::dest_fast::count_activity_of;
use super::established6::Hop6;
use super::pending::{HasPending, Pending, PendingList};
use crate::conn::{addr6, Dir};
use crate::dataplane::neigh::NeighTable6;
use crate::dataplane::snapshot::{Own6, Server, Snapshot};
use crate::forward::addr6_sum;

/// One IPv6 server, as this worker's fast path sees it.
#[derive(Clone, Copy)]
struct DestFast6 {
    /// An IPv6 server in the stamped snapshot and up (`Server::usable`).
    usable: bool,
    /// The remembered next hop to its address (empty after a rebuild:
    /// `until_ms` 0).
    hop: Hop6,
    /// Packets and bytes not yet flushed.
    pending: Pending,
    /// By `Dir` (inbound, reply): the module docs' NAT edges.
    edges: [Edge6; 2],
    /// The server has no upper threshold in the stamped snapshot and its
    /// counters are the snapshot's block for its id
    /// (`Snapshot::counters`): an active/inactive move goes there
    /// directly ([`DestTable6::count_activity`]).
    plain: bool,
}

impl DestFast6 {
    const EMPTY: DestFast6 = DestFast6 {
        usable: false,
        hop: Hop6::EMPTY,
        pending: Pending::EMPTY,
        edges: [Edge6::EMPTY; 2],
        plain: false,
    };
}

/// One direction of a server's NAT (module docs), addresses as
/// `addr6::raw`.
#[derive(Clone, Copy)]
pub(super) struct Edge6 {
    /// The address the packet has at the rewritten side: inbound the
    /// VIP (destination), a reply the server's (source).
    pub(super) from: u128,
    /// The address written there (the server's; the VIP).
    pub(super) to: u128,
    /// `forward::addr6_sum(from, to)`.
    pub(super) sum: u64,
}

impl Edge6 {
    const EMPTY: Edge6 = Edge6 {
        from: 0,
        to: 0,
        sum: 0,
    };

    fn new(from: u128, to: u128) -> Edge6 {
        Edge6 {
            from,
            to,
            sum: addr6_sum(from, to),
        }
    }
}

/// A worker's [`DestFast6`] entries, by server id (module docs).
pub(super) struct DestTable6 {
    /// This worker (its block of each server's counters).
    worker: usize,
    generation: u64,
    snapshot: usize,
    dests: Vec<DestFast6>,
    pending: PendingList,
    /// The director's own IPv6 addresses in the stamped snapshot: a
    /// reply to one is not the fast path's (`snapshot/own6.rs`).
    own6: Own6,
}

impl DestTable6 {
    pub(super) fn new(worker: usize) -> DestTable6 {
        DestTable6 {
            worker,
            generation: u64::MAX,
            snapshot: 0,
            dests: Vec::new(),
            pending: PendingList::new(worker),
            own6: Own6::default(),
        }
    }

    /// The index of IPv6 server `id` when it is usable in `snap`
    /// (rebuilding the table first if it was built from another snapshot).
    #[inline(always)]
    pub(super) fn usable(&mut self, snap: &Snapshot, id: u32) -> Option<usize> {
        if self.generation != snap.generation || self.snapshot != snap as *const Snapshot as usize {
            self.refresh(snap);
        }
        let i = id as usize;
        self.dests.get(i)?.usable.then_some(i)
    }

    /// Whether `a` (as `addr6::raw`) is one of the director's own IPv6
    /// addresses in the snapshot the table was last built from (the
    /// caller's, after [`usable`](Self::usable)).
    #[inline(always)]
    pub(super) fn is_own(&self, a: u128) -> bool {
        self.own6.contains_raw(a)
    }

    /// Server `i`'s NAT edge for a packet in direction `dir`.
    #[inline(always)]
    pub(super) fn edge(&self, i: usize, dir: Dir) -> &Edge6 {
        &self.dests[i].edges[dir as usize]
    }

    /// The remembered next hop of server `i`, if younger than its deadline
    /// and its neighbour entry unchanged.
    #[inline(always)]
    pub(super) fn hop(&self, i: usize, now_ms: u64, neigh: &NeighTable6) -> Option<&Hop6> {
        let h = &self.dests[i].hop;
        (now_ms < h.until_ms && neigh.version(h.entry) == h.version).then_some(h)
    }

    /// Remembers `h` (a valid entry of the next-hop cache for server `i`'s
    /// address).
    #[cold]
    pub(super) fn set_hop(&mut self, i: usize, h: Hop6) {
        self.dests[i].hop = h;
    }

    /// Adds one packet of `len` IP bytes to server `i`'s pending counts
    /// (`out`: from the server).
    #[inline(always)]
    pub(super) fn count(&mut self, snap: &Snapshot, i: usize, out: bool, len: u64) {
        self.pending.count(&mut self.dests, snap, i, out, len);
    }

    /// One of this worker's connections to server `i` (from
    /// [`usable`](Self::usable) with `snap`) moved between active and
    /// inactive (`was` -> `is`): `Server::count_activity`'s moves, as
    /// `DestTable::count_activity` makes them for IPv4 (a server without
    /// an upper threshold through its counters by id, the overload flag
    /// read as `Server::update_overload` reads it; one with a threshold
    /// through the snapshot's server).
    #[inline(always)]
    pub(super) fn count_activity(&self, snap: &Snapshot, i: usize, was: bool, is: bool) {
        let plain = self.dests[i].plain;
        count_activity_of(snap, i, self.worker, plain, was, is, server6);
    }

    /// Adds the pending counts to the servers' per-worker counters.
    #[inline]
    pub(super) fn flush(&mut self, snap: &Snapshot) {
        self.pending.flush(&mut self.dests, snap);
    }

    /// Rebuilds the table for `snap`: pending counts flushed, every IPv6
    /// server of the registry marked usable or not, next hops forgotten.
    #[cold]
    #[inline(never)]
    pub(super) fn refresh(&mut self, snap: &Snapshot) {
        self.flush(snap);
        self.generation = snap.generation;
        self.snapshot = snap as *const Snapshot as usize;
        self.own6 = Own6::of(snap);
        self.dests.clear();
        self.dests.resize(snap.counters.len(), DestFast6::EMPTY);
        for (id, d) in self.dests.iter_mut().enumerate() {
            if let Some((svc, srv)) = snap.dest6(id as u32) {
                let (vip, addr) = (addr6::raw(svc.vip), addr6::raw(srv.addr));
                // `::` as either address (never a valid one) would make
                // the edges' sums differ from the general rewrite's.
                d.usable = srv.usable && vip != 0 && addr != 0;
                d.plain = srv.upper == 0
                    && snap
                        .counters(id as u32)
                        .is_some_and(|k| std::ptr::eq(k, &*srv.shared));
                d.edges = [Edge6::new(vip, addr), Edge6::new(addr, vip)];
            }
        }
    }
}

/// IPv6 server `id` (`Snapshot::dest6`).
fn server6(snap: &Snapshot, id: u32) -> Option<&Server<Ipv6Addr>> {
    snap.dest6(id).map(|(_, srv)| srv)
}

/// The address `raw` as an `Ipv6Addr` (the inverse of `addr6::raw`).
#[inline(always)]
pub(super) fn from_raw(raw: u128) -> Ipv6Addr {
    Ipv6Addr::from(raw.to_ne_bytes())
}

impl HasPending for DestFast6 {
    #[inline(always)]
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }
}
