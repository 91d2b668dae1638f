//! What the established fast path keeps of each real server, per worker:
//! whether the snapshot still has it usable, its next hop, and the packets
//! and bytes forwarded to and from it that its counters have not seen yet.
//!
//! Indexed by the connection record's server id (`Conn::dest`, the
//! registry's stable id), so one bounds-checked load replaces, per packet,
//! the snapshot's id -> service -> server walk (`Snapshot::dest`), the
//! next-hop cache's address hash and snapshot compares, and the two
//! counter updates through the server's shared block.
//!
//! * **Validity.** The table is stamped with the snapshot (generation and
//!   address) it was built from. A packet seen with another snapshot
//!   (a reload, a server removed, weight 0, moved) rebuilds it first
//!   ([`DestTable::refresh`], once per new snapshot; `on_snapshot` does it
//!   ahead of the first packet), which forgets every remembered next hop:
//!   the first packet of each server after a reload takes the full path,
//!   as it did with the next-hop cache alone.
//! * **Next hop.** A copy of the next-hop cache's entry for the server's
//!   address, used while the neighbour entry is unchanged (its version: a
//!   MAC change shows on the very next packet) and for at most
//!   `HOP_CACHE_MS` (refresh and expiry stay the neighbour table's
//!   decisions). A miss asks the next-hop cache (`Pipeline::hop_hit`), and
//!   when that misses too, the full path resolves and refills it.
//! * **TUN.** With the next hop, the outer IPv4 header to the server
//!   from the egress port's address, its constant words summed
//!   ([`TunTemplate`]): an encapsulation copies it and writes the fields
//!   of the packet (length, TOS, DF, TTL, identification).
//! * **Counters.** In and out packets and bytes add up here (`pending.rs`; one add per
//!   packet: packets and bytes in one word) and reach the
//!   server's per-worker counters at [`DestTable::flush`]: at the first
//!   worker loop end of every millisecond (`Pipeline::end_burst`), at the
//!   end of every `Pipeline::process` and before a rebuild. The totals
//!   `rvs ctl` reads lag the frames by at most a millisecond, and are exact
//!   then.
//!   Counters outlive snapshots (`Snapshot::counters` has every id the
//!   registry has known), so what a server forwarded before a reload that
//!   removed it is still counted.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use super::admit_sources::Sources;
use super::nexthop::Hop;
use super::pending::{HasPending, Pending, PendingList};
use crate::dataplane::neigh::NeighTable;
use crate::dataplane::snapshot::{Server, Snapshot};
use crate::forward::TunTemplate;

/// One server, as this worker's fast path sees it.
#[derive(Clone, Copy)]
struct DestFast {
    /// In the stamped snapshot and up (`Server::usable`).
    usable: bool,
    /// Its service's VIP (host order) when that is none of the director's
    /// own addresses, else `u64::MAX`: a packet to it needs no
    /// `Snapshot::is_own` walk.
    vip_not_own: u64,
    /// The next hop to the server's address (valid while `hop.ip` is that
    /// address: empty after a rebuild).
    hop: Hop,
    /// Packets and bytes not yet flushed.
    pending: Pending,
    /// The outer header of TUN to the server from the egress port of
    /// `hop`, made when the hop is remembered.
    tun: TunTemplate,
    /// The server has no upper threshold in the stamped snapshot and its
    /// counters are the snapshot's block for its id
    /// (`Snapshot::counters`): an active/inactive move goes there
    /// directly ([`DestTable::count_activity`]).
    plain: bool,
}

impl DestFast {
    const EMPTY: DestFast = DestFast {
        usable: false,
        vip_not_own: u64::MAX,
        hop: Hop::EMPTY,
        pending: Pending::EMPTY,
        tun: TunTemplate::EMPTY,
        plain: false,
    };
}

/// A worker's [`DestFast`] entries, by server id (module docs).
pub(super) struct DestTable {
    /// This worker (its block of each server's counters).
    worker: usize,
    generation: u64,
    snapshot: usize,
    dests: Vec<DestFast>,
    pending: PendingList,
    /// The sources admission may refuse in the stamped snapshot
    /// (`admit_sources.rs`), rebuilt with the entries.
    sources: Sources,
}

impl DestTable {
    pub(super) fn new(worker: usize) -> DestTable {
        DestTable {
            worker,
            generation: u64::MAX,
            snapshot: 0,
            dests: Vec::new(),
            pending: PendingList::new(worker),
            sources: Sources::empty(),
        }
    }

    /// The index of server `id` when it is usable in `snap` (rebuilding
    /// the table first if it was built from another snapshot).
    #[inline(always)]
    pub(super) fn usable(&mut self, snap: &Snapshot, id: u32) -> Option<usize> {
        if self.generation != snap.generation || self.snapshot != snap as *const Snapshot as usize {
            self.refresh(snap);
        }
        let i = id as usize;
        self.dests.get(i)?.usable.then_some(i)
    }

    /// [`usable`](Self::usable) for a caller that stamped the table with
    /// `snap` itself a moment before ([`sources`](Self::sources) or
    /// `usable`, with the same snapshot and no rebuild between): the new
    /// flow asks for the sources before its pick, and the server's entry
    /// after it, without the second test of the stamp.
    #[inline(always)]
    pub(super) fn usable_stamped(&self, snap: &Snapshot, id: u32) -> Option<usize> {
        debug_assert!(
            self.generation == snap.generation && self.snapshot == snap as *const Snapshot as usize,
            "usable_stamped of an unstamped table"
        );
        let i = id as usize;
        self.dests.get(i)?.usable.then_some(i)
    }

    /// The sources admission may refuse in `snap` (rebuilding the table
    /// first if it was built from another snapshot).
    #[inline(always)]
    pub(super) fn sources(&mut self, snap: &Snapshot) -> &Sources {
        if self.generation != snap.generation || self.snapshot != snap as *const Snapshot as usize {
            self.refresh(snap);
        }
        &self.sources
    }

    /// Is `vip` server `i`'s service VIP, known not to be an own address
    /// of the stamped snapshot?
    #[inline(always)]
    pub(super) fn vip_not_own(&self, i: usize, vip: u32) -> bool {
        self.dests[i].vip_not_own == u64::from(vip)
    }

    /// The remembered next hop of server `i` (from [`usable`](Self::usable)),
    /// if it is for `ip`, younger than its deadline and its neighbour entry
    /// unchanged.
    #[inline(always)]
    pub(super) fn hop(&self, i: usize, ip: u32, now_ms: u64, neigh: &NeighTable) -> Option<&Hop> {
        let h = &self.dests[i].hop;
        (h.ip == ip && now_ms < h.until_ms && neigh.version(h.entry) == h.version).then_some(h)
    }

    /// Remembers `h` (a valid entry of the next-hop cache) for server `i`,
    /// and the TUN outer header from its egress port to the server.
    #[cold]
    pub(super) fn set_hop(&mut self, i: usize, h: Hop) {
        let d = &mut self.dests[i];
        d.hop = h;
        d.tun = TunTemplate::new(h.port_addr, Ipv4Addr::from(h.ip));
    }

    /// The TUN outer header of server `i`, valid while its remembered hop
    /// is ([`hop`](Self::hop)).
    #[inline(always)]
    pub(super) fn tun_template(&self, i: usize) -> &TunTemplate {
        &self.dests[i].tun
    }

    /// Adds one packet of `len` IP bytes to server `i`'s pending counts
    /// (`out`: from the server).
    #[inline(always)]
    pub(super) fn count(&mut self, snap: &Snapshot, i: usize, out: bool, len: u64) {
        self.pending.count(&mut self.dests, snap, i, out, len);
    }

    /// One of this worker's connections to server `i` (from
    /// [`usable`](Self::usable) with `snap`) moved between active and
    /// inactive (`was` -> `is`): `Server::count_activity`'s moves. For a
    /// server without an upper threshold (the entry's `plain`) through
    /// its counters by id (`Snapshot::counters`: one indexed load) rather
    /// than the snapshot's id -> service -> server walk; the overload flag
    /// is read as `Server::update_overload` reads it (set: a worker on an
    /// older snapshot set it, the server clears it). The shared atomic
    /// counts stay: lc/wlc and the overload flag read them within the
    /// burst.
    #[inline(always)]
    pub(super) fn count_activity(&self, snap: &Snapshot, i: usize, was: bool, is: bool) {
        let plain = self.dests[i].plain;
        count_activity_of(snap, i, self.worker, plain, was, is, server4);
    }

    /// Adds the pending counts to the servers' per-worker counters.
    #[inline]
    pub(super) fn flush(&mut self, snap: &Snapshot) {
        self.pending.flush(&mut self.dests, snap);
    }

    /// Rebuilds the table for `snap`: pending counts flushed, every server
    /// of the registry marked usable or not, next hops forgotten, the
    /// admission's source filter made.
    #[cold]
    #[inline(never)]
    pub(super) fn refresh(&mut self, snap: &Snapshot) {
        self.flush(snap);
        self.generation = snap.generation;
        self.snapshot = snap as *const Snapshot as usize;
        self.dests.clear();
        self.dests.resize(snap.counters.len(), DestFast::EMPTY);
        self.sources.build(snap);
        for (id, d) in self.dests.iter_mut().enumerate() {
            if let Some((svc, srv)) = snap.dest(id as u32) {
                d.usable = srv.usable;
                d.plain = srv.upper == 0
                    && snap
                        .counters(id as u32)
                        .is_some_and(|k| std::ptr::eq(k, &*srv.shared));
                if !snap.is_own(svc.vip) {
                    d.vip_not_own = u64::from(u32::from(svc.vip));
                }
            }
        }
    }
}

/// The registry's server `id` of either family in `snap`: how the cold
/// walks of [`count_activity_of`] find it.
pub(super) type ServerOf<A> = for<'s> fn(&'s Snapshot, u32) -> Option<&'s Server<A>>;

/// IPv4 server `id` (`Snapshot::dest`).
fn server4(snap: &Snapshot, id: u32) -> Option<&Server> {
    snap.dest(id).map(|(_, srv)| srv)
}

/// The active/inactive move of both families' tables
/// ([`DestTable::count_activity`], `DestTable6::count_activity`): a
/// `plain` server (no upper threshold, counters its id's block) through
/// `Snapshot::counters`, the overload flag read as
/// `Server::update_overload` reads it; any other through `server`'s walk.
#[inline(always)]
pub(super) fn count_activity_of<A>(
    snap: &Snapshot,
    i: usize,
    worker: usize,
    plain: bool,
    was: bool,
    is: bool,
    server: ServerOf<A>,
) {
    if !plain {
        return activity_walk(snap, i, worker, was, is, server);
    }
    let Some(k) = snap.counters(i as u32) else {
        return;
    };
    if k.per_worker[worker].shift(was, is) && k.overloaded.load(Relaxed) {
        overload_walk(snap, i, server);
    }
}

/// `Server::count_activity` through the snapshot's walk: a server with an
/// upper threshold (or counters not its id's block).
#[cold]
#[inline(never)]
fn activity_walk<A>(
    snap: &Snapshot,
    i: usize,
    worker: usize,
    was: bool,
    is: bool,
    server: ServerOf<A>,
) {
    if let Some(srv) = server(snap, i as u32) {
        srv.count_activity(worker, was, is);
    }
}

/// `Server::update_overload` for a plain server whose flag is set.
#[cold]
#[inline(never)]
fn overload_walk<A>(snap: &Snapshot, i: usize, server: ServerOf<A>) {
    if let Some(srv) = server(snap, i as u32) {
        srv.update_overload();
    }
}

impl HasPending for DestFast {
    #[inline(always)]
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }
}
