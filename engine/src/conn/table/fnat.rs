//! Full-NAT's side of the table: each slot's local (director-side) tuple
//! and this worker's source-port pools.

use std::net::Ipv4Addr;

use super::{ConnTable, NIL};
use crate::conn::snat::{SnatPools, SnatSpec};
use crate::conn::{flags, Conn, ConnId, FlowKey, FnatError, Method, NewConn, Reclaim, WireKey};

/// A full-NAT connection's local (director-side) address and port: the
/// source its packets to the server carry and the destination of the
/// server's replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Local {
    pub(super) addr: u32,
    pub(super) port: u16,
}

/// Full-NAT state of a table: the local tuple of every slot, and this
/// worker's local ports.
///
/// The 32-byte [`Conn`] record has no room for a fifth address and port,
/// and growing it would cost every NAT/DR/TUN connection 32 more bytes and
/// a cache line per lookup. So the local tuple lives in a side array
/// indexed by slot (8 bytes a slot), allocated only once a service uses
/// `fnat`, and read only for FNAT records: by the reply-key match, the
/// reply-key hash on insert and remove, and the rewrite. Other methods
/// pay one byte compare (the record's method) on a reply-key match.
pub(super) struct Fnat {
    pub(super) locals: Box<[Local]>,
    pub(super) pools: SnatPools,
}

impl ConnTable {
    /// The reply key of a record indexed by one: server -> client for NAT,
    /// server -> local tuple for full-NAT.
    #[inline]
    pub(super) fn reply_key_of(&self, c: &Conn, slot: usize) -> FlowKey {
        match (&self.fnat, c.method == Method::Fnat as u8) {
            (Some(f), true) => {
                let l = f.locals[slot];
                FlowKey::new(
                    c.proto,
                    c.server(),
                    c.sport(),
                    Ipv4Addr::from(l.addr),
                    l.port,
                )
            }
            _ => c.reply_key_raw(),
        }
    }

    /// Does `k` equal the reply key of the full-NAT record `c` in `slot`?
    #[inline]
    pub(super) fn matches_local(&self, c: &Conn, slot: usize, k: &WireKey) -> bool {
        let Some(f) = &self.fnat else {
            return false;
        };
        let l = f.locals[slot];
        k.addrs == u64::from(u32::from(c.server())) << 32 | u64::from(l.addr)
            && k.ports == u32::from(c.sport()) << 16 | u32::from(l.port)
            && k.proto == c.proto
    }

    /// The reply key of connection `id` if it has one (NAT and full-NAT,
    /// not templates).
    pub fn reply_key(&self, id: ConnId) -> Option<FlowKey> {
        let c = self.slots.get(id.index())?;
        (c.in_use() && c.flags & flags::REPLY_KEY != 0).then(|| self.reply_key_of(c, id.index()))
    }

    /// The local (director-side) address and port of full-NAT connection
    /// `id`; `None` for the other methods.
    #[inline]
    pub fn local(&self, id: ConnId) -> Option<(Ipv4Addr, u16)> {
        let c = self.slots.get(id.index())?;
        if !c.in_use() || c.method != Method::Fnat as u8 || c.flags & flags::REPLY_KEY == 0 {
            return None;
        }
        let l = self.fnat.as_ref()?.locals[id.index()];
        Some((Ipv4Addr::from(l.addr), l.port))
    }

    /// Installs the full-NAT local addresses and port ranges of every
    /// egress port (indexed like the snapshot's ports) for `worker` of
    /// `workers`: allocates the side array the first time, and rebuilds
    /// the pools only when the configuration changed, marking the local
    /// ports of live connections held again. Cold (a new configuration).
    pub fn set_snat(&mut self, specs: &[SnatSpec], worker: usize, workers: usize) {
        if let Some(f) = &self.fnat {
            if f.pools.same(specs, worker, workers) {
                return;
            }
        }
        let mut pools = SnatPools::new(specs, worker, workers);
        let locals = match self.fnat.take() {
            Some(f) => f.locals,
            None => vec![Local::default(); self.slots.len()].into_boxed_slice(),
        };
        for (i, c) in self.slots.iter().enumerate() {
            if c.in_use() && c.method == Method::Fnat as u8 && c.flags & flags::REPLY_KEY != 0 {
                let l = locals[i];
                pools.reserve(Ipv4Addr::from(l.addr), l.port);
            }
        }
        self.fnat = Some(Box::new(Fnat { locals, pools }));
    }

    /// Swaps the full-NAT local port pools of two tables that both have
    /// local tuples (`set_snat`); `false`, nothing changed, otherwise.
    ///
    /// NAT64 connections live in the IPv6 table (their client side is
    /// IPv6) but their local tuples are IPv4 full-NAT's: one pool per
    /// worker must hand out every local tuple, or an IPv4 full-NAT and a
    /// NAT64 connection could hold the same one. So the IPv6 table keeps
    /// an empty pool and borrows the IPv4 table's around each insert or
    /// remove (a swap of two small structs: no allocation, no copy of the
    /// ports), and a port taken or freed there is taken from or freed to
    /// the one pool.
    pub fn swap_snat_pools(&mut self, other: &mut ConnTable) -> bool {
        match (self.fnat.as_mut(), other.fnat.as_mut()) {
            (Some(a), Some(b)) => {
                std::mem::swap(&mut a.pools, &mut b.pools);
                true
            }
            _ => false,
        }
    }

    /// Runs `f` on this table with `owner`'s full-NAT pools lent to it
    /// ([`swap_snat_pools`](Self::swap_snat_pools)): a local tuple taken
    /// or freed in `f` (an insert, an eviction, an expiry, a removal) is
    /// taken from or freed to `owner`'s pool. Without pools on both sides
    /// `f` runs on the table as it is.
    #[inline]
    pub fn with_lent_pools<R>(
        &mut self,
        owner: &mut ConnTable,
        f: impl FnOnce(&mut ConnTable) -> R,
    ) -> R {
        let lent = owner.swap_snat_pools(self);
        let r = f(self);
        if lent {
            owner.swap_snat_pools(self);
        }
        r
    }

    /// Whether the table keeps full-NAT local tuples (`set_snat` was
    /// called).
    pub fn has_local_tuples(&self) -> bool {
        self.fnat.is_some()
    }

    /// Marks held, in this table's pools, every local tuple a live
    /// full-NAT connection of `other` holds (the NAT64 connections of the
    /// IPv6 table after `set_snat` rebuilt the pools). Cold.
    pub fn reserve_locals_of(&mut self, other: &ConnTable) {
        let (Some(f), Some(o)) = (self.fnat.as_mut(), other.fnat.as_ref()) else {
            return;
        };
        for (i, c) in other.slots.iter().enumerate() {
            if c.in_use() && c.method == Method::Fnat as u8 && c.flags & flags::REPLY_KEY != 0 {
                let l = o.locals[i];
                f.pools.reserve(Ipv4Addr::from(l.addr), l.port);
            }
        }
    }

    /// (free, owned) local ports of this worker on egress port `port`.
    pub fn snat_usage(&self, port: usize) -> (usize, usize) {
        self.fnat.as_ref().map_or((0, 0), |f| f.pools.usage(port))
    }

    /// [`insert_or_evict`](Self::insert_or_evict) for a full-NAT
    /// connection leaving by egress port `port`: takes a local address and
    /// port of this worker's first (none free: [`FnatError::SnatExhausted`],
    /// nothing changed: a live tuple is never reused), gives it back if
    /// the table is full.
    pub fn insert_or_evict_fnat(
        &mut self,
        c: NewConn,
        port: usize,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, FnatError> {
        let Some(f) = self.fnat.as_mut() else {
            return Err(FnatError::SnatExhausted);
        };
        let (addr, lport) = f.pools.take(port).ok_or(FnatError::SnatExhausted)?;
        let local = Local {
            addr: u32::from(addr),
            port: lport,
        };
        if self.free_head == NIL {
            let Some((slot, why)) = self.find_victim(now_ms) else {
                if let Some(f) = self.fnat.as_mut() {
                    f.pools.free(addr, lport);
                }
                return Err(FnatError::TableFull);
            };
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        self.insert_with(c, Some(local), None, None, now_ms)
            .map(|(id, _)| id)
            .map_err(|_| FnatError::TableFull)
    }

    /// [`insert_or_evict_fnat`](Self::insert_or_evict_fnat) with a given
    /// local tuple (a connection the peer director synced): reserves
    /// `addr:port` in this worker's pools first, so it is never handed out
    /// to another connection while this one lives
    /// ([`FnatError::LocalUnavailable`] when it is not free here, nothing
    /// changed); gives it back if the table is full.
    pub fn insert_or_evict_fnat_at(
        &mut self,
        c: NewConn,
        addr: Ipv4Addr,
        port: u16,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, FnatError> {
        let Some(f) = self.fnat.as_mut() else {
            return Err(FnatError::LocalUnavailable);
        };
        if !f.pools.reserve(addr, port) {
            return Err(FnatError::LocalUnavailable);
        }
        let local = Local {
            addr: u32::from(addr),
            port,
        };
        if self.free_head == NIL {
            let Some((slot, why)) = self.find_victim(now_ms) else {
                if let Some(f) = self.fnat.as_mut() {
                    f.pools.free(addr, port);
                }
                return Err(FnatError::TableFull);
            };
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        self.insert_with(c, Some(local), None, None, now_ms)
            .map(|(id, _)| id)
            .map_err(|_| FnatError::TableFull)
    }
}
